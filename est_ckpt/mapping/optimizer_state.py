"""Optimizer state across optimizers: one optimizer's slots and step count onto another's, both ways.

`mapping.optimizer_slots` finds every slot on both sides (TF1 `<v>/Adam`,
TF 2.11+ Keras `m/<v>`, legacy Keras `.OPTIMIZER_SLOT/optimizer/m` and
`training/Adam/<v>/m`) and tells the state it holds. A template slot is
mapped from the source slot of the same kind on the source of its variable
(so renamed variables keep their slots), as `assignment_map` entries for the
planner, so slots are planned, reported and checked (shape, dtype) like any
variable:

| state | TF1 slot | Keras variable (TF 2.11+ / legacy) |
|---|---|---|
| Adam's first, second moment | `<v>/Adam`, `<v>/Adam_1` | `m`, `v` |
| sum of squared gradients | `<v>/Adagrad`, `<v>/Ftrl` | `accumulator` |
| FTRL's linear term | `<v>/Ftrl_1` | `linear` |
| RMSProp mean square, momentum | `<v>/RMSProp`, `<v>/RMSProp_1` | `velocity`/`rms`, `momentum` |
| centered RMSProp's mean gradient | `<v>/RMSProp_1` (then momentum is `_2`) | `average_gradient`/`mg` |
| Adamax's infinity norm | (none) | `u` |
| Adadelta's accumulated gradient, update | `<v>/Adadelta`, `<v>/Adadelta_1` | `accumulated_grad`, `accumulated_delta_var` (`accum_grad`, `accum_var`) |
| Lion's momentum | (none) | Keras 3 `_momentums` without `_velocities` |
| steps taken | `global_step` | `iteration` / `iter` |

Keras 3 optimizers are told by their edges (`optimizer_slots`): AdamW, Nadam and
Lamb keep Adam's moments; Nadam's `_u_product` is a plain variable, matched by path.

TF1 `MomentumOptimizer` keeps `accum = momentum * accum + g` and applies
`lr * accum`; Keras SGD keeps `m = momentum * m - lr * g` and applies `m`:
the same state scaled by `-lr`, so `momentum_targets` lists those slots for
a conversion to compute (`m = -lr * accum`, back `accum = -m / lr`), never
to copy. A centered RMSProp onto a plain one (or back) is refused
(`MismatchError`). TF1 Adam's
`beta1_power`/`beta2_power` are derived values (`beta ** (step + 1)`):
`power_targets` lists those a conversion back onto a TF1 template must
write. Hyperparameters (`learning_rate`, `beta_1`, `decay`, ...) are not
state: `is_hyperparameter` tells them, and they keep the new model's values.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from est_ckpt.errors import MismatchError
from est_ckpt.format import checkpoint, keys
from est_ckpt.mapping.names import NameIndex
from est_ckpt.mapping.optimizer_slots import (
    SCALED,
    Slot,
    different,
    find_slots,
    step_key,
    step_keys,
    u_product_key,
)
from est_ckpt.mapping.plan import Target, WarmStartPlan
from est_ckpt.mapping.planner import plan_mapping, targets_from_checkpoint
from est_ckpt.mapping.rules import RenameRule
from est_ckpt.mapping.rules_file import RulesArg, load_rules

HYPERPARAMETERS = frozenset(
    (
        "learning_rate",
        "current_learning_rate",  # the last step's, of a TF 2.11+ Keras optimizer with a schedule
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
POWERS = ("beta1_power", "beta2_power")


def hyperparameter_name(t: Optional[checkpoint.TensorInfo]) -> Optional[str]:
    """The name (`learning_rate`, `beta_1`) of an optimizer's scalar hyperparameter, or None if `t` is none.

    `optimizer/_learning_rate`, `optimizer/beta_1` (object-based), or a scoped
    TF1 key such as `training/Adam/beta_1` (a Keras optimizer in graph mode).
    """
    if t is None or t.shape != () or t.slot is not None:
        return None
    path = t.object_path if t.object_path is not None else t.key
    try:
        edges = keys.split_path(path) if t.object_path is not None else path.split("/")
    except keys.KeyGrammarError:
        return None
    if t.object_path is None and t.name and t.name != t.key:  # a Keras file: `adam/learning_rate`
        edges = t.name.split("/")
    name = edges[-1].lstrip("_")
    return name if len(edges) >= 2 and name in HYPERPARAMETERS else None


def is_hyperparameter(t: Optional[checkpoint.TensorInfo]) -> bool:
    """Whether a template tensor is an optimizer's scalar hyperparameter (`hyperparameter_name`)."""
    return hyperparameter_name(t) is not None


def _label(index: NameIndex, name: str, key: str) -> str:
    """`name` if it resolves to `key` alone, else `key` (a key always resolves to itself)."""
    found, _ = index.resolve(name)
    return name if found is not None and found.keys == (key,) else key


def _target_names(index: NameIndex, targets: Sequence[Target]) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in targets:
        found, _ = index.resolve(t.name, shape=t.shape)
        if found is not None and len(found.keys) == 1:
            out[found.keys[0]] = t.name
    return out


def _refuse_clash(source: checkpoint.CheckpointInfo, s_kinds: dict, kinds: dict) -> None:
    """Raises `MismatchError` when one variable's slots mean different things on each side."""
    clash = different(s_kinds, kinds)
    if clash is not None:
        s, t, why = clash
        raise MismatchError(
            f"{source.prefix}: '{s.name}' cannot become '{t.name}': {why}. Leave the optimizer state "
            "out (keep_unmapped) or use an optimizer whose state means the same."
        )


def _slot_pairs(
    plan: WarmStartPlan, source: checkpoint.CheckpointInfo, template: checkpoint.CheckpointInfo
) -> list[tuple[dict[str, Slot], dict[str, Slot]]]:
    """`(source kinds, template kinds)` of each template variable with optimizer slots that `plan` maps.

    Raises:
      MismatchError: a slot exists on both sides but means something else on each.
    """
    t_index = NameIndex(template)
    var_source: dict[str, str] = {}
    for a in plan.assignments:
        found, _ = t_index.resolve(a.target, shape=a.target_shape)
        if found is not None and len(found.keys) == 1 and len(a.source_keys) == 1 and a.transform is None:
            var_source[found.keys[0]] = a.source_keys[0]
    s_slots = find_slots(source)
    out = []
    for t_var, kinds in find_slots(template).items():
        s_var = var_source.get(t_var)
        if s_var is None:
            continue
        s_kinds = s_slots.get(s_var, {})
        _refuse_clash(source, s_kinds, kinds)
        _refuse_other_state(source, template, s_kinds, kinds)
        out.append((s_kinds, kinds))
    return out


def _refuse_other_state(
    source: checkpoint.CheckpointInfo, template: checkpoint.CheckpointInfo, s_kinds: dict, kinds: dict
) -> None:
    """Raises `MismatchError` when a template slot has no source of its meaning while a source slot of the
    same variable goes unused: the optimizers keep other state, which no flag may paper over."""
    missing = [k for k in kinds if k not in s_kinds and not (k in SCALED and SCALED - {k} <= set(s_kinds))]
    extra = [k for k in s_kinds if k not in kinds and not (k in SCALED and SCALED - {k} <= set(kinds))]
    if missing and extra:
        t, s = kinds[missing[0]], s_kinds[extra[0]]
        raise MismatchError(
            f"{template.prefix}: '{t.name}' ({t.kind}) has no source of its meaning, while '{s.name}' "
            f"({s.kind}) of {source.prefix} goes unused: the two optimizers keep different state. Train on "
            "with the optimizer the source was trained with, or leave the optimizer out of the template."
        )


def optimizer_assignment_map(
    plan: WarmStartPlan,
    source: checkpoint.CheckpointInfo,
    template: checkpoint.CheckpointInfo,
    targets: Sequence[Target],
) -> dict[str, str]:
    """`{source slot: target}` entries for the template's optimizer state that `plan` left unmapped.

    Raises:
      MismatchError: a slot exists on both sides but means something else on each.
    """
    s_index = NameIndex(source)
    names = _target_names(NameIndex(template), targets)
    unmapped = {u.target for u in plan.unmapped}
    out: dict[str, str] = {}
    for s_kinds, kinds in _slot_pairs(plan, source, template):
        for kind, slot in kinds.items():
            target = names.get(slot.key)
            if target in unmapped and kind in s_kinds:
                out[_label(s_index, s_kinds[kind].name, s_kinds[kind].key)] = target
    for find in (step_key, u_product_key):  # the optimizer's own counters, as its variables' slots
        s_key, t_key = find(source), find(template)
        if s_key is not None and t_key is not None and names.get(t_key) in unmapped:
            s_name = s_index.tensors[s_key].name or s_key
            out[_label(s_index, s_name, s_key)] = names[t_key]
    return out


def _more_steps(plan, source, template, targets, slots) -> dict[str, tuple[tuple[str, ...], tuple]]:
    """The template's other step counters (a v2 `DNNLinearCombined` Estimator's linear optimizer counts its own
    `training/Ftrl/iter`, stepping with `global_step`): each is the source's step."""
    s_key, more = step_key(source), step_keys(template)[1:]
    if s_key is None or not more:  # the usual case: no index to build
        return {}
    names = _target_names(NameIndex(template), targets)
    unmapped = {u.target for u in plan.unmapped} - set(slots.values())
    s_index = NameIndex(source)
    label = _label(s_index, s_index.tensors[s_key].name or s_key, s_key)
    return {names[k]: ((label,), ()) for k in more if names.get(k) in unmapped}


def slot_transforms(
    plan: WarmStartPlan,
    source: checkpoint.CheckpointInfo,
    template: checkpoint.CheckpointInfo,
    targets: Sequence[Target],
) -> dict[str, tuple[tuple[str, ...], tuple[dict, ...]]]:
    """`{template slot name: (source slot names, transforms)}`: the slots of variables computed by transforms.

    A slot follows its variable's transforms (reshape, split, reorder, ...) but never
    an `add`; each of the variable's sources must hold a slot of the same kind.

    Raises:
      MismatchError: a slot means something else on each side.
      TransformError: the variable's value is scaled (its state would not mean the same).
    """
    t_index, s_index = NameIndex(template), NameIndex(source)
    names = _target_names(t_index, targets)
    unmapped = {u.target for u in plan.unmapped}
    s_slots, t_slots = find_slots(source), find_slots(template)
    out: dict[str, tuple[tuple[str, ...], tuple[dict, ...]]] = {}
    for a in plan.assignments:
        if a.transform is None:
            continue
        found, _ = t_index.resolve(a.target, shape=a.target_shape)
        kinds = t_slots.get(found.keys[0], {}) if found is not None and len(found.keys) == 1 else {}
        if not kinds or any(len(k) != 1 for k in a.transform.keys):
            continue
        per_source = [s_slots.get(k[0], {}) for k in a.transform.keys]
        for s_kinds in per_source:
            _refuse_clash(source, s_kinds, kinds)
        for kind, slot in kinds.items():
            target = names.get(slot.key)
            if target not in unmapped or not all(kind in s for s in per_source):
                continue
            labels = tuple(_label(s_index, s[kind].name, s[kind].key) for s in per_source)
            out[target] = (labels, tuple(a.transform.for_slots(labels, target).as_json()))
    return out


def momentum_targets(
    plan: WarmStartPlan, source: checkpoint.CheckpointInfo, template: checkpoint.CheckpointInfo
) -> dict[str, tuple[str, str, bool]]:
    """`{target name: (template key, source key, whether onto Keras)}`: TF1 Momentum accumulators onto Keras SGD velocities, or back.

    Those `plan` leaves unmapped: their values are computed (`-lr * accum`,
    `-velocity / lr`), never copied.
    """
    targets = targets_from_checkpoint(template) + slot_targets(template)
    names = _target_names(NameIndex(template), targets)
    unmapped = {u.target for u in plan.unmapped if not u.ambiguous_keys}
    out: dict[str, tuple[str, str, bool]] = {}
    for s_kinds, kinds in _slot_pairs(plan, source, template):
        for kind, slot in kinds.items():
            other = next(iter(SCALED - {kind}), None) if kind in SCALED else None
            target = names.get(slot.key)
            if other in s_kinds and target in unmapped:
                out[target] = (slot.key, s_kinds[other].key, kind == "keras_momentum")
    return out


def slot_targets(template: checkpoint.CheckpointInfo) -> list[Target]:
    """Legacy Keras slots of an object-based template, by object path (`targets_from_checkpoint` leaves them out)."""
    return [
        Target(t.object_path, tuple(t.shape), t.dtype)
        for t in template.tensors.values()
        if t.slot is not None and t.object_path is not None and keys.is_variable_key(t.key)
    ]


def power_targets(plan: WarmStartPlan, source: checkpoint.CheckpointInfo) -> dict[str, str]:
    """`{template name: 'beta1_power'|'beta2_power'}`: TF1 Adam's powers that `source` lacks, to be derived.

    A TF1 template's `beta1_power` (scoped or not) left unmapped by `plan` when
    `source` holds no such key (a Keras optimizer counts `iteration` instead).
    """
    have = {(t.name or t.key).rpartition("/")[2] for t in source.tensors.values()}
    out = {}
    for u in plan.unmapped:
        last = u.target.rpartition("/")[2]
        if last in POWERS and last not in have and not u.ambiguous_keys:
            out[u.target] = last
    return out


def plan_onto_template(
    source: checkpoint.CheckpointInfo,
    template: checkpoint.CheckpointInfo,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    rules: RulesArg = None,
) -> WarmStartPlan:
    """The plan `convert --like` applies and `est-ckpt map --optimizer_state` shows: `map_checkpoints` plus optimizer state.

    The template's variables (and legacy Keras slots, by object path) are
    planned as `map_checkpoints` plans them; optimizer state left unmapped then
    gets the source slot of the same meaning (`optimizer_assignment_map`), the
    user's own `assignment_map` entries winning over the derived ones; the slots
    of a variable computed by `rules`' transforms follow those transforms
    (`slot_transforms`).

    Raises:
      MismatchError: a slot means something else for the new optimizer.
      MappingError: `assignment_map` or `rename_rules` is malformed.
    """
    targets = targets_from_checkpoint(template) + slot_targets(template)
    rules = None if rules is None else load_rules(rules)
    plan = plan_mapping(
        source, targets, assignment_map=assignment_map, rename_rules=rename_rules, rules=rules
    )
    slots = optimizer_assignment_map(plan, source, template, targets)
    computed = {
        **_more_steps(plan, source, template, targets, slots),
        **slot_transforms(plan, source, template, targets),
    }
    if not slots and not computed:
        return plan
    merged = {**slots, **(assignment_map or {})}
    return plan_mapping(
        source, targets, assignment_map=merged, rename_rules=rename_rules, rules=rules, computed=computed
    )


__all__ = [
    "HYPERPARAMETERS",
    "POWERS",
    "hyperparameter_name",
    "is_hyperparameter",
    "momentum_targets",
    "optimizer_assignment_map",
    "plan_onto_template",
    "power_targets",
    "slot_targets",
    "slot_transforms",
]
