"""The plan of a conversion onto a template, as `convert --like` executes it and `map --optimizer_state` shows it.

One function, `plan_onto`, for both commands: the mapping
(`optimizer_state.plan_onto_template`), what keeps TEMPLATE's values, what is
computed (TF1 Adam's powers from the step count, Momentum slots from the
learning rate), and the step count's check against SRC's Adam powers. Only
scalars are read here; the Momentum slots are read when written.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence, Union

from est_ckpt.errors import ConversionError, UnmappedVariablesError
from est_ckpt.format import checkpoint, keys
from est_ckpt.mapping import NameIndex, RenameRule, Source, WarmStartPlan
from est_ckpt.mapping.optimizer_slots import step_key
from est_ckpt.mapping.optimizer_state import (
    is_hyperparameter,
    momentum_targets,
    plan_onto_template,
    power_targets,
)
from est_ckpt.mapping.plan import Unmapped
from est_ckpt.mapping.rules_file import RulesArg
from est_ckpt.mapping.tf1_names import SAVE_COUNTER
from est_ckpt.mapping.transforms import Transform
from est_ckpt.tools.onto import momentum as onto_momentum
from est_ckpt.tools.onto import steps as onto_steps


@dataclasses.dataclass(frozen=True)
class OntoPlan:
    """A conversion onto a template, planned.

    Attributes:
      plan: the mapping; its `unmapped` are only what the conversion refuses (not hyperparameters, nor
        computed keys, nor anything with `keep_unmapped`), plus template variables the planner leaves out.
      sources: `{template key: src key, joined Source, or Transform}` of the copied (or computed) entries.
      kept: template keys that keep TEMPLATE's values, in key order.
      powers: `{template key: value}`, TF1 Adam powers derived from the step count.
      scaled: `{template key: Scaled}`, Momentum slots computed from SRC's.
      step_checks: notes on the step count's check and on what the computed values assume.
    """

    plan: WarmStartPlan
    sources: Mapping[str, Union[str, Source, Transform]]
    kept: tuple[str, ...]
    powers: Mapping[str, float]
    scaled: Mapping[str, onto_momentum.Scaled]
    step_checks: tuple[str, ...]

    def computed(self) -> dict[str, Union[float, str]]:
        """The `computed` of the JSON plan: each power's value, each Momentum slot's formula."""
        return {**self.powers, **onto_momentum.describe(self.scaled)}


def _bookkeeping(t: checkpoint.TensorInfo) -> bool:
    """Whether a template key is not a model variable: the object graph, `save_counter`, other attributes."""
    if t.key == keys.OBJECT_GRAPH_KEY:
        return True
    if t.object_path is None:
        return False
    return not keys.is_variable_key(t.key) or t.object_path == SAVE_COUNTER


def _hyperparameter(index: NameIndex, target: str) -> bool:
    found, _ = index.resolve(target)
    return found is not None and len(found.keys) == 1 and is_hyperparameter(index.tensors[found.keys[0]])


def _split_refused(found_keys: Sequence[str], a, src: checkpoint.CheckpointInfo) -> ConversionError:
    return ConversionError(
        f"'{a.target}': the template saves it in parts one by one ({', '.join(found_keys)}) and "
        f"{src.prefix} holds it otherwise ('{a.source_key}'): splitting a tensor into parts needs reading and "
        "checksumming its bytes, which a conversion onto a template never does. Use a template that "
        "saves it whole (or in the same parts), or convert with --to."
    )


def _with_unnamed(
    e: UnmappedVariablesError, src: checkpoint.CheckpointInfo, template: checkpoint.CheckpointInfo
) -> UnmappedVariablesError:
    """`e`, saying why a Keras file's variables went by their keys (what Keras's file does not tell)."""
    notes = [f"{info.prefix}: {why}" for info in (src, template) for why in info.unnamed]
    if not notes:
        return e
    tail = (
        " Note: " + "; ".join(notes) + ". A .keras archive tells more (its config), or map those keys "
        "explicitly."
    )
    out = UnmappedVariablesError(str(e) + tail)
    return out.for_cli(e.cli_message + tail) if e.cli_message else out


def _keys(index: NameIndex, target: str) -> tuple[str, ...]:
    found, _ = index.resolve(target)
    return () if found is None else found.keys


def _sources(
    plan: WarmStartPlan, src, template, index: NameIndex
) -> dict[str, Union[str, Source, Transform]]:
    sources: dict[str, Union[str, Source, Transform]] = {}
    for a in plan.assignments:
        found, _ = index.resolve(a.target, shape=a.target_shape)
        if found is None:  # `targets_from_checkpoint` names every target so that it resolves.
            raise ConversionError(f"{template.prefix}: '{a.target}' does not name one key of the template.")
        if a.transform is not None:
            if len(found.keys) != 1 or template.bundle.entries[found.keys[0]].slices:
                raise ConversionError(
                    f"{template.prefix}: '{a.target}' is saved in parts, and its value is computed by "
                    "transforms, which write a tensor whole. Use a template that saves it whole."
                )
            sources[found.keys[0]] = a.transform
            continue
        if len(found.keys) != 1:
            same = len(found.keys) == len(a.source_keys) and all(
                template.tensors[t].shape == src.tensors[k].shape for t, k in zip(found.keys, a.source_keys)
            )
            if not same:
                raise _split_refused(found.keys, a, src)
            sources.update(zip(found.keys, a.source_keys))  # the same parts on both sides, part by part
            continue
        sources[found.keys[0]] = (
            a.source_keys[0]
            if len(a.source_keys) == 1
            else Source(tuple(a.source_keys), tuple(a.source_shape), a.source_dtype, a.part_axis)
        )
    return sources


def plan_onto(
    src: checkpoint.CheckpointInfo,
    template: checkpoint.CheckpointInfo,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    keep_unmapped: bool = False,
    strict: bool = True,
    rules: RulesArg = None,
) -> OntoPlan:
    """Plans a conversion onto `template` (reading only scalars).

    A source saved in parts one by one (`Source` of several keys) onto one
    template key is joined: DST's entry is partitioned over the parts' own
    entries. A template variable in parts from a whole source is refused.

    Args:
      strict: raise on what the conversion refuses; if False (`est-ckpt map`), return it in `plan`
        (`plan.ok` False) as far as it is planned.

    Raises:
      UnmappedVariablesError: template variables without a source (without `keep_unmapped`).
      AmbiguousNameError, MismatchError, UnusedMappingError: as the plan refuses them.
      MismatchError: SRC's step count disagrees with its Adam powers (even when not strict).
      ConversionError: a template variable saved in parts one by one that SRC holds whole; no learning
        rate for a Momentum slot.
    """
    full = plan_onto_template(
        src, template, assignment_map=assignment_map, rename_rules=rename_rules, rules=rules
    )
    index = NameIndex(template)
    powers = power_targets(full, src)
    momenta = momentum_targets(full, src, template)
    # Hyperparameters are not state: they keep the template's values. Ambiguous sources, mismatches and
    # unused map entries are refused even with keep_unmapped. TF1 Adam powers SRC lacks are derived,
    # Momentum slots computed.
    refused = tuple(
        u
        for u in full.unmapped
        if u.ambiguous_keys
        or not (
            keep_unmapped or _hyperparameter(index, u.target) or u.target in powers or u.target in momenta
        )
    )
    plan = dataclasses.replace(full, unmapped=refused)
    if strict:
        try:
            plan.raise_for_errors(conversion=True)
        except UnmappedVariablesError as e:
            raise _with_unnamed(e, src, template) from None
    sources = _sources(plan, src, template, index)
    scaled_keys = {t_key for t_key, _, _ in momenta.values()}
    left = [
        t
        for k, t in template.tensors.items()
        if k not in sources and k not in scaled_keys and k != keys.OBJECT_GRAPH_KEY
    ]
    resolved = {k for u in refused for k in _keys(index, u.target)}
    missing = [
        t.key
        for t in left
        if not (_bookkeeping(t) or is_hyperparameter(t) or t.key in powers or t.key in resolved)
    ]
    if missing and not keep_unmapped:
        # Slots and other variables `map_checkpoints` does not plan (its unmapped ones are in `refused`).
        if strict:
            what = (
                f"{template.prefix}: {len(missing)} template variable(s) have no source in {src.prefix}: "
                + ", ".join(f"'{k}'" for k in missing)
                + ". Map them with"
            )
            raise _with_unnamed(
                UnmappedVariablesError(
                    f"{what} `assignment_map` (an object path or name on either side) or pass keep_unmapped=True "
                    "to keep the template's values."
                ).for_cli(
                    f"{what} --assignment_map (an object path or name on either side) or pass --keep_unmapped "
                    "to keep the template's values."
                ),
                src,
                template,
            )
        extra = tuple(Unmapped(k, k, "key") for k in missing)
        plan = dataclasses.replace(plan, unmapped=plan.unmapped + extra)
    # Without keep_unmapped, what has no source is unmapped (refused), not kept: never listed as both.
    not_kept = set(powers) | (set() if keep_unmapped else {*resolved, *missing})
    kept = tuple(t.key for t in left if t.key not in not_kept)
    step_checks = onto_steps.check_step(src, template, sources)
    power_names = {k: p for k, p in powers.items() if k not in sources}
    t_step = step_key(template)
    if power_names and keep_unmapped and (t_step is None or t_step not in sources):
        # No step count carried over: the template keeps its own, and its powers agree with it.
        kept = tuple(sorted((*kept, *power_names)))
        power_names = {}
    if not plan.ok:
        return OntoPlan(plan, sources, kept, {}, {}, step_checks)
    values = onto_steps.power_tensors(src, template, sources, power_names)
    scaled, notes = onto_momentum.plan_momentum(src, template, momenta)
    return OntoPlan(plan, sources, kept, values, scaled, step_checks + notes)


__all__ = ["OntoPlan", "plan_onto"]
