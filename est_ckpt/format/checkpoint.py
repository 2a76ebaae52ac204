"""What a checkpoint holds: its tensors, its format and, for TF2, its object graph.

`resolve_checkpoint` turns a model directory, prefix or file path into a
prefix; `read_checkpoint` reads the index and the object graph without
TensorFlow and returns a `CheckpointInfo`.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Optional

from est_ckpt import fileio
from est_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError
from est_ckpt.format import bundle, keys, wire

STATE_FILENAME = "checkpoint"
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_STATE_LINE = re.compile(r'^\s*(model_checkpoint_path|all_model_checkpoint_paths)\s*:\s*(".*")\s*$')
_STEP = re.compile(r"-(\d+)$")


# -- object graph ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SerializedTensor:
    name: str
    full_name: str
    checkpoint_key: str


@dataclasses.dataclass(frozen=True)
class SlotReference:
    original_variable_node_id: int
    slot_name: str
    slot_variable_node_id: int


@dataclasses.dataclass(frozen=True)
class ObjectNode:
    children: tuple[tuple[int, str], ...]
    attributes: tuple[SerializedTensor, ...]
    slot_variables: tuple[SlotReference, ...]


@dataclasses.dataclass(frozen=True)
class ObjectGraph:
    """A `TrackableObjectGraph`: node 0 is the root."""

    nodes: tuple[ObjectNode, ...]

    def paths(self) -> dict[int, str]:
        """Returns the escaped object path of every node, root `''`, slot variables included."""
        paths: dict[int, str] = {0: ""} if self.nodes else {}
        queue = [0] if self.nodes else []
        while queue:
            node_id = queue.pop(0)
            base = paths[node_id]
            for child, local_name in self.nodes[node_id].children:
                if child not in paths:
                    esc = keys.escape(local_name)
                    paths[child] = f"{base}/{esc}" if base else esc
                    queue.append(child)
        # Slot variables hang off their optimizer, named after the variable they serve.
        changed = True
        while changed:
            changed = False
            for node_id, node in enumerate(self.nodes):
                if node_id not in paths:
                    continue
                for slot in node.slot_variables:
                    var_path = paths.get(slot.original_variable_node_id)
                    if var_path is None or slot.slot_variable_node_id in paths:
                        continue
                    paths[slot.slot_variable_node_id] = keys.slot_path(
                        var_path, paths[node_id], slot.slot_name
                    )
                    changed = True
        return paths


def parse_object_graph(data: bytes) -> ObjectGraph:
    """Decodes a serialized `TrackableObjectGraph` (raises `wire.WireError`)."""
    nodes = []
    for field, _, value in wire.iter_fields(data):
        if field != 1:
            continue
        children, attributes, slots = [], [], []
        for f, _, v in wire.iter_fields(wire.expect_bytes(value, "node")):
            if f == 1:
                node_id, name = 0, ""
                for f2, _, v2 in wire.iter_fields(wire.expect_bytes(v, "child")):
                    if f2 == 1:
                        node_id = wire.expect_int(v2, "child.node_id")
                    elif f2 == 2:
                        name = wire.decode_str(v2, "child.local_name")
                children.append((node_id, name))
            elif f == 2:
                vals = {1: "", 2: "", 3: ""}
                for f2, _, v2 in wire.iter_fields(wire.expect_bytes(v, "attribute")):
                    if f2 in vals:
                        vals[f2] = wire.decode_str(v2, "attribute field")
                attributes.append(SerializedTensor(vals[1], vals[2], vals[3]))
            elif f == 3:
                orig = slot_node = 0
                slot_name = ""
                for f2, _, v2 in wire.iter_fields(wire.expect_bytes(v, "slot")):
                    if f2 == 1:
                        orig = wire.expect_int(v2, "slot.original_variable_node_id")
                    elif f2 == 2:
                        slot_name = wire.decode_str(v2, "slot.slot_name")
                    elif f2 == 3:
                        slot_node = wire.expect_int(v2, "slot.slot_variable_node_id")
                slots.append(SlotReference(orig, slot_name, slot_node))
        nodes.append(ObjectNode(tuple(children), tuple(attributes), tuple(slots)))
    count = len(nodes)
    for node in nodes:
        refs = [c for c, _ in node.children]
        refs += [
            r for s in node.slot_variables for r in (s.original_variable_node_id, s.slot_variable_node_id)
        ]
        if any(not 0 <= r < count for r in refs):
            raise wire.WireError("object graph references a node that does not exist")
    return ObjectGraph(tuple(nodes))


def encode_object_graph(graph: ObjectGraph) -> bytes:
    """Serializes a `TrackableObjectGraph` (the inverse of `parse_object_graph`)."""
    out = bytearray()
    for node in graph.nodes:
        body = bytearray()
        for node_id, name in node.children:
            ref = (wire.field_varint(1, node_id) if node_id else b"") + wire.field_bytes(2, name.encode())
            body += wire.field_bytes(1, ref)
        for attr in node.attributes:
            st = b"".join(
                wire.field_bytes(i, s.encode())
                for i, s in ((1, attr.name), (2, attr.full_name), (3, attr.checkpoint_key))
                if s
            )
            body += wire.field_bytes(2, st)
        for slot in node.slot_variables:
            ref = (
                wire.field_varint(1, slot.original_variable_node_id)
                + wire.field_bytes(2, slot.slot_name.encode())
                + wire.field_varint(3, slot.slot_variable_node_id)
            )
            body += wire.field_bytes(3, ref)
        if node.attributes or node.children:
            body += wire.field_bytes(5, wire.field_varint(1, 1))  # has_checkpoint_values
        out += wire.field_bytes(1, bytes(body))
    return bytes(out)


# -- what a checkpoint holds -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SlotInfo:
    """Where a slot variable belongs: its variable's path, its optimizer's path, its name."""

    variable_path: str
    optimizer_path: str
    slot_name: str


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a checkpoint.

    Attributes:
      key: the key in the index.
      dtype: TF's dtype name (`float32`, `bfloat16`, `string`, ...).
      shape: the full shape (of the whole variable, for a partitioned one).
      name: the variable's TF1 name: the key for tf1, the `full_name` recorded
        in the object graph for tf2 (None where there is none).
      object_path: for tf2, the escaped object path (the key without
        `/.ATTRIBUTES/<attr>`).
      slices: for a partitioned variable, each stored slice as `(start, length)`
        per dimension (`length` -1 is the full extent).
      slot: for a slot variable of tf2, where it belongs.
    """

    key: str
    dtype: str
    shape: tuple[int, ...]
    name: Optional[str] = None
    object_path: Optional[str] = None
    slices: tuple[tuple[tuple[int, int], ...], ...] = ()
    slot: Optional[SlotInfo] = None


@dataclasses.dataclass
class CheckpointInfo:
    """What a checkpoint holds.

    Attributes:
      prefix: the checkpoint prefix.
      format: `"tf1"` (name-based) or `"tf2"` (object-based: it has `_CHECKPOINTABLE_OBJECT_GRAPH`).
      tensors: every tensor by key, in key order.
      object_graph: the decoded object graph (tf2 only).
      duplicate_names: every name held by more than one key, with those keys.
    """

    prefix: str
    format: str
    tensors: dict[str, TensorInfo]
    object_graph: Optional[ObjectGraph]
    duplicate_names: dict[str, list[str]]
    bundle: bundle.Bundle = dataclasses.field(repr=False)

    @property
    def variables(self) -> dict[str, TensorInfo]:
        """Every tensor but the object graph."""
        return {k: t for k, t in self.tensors.items() if k != keys.OBJECT_GRAPH_KEY}

    def keys_for_name(self, name: str) -> list[str]:
        """Every key whose variable has TF1 name `name`."""
        return [k for k, t in self.tensors.items() if t.name == name]

    def read_tensor(self, key: str):
        """Returns the value of `key` as a numpy array, read without TensorFlow."""
        if key not in self.bundle.entries:
            raise KeyError(f"'{key}' is not a key of checkpoint '{self.prefix}'.")
        return bundle.read_tensor(self.bundle, key)


def read_checkpoint(path: str) -> CheckpointInfo:
    """Reads what the checkpoint at `path` holds, without TensorFlow.

    Args:
      path: a model directory, a checkpoint prefix, or its `.index` / `.data-*` file.

    Returns:
      The checkpoint's `CheckpointInfo`.

    Raises:
      CheckpointNotFoundError: no checkpoint is at `path`, or a data shard is missing.
      CorruptCheckpointError: the index, a shard's size or the object graph is damaged.
    """
    prefix = resolve_checkpoint(path)
    return info_from_bundle(bundle.read_bundle(prefix))


def info_from_bundle(b: bundle.Bundle) -> CheckpointInfo:
    graph = None
    attrs: dict[str, tuple[str, str, Optional[SlotInfo]]] = {}
    if keys.OBJECT_GRAPH_KEY in b.entries:
        entry = b.entries[keys.OBJECT_GRAPH_KEY]
        if entry.dtype != 7 or entry.shape != ():
            raise CorruptCheckpointError(
                f"{bundle.index_path(b.prefix)}: '{keys.OBJECT_GRAPH_KEY}' is not a scalar string."
            )
        raw = bundle.decode_tensor(entry, bundle.read_entry_bytes(b, entry), f"{b.prefix}: ")
        try:
            graph = parse_object_graph(raw.item())
        except wire.WireError as e:
            raise CorruptCheckpointError(
                f"{b.prefix}: the object graph ('{keys.OBJECT_GRAPH_KEY}') does not decode: {e}."
            ) from None
        attrs = _attributes_by_key(graph)
    tensors: dict[str, TensorInfo] = {}
    for key, entry in b.entries.items():
        if graph is None:
            name, path, slot = key, None, None
        elif key in attrs:
            name, path, slot = attrs[key]
            name = name or None
        else:
            name, path, slot = None, None, None
        tensors[key] = TensorInfo(
            key=key,
            dtype=entry.dtype_name,
            shape=entry.shape,
            name=None if key == keys.OBJECT_GRAPH_KEY else name,
            object_path=path,
            slices=entry.slices,
            slot=slot,
        )
    by_name: dict[str, list[str]] = {}
    for key, t in tensors.items():
        if t.name is not None:
            by_name.setdefault(t.name, []).append(key)
    duplicates = {n: ks for n, ks in by_name.items() if len(ks) > 1}
    return CheckpointInfo(b.prefix, "tf2" if graph is not None else "tf1", tensors, graph, duplicates, b)


def _attributes_by_key(graph: ObjectGraph) -> dict[str, tuple[str, str, Optional[SlotInfo]]]:
    paths = graph.paths()
    slot_of: dict[int, SlotInfo] = {}
    for node_id, node in enumerate(graph.nodes):
        for slot in node.slot_variables:
            if node_id in paths and slot.original_variable_node_id in paths:
                slot_of[slot.slot_variable_node_id] = SlotInfo(
                    paths[slot.original_variable_node_id], paths[node_id], slot.slot_name
                )
    out = {}
    for node_id, node in enumerate(graph.nodes):
        for attr in node.attributes:
            if not attr.checkpoint_key:
                continue
            path = paths.get(node_id)
            if path is None:
                parsed = keys.parse_key(attr.checkpoint_key)
                path = parsed.path if parsed else None
            out[attr.checkpoint_key] = (attr.full_name, path, slot_of.get(node_id))
    return out


# -- resolving a path -------------------------------------------------------------------


def read_state_file(directory: str) -> list[str]:
    """Returns the prefixes a `checkpoint` state file names, latest last (empty if none)."""
    path = fileio.join(directory, STATE_FILENAME)
    try:
        fileio.require_regular(path)
        text = fileio.read_bytes(path).decode("utf-8", errors="replace")
    except (OSError, Exception):  # missing or unreadable: fall back to scanning.
        return []
    latest, everything = None, []
    for line in text.splitlines():
        m = _STATE_LINE.match(line)
        if not m:
            continue
        try:
            value = ast.literal_eval("b" + m.group(2)).decode("utf-8")
        except (ValueError, SyntaxError, AttributeError, MemoryError, RecursionError):
            continue  # `"a", "b"` evaluates to a tuple: not a path either.
        if not fileio.is_remote(value) and not value.startswith("/"):
            value = fileio.join(directory, value)
        if m.group(1) == "model_checkpoint_path":
            latest = value
        else:
            everything.append(value)
    if latest is not None:
        everything = [p for p in everything if p != latest] + [latest]
    return everything


def _is_complete(prefix: str) -> bool:
    try:
        bundle.read_bundle(prefix)
        return True
    except (CheckpointNotFoundError, CorruptCheckpointError, OSError):
        return False


def _step_of(prefix: str) -> int:
    m = _STEP.search(prefix)
    return int(m.group(1)) if m else -1


def latest_in_directory(directory: str) -> Optional[str]:
    """The latest prefix of the state file if complete, else the newest complete one on disk."""
    for prefix in reversed(read_state_file(directory)):
        if fileio.exists(bundle.index_path(prefix)):
            return prefix
        break
    candidates = [
        fileio.join(directory, name[: -len(".index")])
        for name in fileio.listdir(directory)
        if name.endswith(".index") and ".tmp" not in name
    ]
    candidates.sort(key=lambda p: (_step_of(p), fileio.mtime(bundle.index_path(p))), reverse=True)
    for prefix in candidates:
        if _is_complete(prefix):
            return prefix
    return None


def resolve_checkpoint(path: str) -> str:
    """Returns the checkpoint prefix that `path` names.

    Args:
      path: a model directory (the latest entry of its `checkpoint` state file;
        if that file is missing or stale, the newest complete prefix on disk), a
        prefix, or a path to its `.index` or `.data-*` file. `gs://` and other
        `scheme://` paths go through `tf.io.gfile`.

    Raises:
      CheckpointNotFoundError: nothing at `path`, or a directory without a checkpoint.
      CorruptCheckpointError: `path` is a file that is not part of a checkpoint.
    """
    path = str(path)
    if path.endswith(".index"):
        candidate = path[: -len(".index")]
    else:
        candidate = _DATA_SUFFIX.sub("", path)
    if candidate != path and fileio.exists(bundle.index_path(candidate)):
        return candidate
    if fileio.exists(bundle.index_path(path)):
        return path
    if fileio.isdir(path):
        latest = latest_in_directory(path)
        if latest is None:
            raise CheckpointNotFoundError(
                f"{path}: directory holds no checkpoint (no complete '<prefix>.index' and no usable "
                f"'{STATE_FILENAME}' state file). Pass a model directory that has been trained, or a prefix."
            )
        return latest
    if fileio.exists(path):
        raise CorruptCheckpointError(
            f"{path}: is not a checkpoint (expected a prefix, '<prefix>.index', '<prefix>.data-*' or a model directory)."
        )
    raise CheckpointNotFoundError(f"{path}: no such checkpoint, file or directory.")
