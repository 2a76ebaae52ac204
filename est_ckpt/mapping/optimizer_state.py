"""Optimizer state across optimizers: TF1 slots (`w/Adam`, `w/Adam_1`, `global_step`) onto a Keras optimizer's own variables.

TF 2.11+ Keras optimizers record their state as variables named
`<slot>/<variable>` (`m/dense/kernel`, `v/dense/kernel`, `accumulator/...`)
and the step count as `iteration`; TF1 optimizers name a slot
`<variable>/<Op>` (`<Op>_1` for the second) and count steps in
`global_step`. `optimizer_assignment_map` turns the slots a source holds into
`assignment_map` entries for the planner, so they are planned, reported and
checked (shape, dtype) like any variable. A slot is mapped only where the two
optimizers' update rules give it the same meaning:

| Keras variable | TF1 slot | update rule (both) |
|---|---|---|
| `m/<v>`, `v/<v>` | `<v>/Adam`, `<v>/Adam_1` | Adam's first and second moments |
| `accumulator/<v>` | `<v>/Adagrad`, or `<v>/Ftrl` | sum of squared gradients |
| `linear/<v>` | `<v>/Ftrl_1` | FTRL's linear term |
| `velocity/<v>`, `momentum/<v>` | `<v>/RMSProp`, `<v>/RMSProp_1` | mean square, momentum of the scaled step |
| `iteration` | `global_step` | steps taken (Adam's bias correction) |

TF1 `MomentumOptimizer` keeps `accum = momentum * accum + g` and applies
`lr * accum`; Keras SGD keeps `m = momentum * m - lr * g` and applies `m`:
the same name, another meaning, so it is refused (`MismatchError`), never
copied. Hyperparameters (`learning_rate`, `beta_1`, `decay`, ...) are not
state: `is_hyperparameter` tells them, and they keep the new model's values.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from est_ckpt.errors import MismatchError
from est_ckpt.format import checkpoint, keys
from est_ckpt.mapping.names import NameIndex
from est_ckpt.mapping.plan import WarmStartPlan
from est_ckpt.mapping.planner import map_checkpoints
from est_ckpt.mapping.rules import RenameRule

# Keras optimizer variable prefix -> the TF1 slot suffixes holding the same state, in order of preference.
KERAS_SLOTS = {
    "m": ("Adam",),
    "v": ("Adam_1",),
    "accumulator": ("Adagrad", "Ftrl"),
    "linear": ("Ftrl_1",),
    "velocity": ("RMSProp",),
    "momentum": ("RMSProp_1",),
}
# (Keras prefix, TF1 suffix) pairs whose state means something else on each side, and why.
DIFFERENT = {
    ("m", "Momentum"): (
        "TF1 MomentumOptimizer's slot accumulates gradients (accum = momentum * accum + g; var -= lr * accum) "
        "while Keras SGD's `m` is the velocity (m = momentum * m - lr * g; var += m)"
    ),
}
ITERATION = "iteration"
GLOBAL_STEP = "global_step"
HYPERPARAMETERS = frozenset(
    (
        "learning_rate",
        "lr",
        "beta_1",
        "beta_2",
        "epsilon",
        "decay",
        "rho",
        "momentum",
        "initial_accumulator_value",
        "learning_rate_power",
        "l1_regularization_strength",
        "l2_regularization_strength",
        "l2_shrinkage_regularization_strength",
        "beta",
    )
)


def is_hyperparameter(t: Optional[checkpoint.TensorInfo]) -> bool:
    """Whether a template tensor is an optimizer's scalar hyperparameter (`optimizer/_learning_rate`, `optimizer/beta_1`)."""
    if t is None or t.object_path is None or t.shape != () or t.slot is not None:
        return False
    try:
        edges = keys.split_path(t.object_path)
    except keys.KeyGrammarError:
        return False
    return len(edges) >= 2 and edges[-1].lstrip("_") in HYPERPARAMETERS


def optimizer_assignment_map(plan: WarmStartPlan, source: checkpoint.CheckpointInfo) -> dict[str, str]:
    """`{source slot: target}` entries for the Keras optimizer variables `plan` left unmapped.

    Args:
      plan: a plan of the new model's variables against `source`; a slot's
        variable is found through it (so renamed variables keep their slots).
      source: the checkpoint the plan reads.

    Raises:
      MismatchError: a slot exists in `source` but means something else for the new optimizer.
    """
    index = NameIndex(source)
    by_target = {a.target: a.source_name for a in plan.assignments}
    out: dict[str, str] = {}
    step_target = None
    for u in plan.unmapped:
        if u.target == ITERATION:
            step_target = u.target
            continue
        prefix, _, var = u.target.partition("/")
        if prefix not in KERAS_SLOTS or var not in by_target:
            continue
        old = by_target[var]
        for suffix in KERAS_SLOTS[prefix]:
            if index.resolve(f"{old}/{suffix}")[0] is not None:
                out[f"{old}/{suffix}"] = u.target
                break
        else:
            for (keras_prefix, suffix), why in DIFFERENT.items():
                if keras_prefix == prefix and index.resolve(f"{old}/{suffix}")[0] is not None:
                    raise MismatchError(
                        f"{source.prefix}: '{old}/{suffix}' cannot become '{u.target}': {why}. Leave the "
                        "optimizer state out (keep_unmapped) or use an optimizer whose state means the same."
                    )
    if out and step_target is not None and index.resolve(GLOBAL_STEP)[0] is not None:
        out[GLOBAL_STEP] = step_target
    return out


def plan_onto_template(
    source: checkpoint.CheckpointInfo,
    template: checkpoint.CheckpointInfo,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
) -> WarmStartPlan:
    """The plan `convert --like` applies and `est-ckpt map --optimizer_state` shows: `map_checkpoints` plus optimizer state.

    The template's variables are planned as `map_checkpoints` plans them; a
    Keras optimizer variable left unmapped then gets the TF1 slot of the same
    meaning (`optimizer_assignment_map`), the user's own `assignment_map`
    entries winning over the derived ones.

    Raises:
      MismatchError: a slot means something else for the new optimizer.
      MappingError: `assignment_map` or `rename_rules` is malformed.
    """
    plan = map_checkpoints(source, template, assignment_map=assignment_map, rename_rules=rename_rules)
    slots = optimizer_assignment_map(plan, source)
    if not slots:
        return plan
    merged = {**slots, **(assignment_map or {})}
    return map_checkpoints(source, template, assignment_map=merged, rename_rules=rename_rules)


__all__ = ["DIFFERENT", "KERAS_SLOTS", "is_hyperparameter", "optimizer_assignment_map", "plan_onto_template"]
