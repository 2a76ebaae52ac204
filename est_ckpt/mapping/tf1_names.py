"""Every variable of a checkpoint under its TF1 name: how `convert` keys a TF1 checkpoint and `diff` matches.

A name-based checkpoint's keys are its TF1 names. An object-based one's
variables are named by `names.NameIndex`'s rules (the recorded `full_name`;
parts saved one by one become one variable), plus what only a whole
checkpoint says: the root's `step` is `global_step`, its `save_counter`
(bookkeeping of `tf.train.Checkpoint`) is dropped, and an optimizer slot
whose name is missing or shared gets the TF1 name its optimizer would have
given it (`w/Adam`, `w/Adam_1`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple, Optional, Sequence

from est_ckpt.errors import ConversionError
from est_ckpt.format import bundle, checkpoint, keys, tensors
from est_ckpt.mapping import optimizer_slots
from est_ckpt.mapping.names import NameIndex, Source

GLOBAL_STEP = "global_step"
SAVE_COUNTER = "save_counter"
STEP = "step"

_UNIQUIFIED = re.compile(r"_\d+$")


@dataclasses.dataclass(frozen=True)
class Variable:
    """One variable of a checkpoint under its TF1 name.

    Attributes:
      name: the TF1 name (or the key, where a lenient naming found none).
      entry: the stored entry, reused verbatim; for a partitioned variable the
        entry of the whole (dtype, shape, slices, no data of its own).
      parts: for a partitioned variable, each slice's extents and entry.
      source_keys: the key, or each part's key in part order.
    """

    name: str
    entry: bundle.Entry
    parts: tuple[tuple[tuple[tuple[int, int], ...], bundle.Entry], ...] = ()
    source_keys: tuple[str, ...] = ()


class Naming(NamedTuple):
    """The result of `tf1_variables`: the variables, and the keys left out."""

    variables: list[Variable]
    dropped: list[str]
    skipped_slots: list[str]


def slices_by_name(b: bundle.Bundle) -> dict[str, tuple]:
    """Every partitioned variable's `(extents, entry)` parts, by variable key."""
    out: dict[str, list] = {}
    for s in b.slice_entries:
        out.setdefault(s.name, []).append((s.extents, s.entry))
    return {k: tuple(v) for k, v in out.items()}


def _root_child_keys(info: checkpoint.CheckpointInfo) -> dict[str, str]:
    """Maps the keys of the root's `step` and `save_counter` variables to those names."""
    out = {}
    graph = info.object_graph
    if graph is None or not graph.nodes:
        return out
    for node_id, local_name in graph.nodes[0].children:
        if local_name in (STEP, SAVE_COUNTER):
            for attr in graph.nodes[node_id].attributes:
                if attr.checkpoint_key:
                    out[attr.checkpoint_key] = local_name
    return out


def _derive_slot_name(
    var_name: str, slot: checkpoint.SlotInfo, full_name: str, all_slots: Sequence[str]
) -> Optional[str]:
    """Derives TF1's `<var>/<Op>[_k]` name of a slot, or None if it cannot be told."""
    op = None
    if full_name and "/" in full_name:
        candidate = _UNIQUIFIED.sub("", full_name.rsplit("/", 1)[1])
        if any(o.op == candidate for o in optimizer_slots.TF1_OPTIMIZERS):
            op = candidate
    suffix = optimizer_slots.tf1_slot_suffix(slot.slot_name, set(all_slots), op)
    return None if suffix is None else f"{var_name}/{suffix}"


def join_parts(info: checkpoint.CheckpointInfo, name: str, source: Source) -> Variable:
    """Parts saved one by one (a `NameIndex` `Source` of several keys) as one partitioned variable `name`.

    Index only: one sliced entry (dtype, whole shape, each part's extents)
    over the parts' own entries, whose data stays where it is.
    """
    entries = [info.bundle.entries[k] for k in source.keys]
    parts, start = [], 0
    for e in entries:
        extents = tuple((start, n) if d == source.axis else (0, n) for d, n in enumerate(e.shape))
        parts.append((extents, e))
        start += e.shape[source.axis]
    whole = tensors.sliced_entry(name, entries[0].dtype, source.shape, [extents for extents, _ in parts])
    return Variable(name, whole, tuple(parts), source.keys)


def tf1_variables(
    info: checkpoint.CheckpointInfo,
    *,
    names: str = "full_name",
    skip_underivable_slots: bool = False,
    strict: bool = True,
) -> Naming:
    """Gives every tensor of `info` its TF1 name.

    Args:
      info: the checkpoint.
      names: for tf2, `"full_name"` names variables by their recorded names,
        `"path"` by their object paths.
      skip_underivable_slots: leave out slots whose TF1 name cannot be derived
        instead of raising.
      strict: raise on empty or duplicate names; False (diff) names such a
        variable by its key instead.

    Returns:
      `(variables, dropped keys, skipped slot keys)`.

    Raises:
      ConversionError: names are empty or duplicate, or a slot's TF1 name
        cannot be derived and `skip_underivable_slots` is false.
    """
    b = info.bundle
    slices = slices_by_name(b)
    if info.format == "tf1":
        return Naming([Variable(k, e, slices.get(k, ()), (k,)) for k, e in b.entries.items()], [], [])
    special = _root_child_keys(info)
    dropped, chosen = [], {}
    for key, t in info.variables.items():
        role = special.get(key)
        if role == SAVE_COUNTER:
            dropped.append(key)
        elif role == STEP:
            chosen[key] = GLOBAL_STEP
        elif names == "path":
            chosen[key] = keys.strip_value_suffix(key)
        else:
            chosen[key] = t.name or ""
    by_name: dict[str, list[str]] = {}
    for key, name in chosen.items():
        by_name.setdefault(name, []).append(key)
    # Slots without a usable name of their own are named after their variable, as TF1 optimizers do.
    skipped, underivable = [], []
    siblings_of: dict[tuple[str, str], list[str]] = {}
    for t in info.tensors.values():
        if t.slot is not None:
            siblings_of.setdefault((t.slot.variable_path, t.slot.optimizer_path), []).append(t.slot.slot_name)
    for key, name in list(chosen.items()):
        slot = info.tensors[key].slot
        if slot is None or (name and len(by_name[name]) == 1):
            continue
        var_name = chosen.get(keys.attribute_key(slot.variable_path))
        siblings = siblings_of[(slot.variable_path, slot.optimizer_path)]
        derived = None
        if var_name and len(by_name.get(var_name, ())) == 1:
            derived = _derive_slot_name(var_name, slot, info.tensors[key].name or "", siblings)
        if derived is not None:
            by_name[name].remove(key)
            by_name.setdefault(derived, []).append(key)
            chosen[key] = derived
        elif skip_underivable_slots:
            by_name[name].remove(key)
            del chosen[key]
            skipped.append(key)
        elif strict:
            underivable.append(key)
    if underivable:
        what = (
            f"{info.prefix}: the TF1 name of {len(underivable)} slot variable(s) cannot be derived: "
            f"{', '.join(underivable)}. Pass"
        )
        raise ConversionError(
            f"{what} skip_underivable_slots=True to leave them out, or names='path' to name every variable "
            "by its object path."
        ).for_cli(
            f"{what} --skip_underivable_slots to leave them out, or --names=path to name every variable by "
            "its object path."
        )
    index = NameIndex(info)
    out: list[Variable] = []
    problems = []
    for name, ks in sorted(by_name.items()):
        if not ks:
            continue
        if len(ks) > 1 and name:
            parts = index.parts(ks)
            if parts is not None:
                out.append(join_parts(info, name, parts))
                continue
        if not name or len(ks) > 1:
            if strict:
                problems.append((name, ks))
                continue
            for k in ks:
                out.append(Variable(k, b.entries[k], slices.get(k, ()), (k,)))
            continue
        k = ks[0]
        out.append(Variable(name, b.entries[k], slices.get(k, ()), (k,)))
    if problems:
        listed = "; ".join(
            f"'{n}' held by {', '.join(ks)}" if n else f"no name: {', '.join(ks)}" for n, ks in problems
        )
        raise ConversionError(
            f"{info.prefix}: variables cannot be keyed by their TF1 names (full_name), which are empty or "
            f"duplicate: {listed}. Pass names='path' (--names=path) to key them by object path instead."
        )
    return Naming(out, dropped, skipped)


def list_variables(ckpt_dir_or_file: str) -> list[tuple[str, list[int]]]:
    """`tf.train.list_variables` for either checkpoint kind: `(TF1 name, shape)` of every variable, sorted.

    For an object-based checkpoint the names are the recorded `full_name`s (parts
    saved one by one listed once, as their whole variable; `global_step` for the
    step), so TF1 code that builds an `assignment_map` from them (BERT's
    `get_assignment_map_from_checkpoint`) finds its variables. TF's own function
    lists object paths there, which match no variable of a TF1 graph. No
    TensorFlow needed.

    Raises:
      CheckpointNotFoundError, CorruptCheckpointError: the checkpoint cannot be read.
    """
    info = checkpoint.read_checkpoint(ckpt_dir_or_file)
    if info.format == "tf1":
        return sorted((k, list(t.shape)) for k, t in info.tensors.items())
    naming = tf1_variables(info, skip_underivable_slots=True, strict=False)
    return sorted((v.name, list(v.entry.shape)) for v in naming.variables)
