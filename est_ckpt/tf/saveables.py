"""State outside variables: `GraphKeys.SAVEABLE_OBJECTS` in the object graph, and the save counter.

TF's default Saver saves the SaveableObjects of `GraphKeys.SAVEABLE_OBJECTS`
(mutable and dense hash tables, custom `SaveableObject`s of resources with
their own save and restore ops) under their names. `make_tf2_scaffold` saves
them in the object graph:

  * a hash table (a Trackable with `_serialize_to_tensors`) is saved as the
    table itself, `<path>/.ATTRIBUTES/table-keys` and `table-values`;
  * any other SaveableObject through TF's `SaveableCompatibilityConverter`,
    `<path>/.ATTRIBUTES/<its tensor's name>`.

With `objects=None` they go under `var_list/<TF1 saveable name>`; with
`objects={...}` they are saved where the objects reach them. Each tensor's
`full_name` in the object graph is the key TF's default Saver gives it, so the
checkpoint restores by name (`make_tf1_scaffold`, a `tf1/` copy) and
`est_ckpt.mapping` names it. Whatever cannot be saved is an
`UnsavedStateError` at `Scaffold.finalize`.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Optional

import tensorflow as tf
from tensorflow.python.checkpoint import graph_view, save_util_v1
from tensorflow.python.checkpoint import util as checkpoint_util
from tensorflow.python.framework import constant_op, dtypes, ops
from tensorflow.python.trackable import base as trackable_base
from tensorflow.python.trackable import data_structures
from tensorflow.python.training.saving import saveable_object, saveable_object_util

from est_ckpt.errors import UnsavedStateError

_tf1 = tf.compat.v1
SAVE_COUNTER = "save_counter"


@dataclasses.dataclass
class State:
    """One SaveableObject of the graph and the trackable that saves it in the object graph.

    Attributes:
      name: its TF1 name (the SaveableObject's name).
      saveable: the SaveableObject (what a name-based Saver saves).
      trackable: the table itself, or a `SaveableCompatibilityConverter` of `saveable`.
      tf1_keys: the keys a name-based Saver writes for it.
    """

    name: str
    saveable: Any
    trackable: Any
    tf1_keys: tuple[str, ...]


def _name(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _saves_as_table(saveable) -> bool:
    """Whether `saveable` is a hash table's own: its `op` a table saving exactly `<name>-keys`, `<name>-values`.

    Only then may the table itself stand for it in the object graph. Any other
    `op` (a variable, which is a Trackable that serializes itself too, a
    handle, a name, or a table behind custom specs) says nothing about what
    is saved: the SaveableObject's own specs are, as TF's `Saver` saves them.
    """
    owner = getattr(saveable, "op", None)
    return (
        isinstance(owner, trackable_base.Trackable)
        and not isinstance(owner, tf.Variable)
        and saveable_object_util.trackable_has_serialize_to_tensor(owner)
        and tf1_keys(saveable) == (f"{_name(saveable.name)}-keys", f"{_name(saveable.name)}-values")
    )


def state_of(saveable) -> State:
    """The `State` saving one SaveableObject: exactly the specs a name-based `Saver` saves."""
    trackable = (
        saveable.op
        if _saves_as_table(saveable)
        else saveable_object_util.SaveableCompatibilityConverter(saveable, [saveable])
    )
    return State(_name(saveable.name), saveable, trackable, tf1_keys(saveable))


def tf1_keys(saveable) -> tuple[str, ...]:
    """The keys a name-based Saver writes for one SaveableObject (one per spec)."""
    return tuple(_name(spec.name) for spec in saveable.specs)


def collected_state() -> list[State]:
    """Every SaveableObject of `GraphKeys.SAVEABLE_OBJECTS`, in collection order.

    Raises:
      UnsavedStateError: an entry of the collection is not a SaveableObject.
    """
    out, bad = [], []
    for entry in _tf1.get_collection(_tf1.GraphKeys.SAVEABLE_OBJECTS):
        if isinstance(entry, saveable_object.SaveableObject):
            out.append(state_of(entry))
        else:
            bad.append(f"{type(entry).__name__} {getattr(entry, 'name', entry)!r}")
    if bad:
        raise UnsavedStateError(
            f"make_tf2_scaffold: {len(bad)} entry(ies) of GraphKeys.SAVEABLE_OBJECTS are not SaveableObjects and "
            f"cannot be saved: {', '.join(bad)}. Add a SaveableObject (or a Trackable table) to the collection "
            "instead, or remove the entry."
        )
    return out


def wrap_objects(objects: dict[str, Any]) -> tuple[dict[str, Any], list[State]]:
    """`objects` with every SaveableObject replaced by the trackable that saves it, and those states."""
    wrapped, states = {}, []
    for key, value in objects.items():
        if isinstance(value, saveable_object.SaveableObject):
            state = state_of(value)
            states.append(state)
            value = state.trackable
        wrapped[key] = value
    return wrapped, states


def add_to_var_list(var_list: dict[str, Any], states: list[State]) -> None:
    """Puts every state into `var_list` under its TF1 name (objects=None).

    Raises:
      UnsavedStateError: a state's name is already a variable's name, or another state's.
    """
    names = [s.name for s in states]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UnsavedStateError(
            f"make_tf2_scaffold: several saveables of GraphKeys.SAVEABLE_OBJECTS share the name(s) "
            f"{', '.join(repr(n) for n in twice)}, so they cannot all be saved under var_list/<name>. "
            "Give each table (or SaveableObject) its own name."
        )
    clashes = [s.name for s in states if s.name in var_list]
    if clashes:
        raise UnsavedStateError(
            f"make_tf2_scaffold: the saveable(s) {', '.join(repr(c) for c in clashes)} of "
            "GraphKeys.SAVEABLE_OBJECTS have the name of a variable, so both cannot be saved under "
            "var_list/<name>. Give the table (or SaveableObject) another name."
        )
    for s in states:
        var_list[s.name] = s.trackable


def check_reachable(root, states: list[State], objects: dict[str, Any]) -> list[State]:
    """The states `root` reaches; raises naming the others.

    Raises:
      UnsavedStateError: a SaveableObject of the collection is reachable from none of `objects`.
    """
    reachable = {id(obj) for obj in checkpoint_util.list_objects(graph_view.ObjectGraphView(root))}
    missing = [s.name for s in states if id(s.trackable) not in reachable]
    if missing:
        raise UnsavedStateError(
            f"make_tf2_scaffold: {len(missing)} saveable(s) of GraphKeys.SAVEABLE_OBJECTS are reachable from "
            f"none of the objects {sorted(objects)} and would not be saved: "
            f"{', '.join(repr(m) for m in missing)}. Attach each table to one of the objects (or pass the "
            "SaveableObject itself in objects=), or pass objects=None to save every one by name."
        )
    return [s for s in states if id(s.trackable) in reachable]


def keras_model(objects: dict[str, Any]):
    """The first Keras model among `objects`, or None (never imports Keras: no model exists before it is)."""
    for module in ("keras", "tf_keras"):
        keras = sys.modules.get(module)
        model_class = getattr(keras, "Model", None)
        if model_class is not None:
            for obj in objects.values():
                if isinstance(obj, model_class):
                    return obj
    return None


def make_save_counter():
    """The int64 `save_counter` variable (in no collection), its increment and its initializer."""
    with ops.name_scope(None), ops.device("/cpu:0"):
        counter = _tf1.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            collections=[],
            name=SAVE_COUNTER,
            use_resource=True,
        )
        # Counts from 1 where nothing started the counter: a Scaffold built around this saver with an
        # init_fn of its own (merged scaffolds) still saves.
        increment = _tf1.cond(
            counter.is_initialized(), lambda: counter.assign_add(1), lambda: counter.assign(1)
        ).op
    return counter, increment, counter.initializer


def attach_save_counter(root, counter) -> None:
    """Makes `counter` the `save_counter` of the `tf.train.Checkpoint` `root`."""
    root._track_trackable(counter, name=SAVE_COUNTER)  # noqa: SLF001 (TF's own dependency API)
    root._save_counter = data_structures.NoDependency(counter)  # noqa: SLF001


def frozen_saveables(root, states: list[State], alias_of: Optional[Any] = None) -> list[Any]:
    """Like `ObjectGraphView(root).frozen_saveable_objects()`, with the object graph made name-based.

    Each state's attributes are one per tensor, whose `full_name` is the key
    TF's default Saver writes. With `alias_of`, the root also lists that
    object's children as its own (so that Keras `load_weights` finds them);
    the keys do not change.

    Raises:
      UnsavedStateError: a tensor of a state has no TF1 key.
    """
    view = graph_view.ObjectGraphView(root)
    trackables, _ = view.breadth_first_traversal()
    node_of = {id(t): i for i, t in enumerate(trackables)}
    saveables, proto, _, _ = save_util_v1.serialize_gathered_objects(view)
    spec_keys = [_name(spec.name) for s in saveables for spec in s.specs]
    unmapped = []
    for state in states:
        node_id = node_of.get(id(state.trackable))
        if node_id is None:
            continue
        node = proto.nodes[node_id]
        attributes = list(node.attributes)
        del node.attributes[:]
        for attr in attributes:
            for key in spec_keys:
                suffix = key[len(attr.checkpoint_key) :]
                if not key.startswith(attr.checkpoint_key) or (suffix and not suffix.startswith("-")):
                    continue
                # A table's single attribute (`table`) holds `-keys` and `-values`; a converter's is the key.
                tf1_key = state.name + suffix if suffix else attr.name
                if tf1_key not in state.tf1_keys:
                    unmapped.append(f"'{key}' of '{state.name}'")
                    continue
                node.attributes.add(name=attr.name + suffix, checkpoint_key=key, full_name=tf1_key)
    if unmapped:
        raise UnsavedStateError(
            f"make_tf2_scaffold: {len(unmapped)} tensor(s) of GraphKeys.SAVEABLE_OBJECTS cannot be given the "
            f"name TF's Saver would: {', '.join(unmapped)}. Save this object with a plain "
            "tf.compat.v1.train.Saver, or give its SaveableObject spec names that start with its name."
        )
    if alias_of is not None and id(alias_of) in node_of:
        taken = {child.local_name for child in proto.nodes[0].children}
        for child in proto.nodes[node_of[id(alias_of)]].children:
            if child.local_name not in taken:
                proto.nodes[0].children.add(node_id=child.node_id, local_name=child.local_name)
    with ops.device("/cpu:0"):
        graph_tensor = constant_op.constant(proto.SerializeToString(), dtype=dtypes.string)
    saveables.append(
        trackable_base.NoRestoreSaveable(tensor=graph_tensor, name=trackable_base.OBJECT_GRAPH_PROTO_KEY)
    )
    return saveables


__all__ = [
    "SAVE_COUNTER",
    "State",
    "add_to_var_list",
    "attach_save_counter",
    "check_reachable",
    "collected_state",
    "frozen_saveables",
    "keras_model",
    "make_save_counter",
    "state_of",
    "tf1_keys",
    "wrap_objects",
]
