"""Checkpoint conversion TF1 <-> TF2, without copying tensor bytes.

A conversion only renames keys and adds or drops the object graph, so it
rewrites the index (reusing every `BundleEntryProto` verbatim) and shares the
data shards by hard link (local) or copies them through `tf.io.gfile` (remote).
A new object graph goes into a data shard of its own. TensorFlow is never
imported on a local conversion.

Layouts:
  * `to="tf2"` is what `make_tf2_scaffold()` saves, the layout of
    `tf.train.Checkpoint(var_list={name: variable}, step=global_step)`:
    `var_list/<escaped name>/.ATTRIBUTES/VARIABLE_VALUE` for every variable but
    the global step, `step/.ATTRIBUTES/VARIABLE_VALUE` for `global_step`,
    `save_counter/.ATTRIBUTES/VARIABLE_VALUE` (1), a hash table's `<name>-keys`
    and `<name>-values` as `var_list/<name>/.ATTRIBUTES/table-keys` and
    `table-values`, and an object graph recording each tensor's TF1 name as
    its `full_name`. The one
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
    all with `full_name` `emb`, split along any one axis) become one sliced
    entry again.

Naming is `est_ckpt.mapping.tf1_names`, the same naming `diff` matches by.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Callable, Mapping, Optional, Sequence

from est_ckpt.errors import ConversionError
from est_ckpt.format import checkpoint, dtypes, keras_file, keys, object_graph, tensors
from est_ckpt.format.assembly import Assembly
from est_ckpt.mapping.rules import RenameRule
from est_ckpt.mapping.rules_file import RulesArg
from est_ckpt.mapping.tf1_names import GLOBAL_STEP, SAVE_COUNTER, STEP, Variable, tf1_variables
from est_ckpt.tools import onto, publish

FORMATS = ("tf1", "tf2")
NAMINGS = ("full_name", "path")
VAR_LIST = "var_list"


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """What `convert` did: the prefix written and the tensors left out."""

    prefix: str
    dropped: tuple[str, ...]
    skipped_slots: tuple[str, ...]
    state_file_updated: bool
    copied_bytes: int


# -- writing -------------------------------------------------------------------------


SAVE_COUNTER_KEY = keys.attribute_key(SAVE_COUNTER)
# A hash table saved by name is `<name>-keys` and `<name>-values`; object-based, `<path>/.ATTRIBUTES/table-keys`...
_TABLE = "table"
_TABLE_PARTS = ("-keys", "-values")


def _tables(variables: Sequence[Variable]) -> dict[str, tuple[str, str]]:
    """`{TF1 name: (table name, part)}` of every `<name>-keys` and `<name>-values` pair (hash tables)."""
    names = {v.name for v in variables if not v.parts and not v.entry.slices}
    out = {}
    for name in names:
        base = name[: -len(_TABLE_PARTS[0])]
        if name.endswith(_TABLE_PARTS[0]) and base + _TABLE_PARTS[1] in names and base not in names:
            for part in _TABLE_PARTS:
                out[base + part] = (base, part)
    return out


def _tf2_key(var: Variable, tables: Mapping[str, tuple[str, str]]) -> str:
    if var.name == GLOBAL_STEP:
        return keys.attribute_key(STEP)
    if var.name in tables:
        base, part = tables[var.name]
        return keys.attribute_key(keys.join_path([VAR_LIST, base]), _TABLE + part)
    return keys.variable_key([VAR_LIST, var.name])


def _object_graph(variables: Sequence[Variable], tables: Mapping[str, tuple[str, str]]) -> bytes:
    """The object graph TF writes for `Checkpoint(var_list={name: var}, step=global_step)`.

    Nodes are numbered breadth first, root children sorted (as `Checkpoint`
    sorts its keyword arguments), `var_list` entries sorted by name. A hash
    table is one node with `table-keys` and `table-values`, `save_counter` a
    variable of the root.
    """
    step = [v for v in variables if v.name == GLOBAL_STEP]
    entries: dict[str, list[object_graph.SerializedTensor]] = {}
    for var in sorted((v for v in variables if v.name != GLOBAL_STEP), key=lambda v: v.name):
        base, part = tables.get(var.name, (var.name, None))
        attribute = keys.VARIABLE_VALUE if part is None else _TABLE + part
        entries.setdefault(base, []).append(
            object_graph.SerializedTensor(attribute, var.name, _tf2_key(var, tables))
        )
    # As TF numbers them: the root's children (its sorted arguments, then save_counter), then var_list's.
    root: list[tuple[str, object_graph.ObjectNode]] = []
    if step:
        attr = object_graph.SerializedTensor(keys.VARIABLE_VALUE, GLOBAL_STEP, _tf2_key(step[0], tables))
        root.append((STEP, object_graph.ObjectNode((), (attr,), ())))
    var_list_at = len(root)
    if entries:
        root.append((VAR_LIST, None))
    counter = object_graph.SerializedTensor(keys.VARIABLE_VALUE, SAVE_COUNTER, SAVE_COUNTER_KEY)
    root.append((SAVE_COUNTER, object_graph.ObjectNode((), (counter,), ())))
    nodes: list = [None] + [node for _, node in root]
    root_children = [(i + 1, name) for i, (name, _) in enumerate(root)]
    if entries:
        children = []
        for name in sorted(entries):
            children.append((len(nodes), name))
            nodes.append(object_graph.ObjectNode((), tuple(entries[name]), ()))
        nodes[var_list_at + 1] = object_graph.ObjectNode(tuple(children), (), ())
    nodes[0] = object_graph.ObjectNode(tuple(root_children), (), ())
    return object_graph.encode_object_graph(object_graph.ObjectGraph(tuple(nodes)))


def convert(
    src: str,
    dst_prefix: str,
    *,
    to: str,
    force: bool = False,
    names: str = "full_name",
    skip_underivable_slots: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> ConversionReport:
    """Like `convert_checkpoint`, but returns a `ConversionReport` (used by the CLI)."""
    if to not in FORMATS:
        raise ConversionError(f"`to` must be one of {FORMATS} (got {to!r}).")
    if names not in NAMINGS:
        raise ConversionError(f"`names` must be one of {NAMINGS} (got {names!r}).")
    info = checkpoint.read_checkpoint(src)
    if info.format == "keras":
        raise ConversionError(
            f"{src}: is {keras_file.describe(info.keras)}, not a TensorFlow checkpoint: --to converts between "
            "TF's two checkpoint kinds. Write a TF checkpoint in a model's layout with --like=TEMPLATE (a TF "
            "checkpoint of the model), or its tensors by name with `est-ckpt export`."
        )
    dest = publish.destination(info.prefix, dst_prefix, force=force)

    variables, dropped, skipped = tf1_variables(
        info, names=names, skip_underivable_slots=skip_underivable_slots, strict=True
    )
    tables = _tables(variables) if to == "tf2" else {}
    rename = (lambda v: _tf2_key(v, tables)) if to == "tf2" else (lambda v: v.name)
    # Only shards that a kept entry uses are carried over, renumbered in order.
    assembly = Assembly(info.bundle)
    for var in variables:
        key = rename(var)
        if var.entry.slices or var.parts:
            assembly.link_parts(key, var.entry, info.bundle, var.parts)
        else:
            assembly.link(key, info.bundle, var.entry)
    if to == "tf2":
        assembly.compute(
            keys.OBJECT_GRAPH_KEY,
            dtypes.DT_STRING,
            (),
            tensors.encode_string_tensor([_object_graph(variables, tables)]),
        )
        # As `tf.train.Checkpoint` after one save: save_counter 1, in the object graph's shard.
        assembly.compute(SAVE_COUNTER_KEY, dtypes.DT_INT64, (), struct.pack("<q", 1))
    publish.check_sources(assembly.referenced(), dest.prefix)
    out = assembly.rows(header_template=info.bundle.header)
    published = publish.publish(
        dest, out.header, out.rows, out.shards, new_shard=out.new_shard, progress=progress
    )
    return ConversionReport(
        dest.prefix, tuple(dropped), tuple(skipped), published.state_file_updated, published.copied_bytes
    )


def check_mode(*, to: Optional[str], like: Optional[str]) -> None:
    """Refuses both or neither of `to` and `like`."""
    if (to is None) == (like is None):
        raise ConversionError(
            "pass exactly one of `to` (tf1 or tf2) and `like` (a template checkpoint)"
            + (f" (got to={to!r} and like={like!r})." if to is not None else ".")
        )


def convert_checkpoint(
    src: str,
    dst_prefix: Optional[str] = None,
    *,
    dst: Optional[str] = None,
    to: Optional[str] = None,
    like: Optional[str] = None,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[RenameRule]] = None,
    keep_unmapped: bool = False,
    force: bool = False,
    names: str = "full_name",
    skip_underivable_slots: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
    rules: RulesArg = None,
) -> str:
    """Converts a checkpoint between the TF1 (name-based) and TF2 (object-based) formats, or onto a template.

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
      dst: the same as `dst_prefix`, by keyword (`convert_checkpoint(src, dst=...)`); give one of the two.
      to: `"tf2"` for the `make_tf2_scaffold()` layout, `"tf1"` for name-based keys.
      like: instead of `to`, a checkpoint of the new model (either kind, a
        prefix or model directory): the result has exactly its keys, dtypes,
        shapes and object graph, every variable's value taken from `src` by
        the plan `est-ckpt map SRC --target LIKE` shows (see `tools.onto`).
      assignment_map, rename_rules: with `like`, as for `plan_mapping`.
      rules: with `like`, a rules file, a preset's name (`'lstm'`, `'bert'`) or
        `Rules`: mapping rules with value transforms (`docs/transforms.md`).
        Reshapes are index only; other transforms compute their tensors,
        streamed, into one extra data shard.
      keep_unmapped: with `like`, keep the template's own values of its
        variables that have no source instead of raising.
      force: replace an existing checkpoint at `dst_prefix`.
      names: for `to="tf1"` (and TF2 sources), `"full_name"` keys variables by
        their recorded TF1 names, `"path"` by their object paths.
      skip_underivable_slots: leave out slot variables whose TF1 name cannot be
        derived instead of raising.
      progress: called as `progress(done_bytes, total_bytes)` while a data shard
        is copied rather than linked (remote paths), with the bytes of that
        shard copied so far and its size; the CLI draws a bar with it.

    Returns:
      The prefix written.

    Raises:
      CheckpointNotFoundError: `src` is not a checkpoint.
      CorruptCheckpointError: `src` is damaged.
      DestinationExistsError: `dst_prefix` exists and `force` is false.
      ConversionError: bad arguments, names that are empty or duplicate,
        underivable slot names, or a destination that is the source.
      UnmappedVariablesError, AmbiguousNameError, MismatchError, UnusedMappingError:
        with `like`, the plan is refused (nothing is written).
      TransformError: a rule's transforms do not fit its variables.
      RulesFileError: `rules` cannot be read.
    """
    if (dst_prefix is None) == (dst is None):
        raise ConversionError(
            "convert_checkpoint: give the destination once, as the second argument (`dst_prefix`) or as "
            f"`dst=` (got dst_prefix={dst_prefix!r}, dst={dst!r})."
        )
    dst_prefix = dst_prefix if dst is None else dst
    check_mode(to=to, like=like)
    if like is not None:
        if names != "full_name" or skip_underivable_slots:
            raise ConversionError("`names` and `skip_underivable_slots` apply to `to`, not to `like`.")
        return onto.convert_onto(
            src,
            dst_prefix,
            like=like,
            assignment_map=assignment_map,
            rename_rules=rename_rules,
            keep_unmapped=keep_unmapped,
            force=force,
            progress=progress,
            rules=rules,
        ).prefix
    if assignment_map or rename_rules or keep_unmapped or rules is not None:
        raise ConversionError(
            "`assignment_map`, `rename_rules`, `rules` and `keep_unmapped` apply to `like`, not to `to`."
        )
    return convert(
        src,
        dst_prefix,
        to=to,
        force=force,
        names=names,
        skip_underivable_slots=skip_underivable_slots,
        progress=progress,
    ).prefix


__all__ = ["ConversionReport", "check_mode", "convert", "convert_checkpoint"]
