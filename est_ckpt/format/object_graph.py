"""The object graph of an object-based (TF2) checkpoint: a `TrackableObjectGraph`.

`tensorflow/core/protobuf/trackable_object_graph.proto`, stored as a scalar
string tensor under `keys.OBJECT_GRAPH_KEY`. Node 0 is the root; each node
lists its children by local name, the tensors it saved (`attributes`, with
each variable's `full_name` at save time) and, for an optimizer, its slot
variables.
"""

from __future__ import annotations

import dataclasses

from est_ckpt.errors import WireError
from est_ckpt.format import keys, wire

# Field numbers of `TrackableObjectGraph` and its nested messages.
GRAPH_NODES = 1
NODE_CHILDREN, NODE_ATTRIBUTES, NODE_SLOT_VARIABLES, NODE_HAS_CHECKPOINT_VALUES = 1, 2, 3, 5
CHILD_NODE_ID, CHILD_LOCAL_NAME = 1, 2
TENSOR_NAME, TENSOR_FULL_NAME, TENSOR_CHECKPOINT_KEY = 1, 2, 3
SLOT_ORIGINAL_VARIABLE_NODE_ID, SLOT_NAME, SLOT_VARIABLE_NODE_ID = 1, 2, 3
BOOL_VALUE = 1  # `google.protobuf.BoolValue.value`


@dataclasses.dataclass(frozen=True)
class SerializedTensor:
    """A tensor a node saved: its attribute name, its variable's name at save time, its key."""

    name: str
    full_name: str
    checkpoint_key: str


@dataclasses.dataclass(frozen=True)
class SlotReference:
    """An optimizer's slot variable: the variable it serves, the slot's name, the slot's node."""

    original_variable_node_id: int
    slot_name: str
    slot_variable_node_id: int


@dataclasses.dataclass(frozen=True)
class ObjectNode:
    """One node: `(node id, local name)` of each child, its saved tensors, its slot variables."""

    children: tuple[tuple[int, str], ...]
    attributes: tuple[SerializedTensor, ...]
    slot_variables: tuple[SlotReference, ...]


@dataclasses.dataclass(frozen=True)
class ObjectGraph:
    """A `TrackableObjectGraph`: node 0 is the root."""

    nodes: tuple[ObjectNode, ...]

    def paths(self) -> dict[int, str]:
        """Returns the escaped object path of every node, root `''`, slot variables included.

        A node's path is where its tensors' keys say it was saved, then
        breadth first from the root. The two agree for what TF writes; they
        differ where a root also lists a model's children as its own (so that
        Keras `load_weights` finds them): the keys keep the path through the model.
        """
        paths = self._keyed_paths()
        if self.nodes:
            paths[0] = ""
        queue = [0] + sorted(n for n in paths if n) if self.nodes else []
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

    def _keyed_paths(self) -> dict[int, str]:
        """The path of every node that its own keys (or a descendant's, through child names) tell."""
        paths: dict[int, str] = {}
        for node_id, node in enumerate(self.nodes):
            for attr in node.attributes:
                parsed = keys.parse_key(attr.checkpoint_key) if attr.checkpoint_key else None
                if node_id and parsed is not None and parsed.slot is None:
                    paths.setdefault(node_id, parsed.path)
        changed = bool(paths)
        while changed:
            changed = False
            for parent, node in enumerate(self.nodes):
                if parent == 0 or parent in paths:
                    continue
                for child, local_name in node.children:
                    below = paths.get(child)
                    tail = "/" + keys.escape(local_name)
                    if below is not None and below.endswith(tail) and len(below) > len(tail):
                        paths[parent] = below[: -len(tail)]
                        changed = True
                        break
        return paths


def parse_object_graph(data: bytes) -> ObjectGraph:
    """Decodes a serialized `TrackableObjectGraph` (raises `errors.WireError`)."""
    nodes = []
    for field, _, value in wire.iter_fields(data):
        if field != GRAPH_NODES:
            continue
        children, attributes, slots = [], [], []
        for f, _, v in wire.iter_fields(wire.expect_bytes(value, "node")):
            if f == NODE_CHILDREN:
                node_id, name = 0, ""
                for f2, _, v2 in wire.iter_fields(wire.expect_bytes(v, "child")):
                    if f2 == CHILD_NODE_ID:
                        node_id = wire.expect_int(v2, "child.node_id")
                    elif f2 == CHILD_LOCAL_NAME:
                        name = wire.decode_str(v2, "child.local_name")
                children.append((node_id, name))
            elif f == NODE_ATTRIBUTES:
                vals = {TENSOR_NAME: "", TENSOR_FULL_NAME: "", TENSOR_CHECKPOINT_KEY: ""}
                for f2, _, v2 in wire.iter_fields(wire.expect_bytes(v, "attribute")):
                    if f2 in vals:
                        vals[f2] = wire.decode_str(v2, "attribute field")
                attributes.append(
                    SerializedTensor(vals[TENSOR_NAME], vals[TENSOR_FULL_NAME], vals[TENSOR_CHECKPOINT_KEY])
                )
            elif f == NODE_SLOT_VARIABLES:
                orig = slot_node = 0
                slot_name = ""
                for f2, _, v2 in wire.iter_fields(wire.expect_bytes(v, "slot")):
                    if f2 == SLOT_ORIGINAL_VARIABLE_NODE_ID:
                        orig = wire.expect_int(v2, "slot.original_variable_node_id")
                    elif f2 == SLOT_NAME:
                        slot_name = wire.decode_str(v2, "slot.slot_name")
                    elif f2 == SLOT_VARIABLE_NODE_ID:
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
            raise WireError("object graph references a node that does not exist")
    return ObjectGraph(tuple(nodes))


def encode_object_graph(graph: ObjectGraph) -> bytes:
    """Serializes a `TrackableObjectGraph` (the inverse of `parse_object_graph`), as TF does."""
    out = bytearray()
    for node in graph.nodes:
        body = bytearray()
        for node_id, name in node.children:
            ref = wire.field_varint(CHILD_NODE_ID, node_id) if node_id else b""
            body += wire.field_bytes(NODE_CHILDREN, ref + wire.field_bytes(CHILD_LOCAL_NAME, name.encode()))
        for attr in node.attributes:
            fields = (
                (TENSOR_NAME, attr.name),
                (TENSOR_FULL_NAME, attr.full_name),
                (TENSOR_CHECKPOINT_KEY, attr.checkpoint_key),
            )
            st = b"".join(wire.field_bytes(number, s.encode()) for number, s in fields if s)
            body += wire.field_bytes(NODE_ATTRIBUTES, st)
        for slot in node.slot_variables:
            ref = (
                wire.field_varint(SLOT_ORIGINAL_VARIABLE_NODE_ID, slot.original_variable_node_id)
                + wire.field_bytes(SLOT_NAME, slot.slot_name.encode())
                + wire.field_varint(SLOT_VARIABLE_NODE_ID, slot.slot_variable_node_id)
            )
            body += wire.field_bytes(NODE_SLOT_VARIABLES, ref)
        if node.attributes or node.children:
            body += wire.field_bytes(NODE_HAS_CHECKPOINT_VALUES, wire.field_varint(BOOL_VALUE, 1))
        out += wire.field_bytes(GRAPH_NODES, bytes(body))
    return bytes(out)


def dangling_keys(graph: ObjectGraph, present) -> list[tuple[int, str]]:
    """`(node id, checkpoint key)` of every attribute whose key is not in `present`.

    A hash table TF saved eagerly records one attribute (`<path>/.ATTRIBUTES/table`)
    for its two tensors (`table-keys`, `table-values`): held if those are.
    """
    missing = [
        (node_id, attr.checkpoint_key)
        for node_id, node in enumerate(graph.nodes)
        for attr in node.attributes
        if attr.checkpoint_key and attr.checkpoint_key not in present
    ]
    if not missing:
        return missing
    held = [k for k in present if isinstance(k, str)]
    return [(n, key) for n, key in missing if not any(k.startswith(key + "-") for k in held)]
