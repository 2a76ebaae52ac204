"""Checkpoint conversion TF1 <-> TF2 and checkpoint diff, without copying tensor bytes.

A conversion only renames keys and adds or drops the object graph, so it
rewrites the index (reusing every `BundleEntryProto` verbatim) and shares the
data shards by hard link (local) or copies them through `tf.io.gfile` (remote).
A new object graph goes into a data shard of its own. TensorFlow is never
imported on a local conversion.

Layouts:
  * `to="tf2"` is what `make_tf2_scaffold()` saves, the layout of
    `tf.train.Checkpoint(var_list={name: variable}, step=global_step)`:
    `var_list/<escaped name>/.ATTRIBUTES/VARIABLE_VALUE` for every variable but
    the global step, `step/.ATTRIBUTES/VARIABLE_VALUE` for `global_step`, and an
    object graph recording each variable's name as its `full_name`. The one
    deliberate difference: a partitioned variable stays ONE sliced entry under
    `var_list/<name>` with its slices, where `make_tf2_scaffold()` saves parts
    (`var_list/<name>.Spart_0`...). The sliced entry keeps the partitioning
    (any axis) and is what TF's name-based readers want: `load_checkpoint`,
    `warm_start` (whose name mapping keeps only one part of a name) and
    `Checkpoint.read` into a whole `tf.Variable` all read it whole, and
    `make_tf2_scaffold()` restores it by name.
  * `to="tf1"` keys every variable by its TF1 name: the `full_name` recorded in
    the object graph (or its object path with `names="path"`). `step` becomes
    `global_step`; `save_counter` (bookkeeping of `tf.train.Checkpoint`) is
    dropped. Parts of a partitioned variable saved one by one (`emb/part_0`...,
    all with `full_name` `emb`) become one sliced entry again.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from typing import Optional, Sequence

from est_ckpt import fileio
from est_ckpt.errors import ConversionError, DestinationExistsError, FormatError
from est_ckpt.format import bundle, checkpoint, dtypes, keys, object_graph, state_file, tensors, wire
from est_ckpt.format.table import read_table

FORMATS = ("tf1", "tf2")
NAMINGS = ("full_name", "path")
GLOBAL_STEP = "global_step"
SAVE_COUNTER = "save_counter"
STEP = "step"
VAR_LIST = "var_list"
PROGRESS_THRESHOLD = 100 * 1000 * 1000

# Slot names of TF1 optimizers in the order they create them: the first slot of
# `<var>` is `<var>/<Op>`, the k-th `<var>/<Op>_k` (TF uniquifies the op name).
_TF1_SLOTS = {
    "Adam": ("m", "v"),
    "RMSProp": ("rms", "momentum"),
    "Ftrl": ("accum", "linear"),
    "Adadelta": ("accum", "accum_update"),
    "Adagrad": ("accumulator",),
    "ProximalAdagrad": ("accumulator",),
    "Momentum": ("momentum",),
}
_PART = re.compile(r"(?:^|/)part_(\d+)$")
_UNIQUIFIED = re.compile(r"_\d+$")


@dataclasses.dataclass(frozen=True)
class _Var:
    """One variable of the source under its TF1 name.

    `entry` is reused verbatim; for a partitioned variable `parts` holds each
    slice's extents and entry (and `entry` has no data of its own).
    """

    name: str
    entry: bundle.Entry
    parts: tuple[tuple[tuple[tuple[int, int], ...], bundle.Entry], ...] = ()
    source_keys: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """What `convert` did: the prefix written and the tensors left out."""

    prefix: str
    dropped: tuple[str, ...]
    skipped_slots: tuple[str, ...]
    state_file_updated: bool
    copied_bytes: int


# -- naming -------------------------------------------------------------------------


def _slices_by_name(b: bundle.Bundle) -> dict[str, tuple]:
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
        if candidate in _TF1_SLOTS:
            op = candidate
    if op is None:
        fits = [
            o for o, names in _TF1_SLOTS.items() if set(all_slots) <= set(names) and slot.slot_name in names
        ]
        if len({_TF1_SLOTS[o] for o in fits}) == 1:
            op = fits[0]
    if op is None or slot.slot_name not in _TF1_SLOTS[op]:
        return None
    k = _TF1_SLOTS[op].index(slot.slot_name)
    return f"{var_name}/{op}" + (f"_{k}" if k else "")


def _group_parts(
    info: checkpoint.CheckpointInfo, name: str, ks: list[str]
) -> Optional[tuple[bundle.Entry, tuple]]:
    """Rebuilds a partitioned variable from parts saved one by one (`.../part_<i>`).

    TF's partitioners split along axis 0 and name the parts `part_0`... in
    order; anything else is left to the duplicate-name error.
    """
    indexed = {}
    for key in ks:
        t = info.tensors[key]
        entry = info.bundle.entries[key]
        if entry.slices or t.slot is not None or not entry.shape:
            return None
        path = t.object_path or keys.strip_value_suffix(key)
        try:
            m = _PART.search(keys.split_path(path)[-1]) if path else None
        except keys.KeyGrammarError:
            return None
        if m is None:
            return None
        indexed[int(m.group(1))] = entry
    if sorted(indexed) != list(range(len(ks))):
        return None
    entries = [indexed[i] for i in range(len(ks))]
    first = entries[0]
    if any(e.dtype != first.dtype or e.shape[1:] != first.shape[1:] for e in entries):
        return None
    parts, start = [], 0
    for e in entries:
        extents = ((start, e.shape[0]),) + tuple((0, d) for d in e.shape[1:])
        parts.append((extents, e))
        start += e.shape[0]
    shape = (start,) + first.shape[1:]
    return _sliced_entry(name, first.dtype, shape, [p[0] for p in parts]), tuple(parts)


def _sliced_entry(key: str, dtype: int, shape: Sequence[int], slices: Sequence) -> bundle.Entry:
    """The entry of a partitioned variable as TF writes it: dtype, shape, slices, no data."""
    shape_proto = b"".join(
        wire.field_bytes(bundle.SHAPE_DIM, wire.field_varint(bundle.DIM_SIZE, d) if d else b"") for d in shape
    )
    raw = wire.field_varint(bundle.ENTRY_DTYPE, dtype) + wire.field_bytes(bundle.ENTRY_SHAPE, shape_proto)
    for extents in slices:
        proto = b""
        for start, length in extents:
            ext = wire.field_varint(bundle.EXTENT_START, start) if start else b""
            ext += wire.field_varint(bundle.EXTENT_LENGTH, length)
            proto += wire.field_bytes(bundle.SLICE_EXTENT, ext)
        raw += wire.field_bytes(bundle.ENTRY_SLICES, proto)
    return bundle.parse_entry(key, raw)


def _resolve_names(
    info: checkpoint.CheckpointInfo,
    *,
    names: str = "full_name",
    skip_underivable_slots: bool = False,
    strict: bool = True,
) -> tuple[list[_Var], list[str], list[str]]:
    """Gives every tensor of `info` its TF1 name.

    Returns `(variables, dropped keys, skipped slot keys)`. With `strict=False`
    (diff), an empty or duplicate name falls back to the key instead of raising.

    Raises:
      ConversionError: names are empty or duplicate, or a slot's TF1 name
        cannot be derived and `skip_underivable_slots` is false.
    """
    b = info.bundle
    slices = _slices_by_name(b)
    if info.format == "tf1":
        return [_Var(k, e, slices.get(k, ()), (k,)) for k, e in b.entries.items()], [], []
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
        raise ConversionError(
            f"{info.prefix}: the TF1 name of {len(underivable)} slot variable(s) cannot be derived: "
            f"{', '.join(underivable)}. Pass skip_underivable_slots=True (--skip_underivable_slots) to leave "
            "them out, or names='path' (--names=path) to name every variable by its object path."
        )
    out: list[_Var] = []
    problems = []
    for name, ks in sorted(by_name.items()):
        if not ks:
            continue
        if len(ks) > 1 and name:
            grouped = _group_parts(info, name, ks)
            if grouped is not None:
                out.append(_Var(name, grouped[0], grouped[1], tuple(sorted(ks))))
                continue
        if not name or len(ks) > 1:
            if strict:
                problems.append((name, ks))
                continue
            for k in ks:
                out.append(_Var(k, b.entries[k], slices.get(k, ()), (k,)))
            continue
        k = ks[0]
        out.append(_Var(name, b.entries[k], slices.get(k, ()), (k,)))
    if problems:
        listed = "; ".join(
            f"'{n}' held by {', '.join(ks)}" if n else f"no name: {', '.join(ks)}" for n, ks in problems
        )
        raise ConversionError(
            f"{info.prefix}: variables cannot be keyed by their TF1 names (full_name), which are empty or "
            f"duplicate: {listed}. Pass names='path' (--names=path) to key them by object path instead."
        )
    return out, dropped, skipped


# -- writing -------------------------------------------------------------------------


def _tf2_key(var: _Var) -> str:
    if var.name == GLOBAL_STEP:
        return keys.attribute_key(STEP)
    return keys.variable_key([VAR_LIST, var.name])


def _object_graph(variables: Sequence[_Var]) -> bytes:
    """The object graph TF writes for `Checkpoint(var_list={name: var}, step=global_step)`.

    Nodes are numbered breadth first, root children sorted (as `Checkpoint`
    sorts its keyword arguments), `var_list` entries sorted by name.
    """
    step = [v for v in variables if v.name == GLOBAL_STEP]
    listed = sorted((v for v in variables if v.name != GLOBAL_STEP), key=lambda v: v.name)
    root_children, nodes = [], [None]

    def leaf(var: _Var) -> object_graph.ObjectNode:
        attr = object_graph.SerializedTensor(keys.VARIABLE_VALUE, var.name, _tf2_key(var))
        return object_graph.ObjectNode((), (attr,), ())

    if step:
        root_children.append((len(nodes), STEP))
        nodes.append(leaf(step[0]))
    if listed:
        var_list_id = len(nodes)
        root_children.append((var_list_id, VAR_LIST))
        nodes.append(None)
        children = []
        for var in listed:
            children.append((len(nodes), var.name))
            nodes.append(leaf(var))
        nodes[var_list_id] = object_graph.ObjectNode(tuple(children), (), ())
    nodes[0] = object_graph.ObjectNode(tuple(root_children), (), ())
    return object_graph.encode_object_graph(object_graph.ObjectGraph(tuple(nodes)))


def _data_files(prefix: str) -> list[str]:
    directory, base = fileio.dirname(prefix) or ".", fileio.basename(prefix)
    try:
        listing = fileio.listdir(directory)
    except (OSError, Exception):  # gfile raises its own NotFoundError.
        return []
    pattern = re.compile(re.escape(base) + r"\.data-\d{5}-of-\d{5}$")
    return [fileio.join(directory, n) for n in listing if pattern.match(n)]


def _progress_printer(label: str):
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if total <= PROGRESS_THRESHOLD:
            return
        now = time.monotonic()
        if done < total and now - last[0] < 0.5:
            return
        last[0] = now
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(
            f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done / 1e6:.0f}/{total / 1e6:.0f} MB"
            + ("\n" if done >= total else "")
        )
        sys.stderr.flush()

    return progress


def _same_file(a: str, b: str) -> bool:
    if fileio.is_remote(a) or fileio.is_remote(b):
        return a.rstrip("/") == b.rstrip("/")
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _resolve_destination(src_prefix: str, dst: str) -> str:
    """Returns the prefix `dst` names: in a model directory, the source's base name."""
    dst = str(dst)
    if dst.endswith(("/", os.sep)) or fileio.isdir(dst):
        return fileio.join(dst.rstrip("/").rstrip(os.sep) or dst, fileio.basename(src_prefix))
    return dst


def _verify(prefix: str, header: bytes, rows: dict[bytes, bytes], shard_sizes: Sequence[int]) -> None:
    """Reads the written checkpoint back: every index block's CRC, every entry byte for byte, every shard's size.

    Entries are compared as bytes, so keys, dtypes, shapes, slices and
    offsets all read back exactly as they were validated in the source.
    """
    path = bundle.index_path(prefix)
    try:
        table = read_table(fileio.read_bytes(path))
    except (OSError, FormatError) as e:
        raise ConversionError(f"{path}: the index written does not read back ({e}).") from None
    if len(table) != len(rows) + 1 or dict(table) != {b"": header, **rows}:
        raise ConversionError(f"{path}: the index written does not read back as written.")
    for shard, size in enumerate(shard_sizes):
        data = bundle.data_path(prefix, shard, len(shard_sizes))
        if fileio.getsize(data) != size:
            raise ConversionError(f"{data}: {fileio.getsize(data)} bytes read back, {size} expected.")


def convert(
    src: str,
    dst_prefix: str,
    *,
    to: str,
    force: bool = False,
    names: str = "full_name",
    skip_underivable_slots: bool = False,
) -> ConversionReport:
    """Like `convert_checkpoint`, but returns a `ConversionReport` (used by the CLI)."""
    if to not in FORMATS:
        raise ConversionError(f"`to` must be one of {FORMATS} (got {to!r}).")
    if names not in NAMINGS:
        raise ConversionError(f"`names` must be one of {NAMINGS} (got {names!r}).")
    info = checkpoint.read_checkpoint(src)
    src_prefix = info.prefix
    prefix = _resolve_destination(src_prefix, dst_prefix)
    directory = fileio.dirname(prefix) or "."
    if _same_file(prefix, src_prefix) or (
        fileio.exists(bundle.index_path(prefix))
        and _same_file(bundle.index_path(prefix), bundle.index_path(src_prefix))
    ):
        raise ConversionError(f"{prefix}: the destination is the source checkpoint; choose another prefix.")
    existing = _data_files(prefix)
    if fileio.exists(bundle.index_path(prefix)):
        existing.append(bundle.index_path(prefix))
    if existing and not force:
        raise DestinationExistsError(
            f"Destination {prefix} already exists ({fileio.basename(existing[0])}); pass force=True (--force) to replace it."
        )

    variables, dropped, skipped = _resolve_names(
        info, names=names, skip_underivable_slots=skip_underivable_slots, strict=True
    )
    rename = _tf2_key if to == "tf2" else (lambda v: v.name)
    # Only shards that a kept entry uses are carried over, renumbered in order.
    used = sorted(
        {v.entry.shard_id for v in variables if not v.entry.slices}
        | {e.shard_id for v in variables for _, e in v.parts}
    )
    shard_map = {old: new for new, old in enumerate(used)}
    rows: dict[bytes, bytes] = {}

    def moved(entry: bundle.Entry) -> bytes:
        new = shard_map[entry.shard_id]
        return entry.raw if new == entry.shard_id else bundle.encode_entry(entry, shard_id=new)

    for var in variables:
        key = rename(var)
        if var.entry.slices or var.parts:
            rows[key.encode("utf-8")] = var.entry.raw
            for extents, part in var.parts:
                rows[bundle.encode_slice_key(key, extents)] = moved(part)
        else:
            rows[key.encode("utf-8")] = moved(var.entry)
    num_shards = len(used)
    shard_sizes = [info.bundle.shard_sizes[old] for old in used]
    graph_data = None
    if to == "tf2":
        graph_data = tensors.encode_string_tensor([_object_graph(variables)])
        rows[keys.OBJECT_GRAPH_KEY.encode()] = tensors.new_entry(
            dtypes.DT_STRING, (), num_shards, 0, graph_data
        )
        shard_sizes.append(len(graph_data))
        num_shards += 1
    header = bundle.encode_header(num_shards, template=info.bundle.header)
    index = bundle.build_index(header, rows.items())

    fileio.makedirs(directory)
    fileio.remove_abandoned_temps(directory)
    tmp = fileio.temp_prefix(prefix)
    created: list[str] = []
    copied = 0
    try:
        for old, new in shard_map.items():
            target = bundle.data_path(tmp, new, num_shards)
            source = info.bundle.data_path(old)
            created.append(target)
            how = fileio.link_or_copy(
                source, target, progress=_progress_printer(f"copying {fileio.basename(source)}")
            )
            if how == "copy":
                copied += info.bundle.shard_sizes[old]
        if graph_data is not None:
            target = bundle.data_path(tmp, num_shards - 1, num_shards)
            created.append(target)
            fileio.write_new(target, graph_data)
        created.append(bundle.index_path(tmp))
        fileio.write_new(bundle.index_path(tmp), index)
        _verify(tmp, header, rows, shard_sizes)
        # Publish: the old index goes first and the new one last, so no half-written DST is ever readable.
        if existing:
            fileio.remove(bundle.index_path(prefix))
        finals = []
        for shard in range(num_shards):
            final = bundle.data_path(prefix, shard, num_shards)
            fileio.rename(bundle.data_path(tmp, shard, num_shards), final)
            finals.append(final)
        fileio.rename(bundle.index_path(tmp), bundle.index_path(prefix))
    except BaseException:
        for path in created:
            fileio.remove(path)
        raise
    for stale in existing:
        if stale not in finals and stale != bundle.index_path(prefix):
            fileio.remove(stale)
    # As `Saver.save` does, even in a new directory: so `tf.train.latest_checkpoint` and Estimator find DST.
    state_file.record_latest(directory, prefix)
    return ConversionReport(prefix, tuple(dropped), tuple(skipped), True, copied)


def convert_checkpoint(
    src: str,
    dst_prefix: str,
    *,
    to: str,
    force: bool = False,
    names: str = "full_name",
    skip_underivable_slots: bool = False,
) -> str:
    """Converts a checkpoint between the TF1 (name-based) and TF2 (object-based) formats.

    Only the index is rewritten; tensor bytes are shared with `src` by hard
    link (or copied through `tf.io.gfile` for remote paths), so the cost does
    not grow with the size of the tensors. The result is written under a
    temporary prefix, read back, then renamed into place index last.

    Args:
      src: a checkpoint prefix, its `.index` / `.data-*` file, or a model directory.
      dst_prefix: the prefix to write. An existing directory (or a path ending
        in `/`) is a model directory: the checkpoint is written there under the
        source's base name. The destination directory's `checkpoint` state
        file is written (created if there is none, as `Saver.save` does) so
        that the new checkpoint is the latest.
      to: `"tf2"` for the `make_tf2_scaffold()` layout, `"tf1"` for name-based keys.
      force: replace an existing checkpoint at `dst_prefix`.
      names: for `to="tf1"` (and TF2 sources), `"full_name"` keys variables by
        their recorded TF1 names, `"path"` by their object paths.
      skip_underivable_slots: leave out slot variables whose TF1 name cannot be
        derived instead of raising.

    Returns:
      The prefix written.

    Raises:
      CheckpointNotFoundError: `src` is not a checkpoint.
      CorruptCheckpointError: `src` is damaged.
      DestinationExistsError: `dst_prefix` exists and `force` is false.
      ConversionError: bad arguments, names that are empty or duplicate,
        underivable slot names, or a destination that is the source.
    """
    return convert(
        src, dst_prefix, to=to, force=force, names=names, skip_underivable_slots=skip_underivable_slots
    ).prefix


__all__ = ["ConversionReport", "convert", "convert_checkpoint"]
