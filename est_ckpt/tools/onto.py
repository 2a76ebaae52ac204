"""Converting a checkpoint onto a template's layout: the new model's own keys, values from the old one.

`convert_checkpoint(src, dst, like=TEMPLATE)` writes a checkpoint with exactly
TEMPLATE's keys, dtypes, shapes and object graph (its entry, byte for byte),
every variable's value taken from SRC. Which SRC key feeds which TEMPLATE
variable is the plan `est-ckpt map SRC --target TEMPLATE --optimizer_state`
shows (`mapping.optimizer_state.plan_onto_template`: the warm-start planner's
`map_checkpoints`, plus optimizer state): TF1 names, recorded
`full_name`s or object paths on both sides, `assignment_map`, `rename_rules`.

Like `convert`, only the index is written: an entry is reused verbatim (its
shard renumbered), SRC's and TEMPLATE's data shards are shared by hard link,
nothing is loaded (but the step count and Adam's powers, scalars) and TensorFlow
is never imported. TEMPLATE keys that are
not variables (and `save_counter`, bookkeeping of `tf.train.Checkpoint`)
keep TEMPLATE's entries; so do unmapped variables with `keep_unmapped`.
Optimizer state maps both ways between TF1 slots, the TF 2.11+ Keras
optimizer's variables and legacy Keras `.OPTIMIZER_SLOT`s where both
optimizers give it the same meaning (`mapping.optimizer_state`); its
hyperparameters keep TEMPLATE's values. The step count carried over is
checked against SRC's TF1 Adam powers, and a TF1 template's powers that SRC
lacks are derived from the step count: the only values written, in one
small extra shard (`onto_steps`). Parts saved one by one in SRC are joined
into one partitioned entry over their own data.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence, Union

from est_ckpt.errors import ConversionError, UnmappedVariablesError
from est_ckpt.format import bundle, checkpoint, keys
from est_ckpt.mapping import NameIndex, RenameRule, Source, WarmStartPlan
from est_ckpt.mapping.optimizer_slots import step_key
from est_ckpt.mapping.optimizer_state import is_hyperparameter, plan_onto_template, power_targets
from est_ckpt.mapping.tf1_names import SAVE_COUNTER, join_parts, slices_by_name
from est_ckpt.tools import onto_steps, publish


@dataclasses.dataclass(frozen=True)
class OntoReport:
    """What a conversion onto a template did.

    Attributes:
      prefix: the prefix written.
      plan: the mapping applied (the plan `est-ckpt map SRC --target TEMPLATE` shows).
      kept: TEMPLATE keys that keep TEMPLATE's values, in key order.
      computed: TEMPLATE keys given new values that SRC does not hold (TF1 Adam's
        `beta1_power`/`beta2_power` from a Keras step count), with those values.
      step_checks: how the step count carried over was checked against SRC's Adam powers.
      state_file_updated: whether the `checkpoint` state file now names `prefix`.
      copied_bytes: data copied rather than linked (remote paths).
    """

    prefix: str
    plan: WarmStartPlan
    kept: tuple[str, ...]
    state_file_updated: bool
    copied_bytes: int
    computed: tuple[tuple[str, float], ...] = ()
    step_checks: tuple[str, ...] = ()


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


def plan_onto(
    src: checkpoint.CheckpointInfo,
    template: checkpoint.CheckpointInfo,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    keep_unmapped: bool = False,
) -> tuple[WarmStartPlan, dict[str, Union[str, Source]], tuple[str, ...]]:
    """Plans a conversion onto `template`: `(plan, {template key: src key}, kept template keys)`.

    A source saved in parts one by one (`Source` of several keys) onto one
    template key is joined: DST's entry is partitioned over the parts' own
    entries. A template variable in parts from a whole source is refused.

    Raises:
      UnmappedVariablesError: template variables without a source (without `keep_unmapped`).
      AmbiguousNameError, MismatchError, UnusedMappingError: as the plan refuses them.
      ConversionError: a template variable saved in parts one by one that SRC holds whole.
    """
    plan = plan_onto_template(src, template, assignment_map=assignment_map, rename_rules=rename_rules)
    index = NameIndex(template)
    powers = power_targets(plan, src)
    # Hyperparameters are not state: they keep the template's values. Ambiguous sources, mismatches and
    # unused map entries are refused even with keep_unmapped. TF1 Adam powers SRC lacks are derived.
    refused = tuple(
        u
        for u in plan.unmapped
        if u.ambiguous_keys or not (keep_unmapped or _hyperparameter(index, u.target) or u.target in powers)
    )
    dataclasses.replace(plan, unmapped=refused).raise_for_errors()
    sources: dict[str, Union[str, Source]] = {}
    for a in plan.assignments:
        found, _ = index.resolve(a.target, shape=a.target_shape)
        if found is None:  # `targets_from_checkpoint` names every target so that it resolves.
            raise ConversionError(f"{template.prefix}: '{a.target}' does not name one key of the template.")
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
    left = [t for k, t in template.tensors.items() if k not in sources and k != keys.OBJECT_GRAPH_KEY]
    missing = [t.key for t in left if not (_bookkeeping(t) or is_hyperparameter(t) or t.key in powers)]
    if missing and not keep_unmapped:
        # Slots and other variables `map_checkpoints` does not plan (its unmapped ones raised above).
        raise UnmappedVariablesError(
            f"{template.prefix}: {len(missing)} template variable(s) have no source in {src.prefix}: "
            + ", ".join(f"'{k}'" for k in missing)
            + ". Map them with `assignment_map` (an object path or name on either side) or pass "
            "keep_unmapped=True (--keep_unmapped) to keep the template's values."
        )
    return plan, sources, tuple(t.key for t in left if t.key not in powers)


def convert_onto(
    src: str,
    dst_prefix: str,
    *,
    like: str,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    keep_unmapped: bool = False,
    force: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> OntoReport:
    """`convert_checkpoint(src, dst_prefix, like=...)`, returning an `OntoReport` (used by the CLI)."""
    info = checkpoint.read_checkpoint(src)
    template = checkpoint.read_checkpoint(like)
    plan, sources, kept = plan_onto(
        info, template, assignment_map=assignment_map, rename_rules=rename_rules, keep_unmapped=keep_unmapped
    )
    step_checks = onto_steps.check_step(info, template, sources)
    powers = {k: p for k, p in power_targets(plan, info).items() if k not in sources}
    t_step = step_key(template)
    if powers and keep_unmapped and (t_step is None or t_step not in sources):
        # No step count carried over: the template keeps its own, and its powers agree with it.
        kept = tuple(sorted((*kept, *powers)))
        powers = {}
    computed = onto_steps.power_tensors(info, template, sources, powers)
    dest = publish.destination(info.prefix, dst_prefix, force=force, inputs=(template.prefix,))

    # One shard set: SRC's shards that an entry uses, then TEMPLATE's, renumbered in that order.
    slices = {id(b): slices_by_name(b) for b in (info.bundle, template.bundle)}
    # (bundle, entry, its parts if partitioned, key in DST)
    chosen: list[tuple[bundle.Bundle, bundle.Entry, tuple, str]] = []
    for key in template.bundle.entries:
        source = sources.get(key)
        if key in computed:
            continue
        if isinstance(source, Source):  # parts saved one by one, joined
            joined = join_parts(info, key, source)
            chosen.append((info.bundle, joined.entry, joined.parts, key))
            continue
        b, old = (info.bundle, source) if source is not None else (template.bundle, key)
        chosen.append((b, b.entries[old], tuple(slices[id(b)].get(old, ())), key))
    used: dict[tuple[int, int], int] = {}
    shards: list[tuple[str, int]] = []
    for which in (info.bundle, template.bundle):
        ids = set()
        for b, entry, parts, _ in chosen:
            if b is which:
                entries = [e for _, e in parts] or [entry]
                ids.update(e.shard_id for e in entries if not e.slices)
        for old in sorted(ids):
            used[(id(which), old)] = len(shards)
            shards.append((which.data_path(old), which.shard_sizes[old]))

    def moved(b: bundle.Bundle, entry: bundle.Entry) -> bytes:
        new = used[(id(b), entry.shard_id)]
        return entry.raw if new == entry.shard_id else bundle.encode_entry(entry, shard_id=new)

    rows: dict[bytes, bytes] = {}
    for b, entry, parts, new_key in chosen:
        if entry.slices:
            rows[new_key.encode("utf-8")] = entry.raw
            for extents, part in parts:
                rows[bundle.encode_slice_key(new_key, extents)] = moved(b, part)
        else:
            rows[new_key.encode("utf-8")] = moved(b, entry)
    new_shard = None
    if computed:
        new_rows, new_shard = onto_steps.encode_scalars(computed, len(shards))
        rows.update(new_rows)
    header = bundle.encode_header(len(shards) + (new_shard is not None), template=template.bundle.header)
    copied = publish.publish(dest, header, rows, shards, new_shard=new_shard, progress=progress)
    return OntoReport(dest.prefix, plan, kept, True, copied, tuple(computed.items()), step_checks)


__all__ = ["OntoReport", "convert_onto", "plan_onto"]
