"""Restoring by variable name: a restore op whose keys are fed at run time, and the keys to feed.

`KeyedRestoreBuilder` builds a name-based Saver's restore op with its
checkpoint keys and slices as fed placeholders that default to the
saveables' own names, so the one op restores a name-based checkpoint as is
and an object-based one under the keys `keys_by_name` finds with
`est_ckpt.mapping.NameIndex` (by TF1 name, as TF's restore by name does). No
op is built at restore time: the graph is finalized by then.
"""

from __future__ import annotations

import difflib
from typing import Any, NamedTuple, Optional, Sequence

import tensorflow as tf
from tensorflow.python.framework import ops
from tensorflow.python.ops import array_ops, io_ops
from tensorflow.python.training import saver as saver_lib

from est_ckpt.errors import AmbiguousNameError, MismatchError, UnmappedVariablesError
from est_ckpt.format.checkpoint import CheckpointInfo, TensorInfo
from est_ckpt.mapping import NameIndex, part_number


def variable_name(var: Any) -> str:
    """Returns the graph name of a variable without its `:0` output suffix."""
    name = var.name
    return name[: name.rindex(":")] if ":" in name else name


class Spec(NamedTuple):
    """One tensor a name-based Saver reads.

    Attributes:
      name: its key in a name-based checkpoint (the whole variable's name for a part).
      slice_spec: TF's slice spec of a part (`"10 4 0,4:0,4"`), else `""`.
      owner: the variable's own name (`emb/part_0` for a part).
      dtype: TF's dtype name.
      shape: the variable's (or part's) shape, None if not fully defined.
    """

    name: str
    slice_spec: str
    owner: str
    dtype: str
    shape: Optional[tuple[int, ...]]


class KeyedRestoreBuilder(saver_lib.BulkSaverBuilder):
    """Builds a restore op whose checkpoint keys and slices can be fed at run time.

    The defaults are the saveables' own names (so the op restores a
    name-based checkpoint as is); feeding other keys restores the same
    variables from an object-based checkpoint, with no new op in the graph.

    Attributes:
      specs: every tensor the restore op reads, in its order.
      keys_tensor, slices_tensor: the placeholders to feed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.specs: list[Spec] = []
        self.keys_tensor = None
        self.slices_tensor = None

    def bulk_restore(self, filename_tensor, saveables, preferred_shard, restore_sequentially):
        del preferred_shard, restore_sequentially
        names, slices, dtypes = [], [], []
        for saveable in saveables:
            # `op` is the variable for a part of a partitioned variable, a read tensor for a whole one.
            owner = getattr(saveable, "op", None)
            shape = getattr(owner, "shape", None)
            shape = tuple(shape.as_list()) if shape is not None and shape.is_fully_defined() else None
            for spec in saveable.specs:
                # Only parts need their own name (`emb/part_0`); a whole variable's key is its name.
                owner_name = (
                    variable_name(owner) if spec.slice_spec and getattr(owner, "name", None) else spec.name
                )
                self.specs.append(
                    Spec(spec.name, spec.slice_spec, owner_name, spec.dtype.base_dtype.name, shape)
                )
                names.append(spec.name)
                slices.append(spec.slice_spec)
                dtypes.append(spec.dtype)
        with ops.device("cpu:0"):
            self.keys_tensor = array_ops.placeholder_with_default(
                tf.constant(names, dtype=tf.string), shape=[len(names)], name="keys"
            )
            self.slices_tensor = array_ops.placeholder_with_default(
                tf.constant(slices, dtype=tf.string), shape=[len(names)], name="slices"
            )
            return io_ops.restore_v2(filename_tensor, self.keys_tensor, self.slices_tensor, dtypes)


def keys_by_name(
    info: CheckpointInfo, specs: Sequence[Spec], *, state_keys: frozenset = frozenset()
) -> tuple[list[str], list[str]]:
    """The checkpoint key and slice to feed for every spec.

    `state_keys` are the keys of SaveableObjects (tables...) among `specs`: a
    checkpoint without them gets an error saying that this state was never saved.

    Raises:
      UnmappedVariablesError: the checkpoint has no value for some specs.
      AmbiguousNameError: an object-based checkpoint holds a name under several keys.
      MismatchError: a stored tensor's shape or dtype differs from the model's.
    """
    index = NameIndex(info)
    feed_keys, feed_slices, missing, mismatched = [], [], [], []
    for spec in specs:
        found = _find_key(index, spec)
        if found is None:
            missing.append(spec.owner if spec.slice_spec else spec.name)
            continue
        key, slice_spec = found
        stored = info.tensors[key]
        # A slice is read out of the whole stored tensor; otherwise the stored tensor is the variable.
        expected = _full_shape(slice_spec) if slice_spec else spec.shape
        if stored.dtype != spec.dtype or (expected is not None and tuple(stored.shape) != expected):
            mismatched.append(mismatch(spec.owner, key, (spec.dtype, expected), stored))
        feed_keys.append(key)
        feed_slices.append(slice_spec)
    if missing:
        unsaved = sorted(set(missing) & set(state_keys))
        hint = ""
        if unsaved:
            hint = (
                f"{', '.join(repr(k) for k in unsaved)} are state of GraphKeys.SAVEABLE_OBJECTS (hash tables, "
                "SaveableObjects) that this checkpoint never saved: a make_tf2_scaffold of est_ckpt before it "
                "saved such state wrote variables only, or the model gained them since"
            )
        raise UnmappedVariablesError(missing_message(info, sorted(set(missing)), hint=hint))
    raise_mismatches(info, mismatched)
    return feed_keys, feed_slices


def _find_key(index: NameIndex, spec: Spec) -> Optional[tuple[str, str]]:
    """Returns `(key, slice_spec)` holding `spec` (by the variable's TF1 name), or None."""
    if index.tf1:
        return (spec.name, spec.slice_spec) if spec.name in index.tensors else None
    if spec.slice_spec:
        full = _full_shape(spec.slice_spec)
        candidates = index.named(spec.name)
        # A part saved one by one holds the values of the model's part with the same number.
        number = part_number(spec.owner)
        for key in candidates:
            if number is not None and index.part_of(key) == number:
                return key, ""
        whole = [k for k in candidates if tuple(index.tensors[k].shape) == full]
        return (whole[0], spec.slice_spec) if len(whole) == 1 else None
    found, ambiguous = index.by_tf1_name(spec.name, shape=spec.shape)
    if found is not None and len(found.keys) == 1:
        return found.keys[0], ""
    if found is None and not ambiguous:
        return None
    if found is not None:
        why = (
            "parts saved one by one, and the model's variable is not partitioned. Partition it as the "
            "checkpoint is, or convert the checkpoint with est-ckpt convert (which joins the parts into one "
            "sliced entry)."
        )
        held = found.keys
    else:
        why = (
            "so it cannot be restored by name. Restore it with tf.train.Checkpoint, or convert it with "
            "est-ckpt convert and an explicit mapping."
        )
        held = ambiguous
    raise AmbiguousNameError(
        f"Checkpoint '{index.info.prefix}' holds variable name '{spec.name}' under {len(held)} keys "
        f"({', '.join(repr(k) for k in held)}){':' if found is not None else ','} {why}"
    )


def _full_shape(slice_spec: str) -> tuple[int, ...]:
    """The full shape a TF slice spec (`"10 4 0,4:0,4"`) refers to."""
    return tuple(int(d) for d in slice_spec.split(" ")[:-1])


def expected_by_key(specs: Sequence[Spec]) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """`{key: (variable name, dtype, shape)}` of the whole, fully defined variables among `specs`."""
    return {
        spec.name: (spec.owner, spec.dtype, tuple(spec.shape))
        for spec in specs
        if not spec.slice_spec and spec.shape is not None
    }


def mismatch(owner: str, key: str, expected: tuple, stored: TensorInfo) -> str:
    """One clause of a `MismatchError`: what the model holds and what the checkpoint holds."""
    dtype, shape = expected
    return (
        f"'{owner}' is {dtype} {list(shape) if shape is not None else '?'} in the model, "
        f"'{key}' is {stored.dtype} {list(stored.shape)} in the checkpoint"
    )


def raise_mismatches(info: CheckpointInfo, mismatched: Sequence[str]) -> None:
    """Raises one `MismatchError` listing every clause of `mismatched`, if any."""
    if mismatched:
        raise MismatchError(
            f"Checkpoint '{info.prefix}' does not fit the model: {'; '.join(mismatched)}. Restore a checkpoint "
            "of this model, or warm-start the variables whose shape or dtype changed from a fresh model_dir."
        )


def missing_message(info: CheckpointInfo, missing: Sequence[str], *, hint: str = "") -> str:
    """The text of an `UnmappedVariablesError`: each missing name with the closest ones the checkpoint has."""
    if info.format == "tf1":
        have = sorted(info.variables)
    else:
        have = sorted({t.name for t in info.tensors.values() if t.name} | set(info.variables))
    parts = []
    for name in missing:
        close = difflib.get_close_matches(name, have, n=3, cutoff=0.6)
        if close:
            parts.append(f"'{name}' (closest in the checkpoint: {', '.join(repr(c) for c in close)})")
        else:
            parts.append(f"'{name}' (no close name in the checkpoint)")
    kind = "object-based" if info.format == "tf2" else "name-based"
    reason = f"; {hint}" if hint else ""
    return (
        f"Checkpoint '{info.prefix}' ({kind}{reason}) has no value for {len(missing)} variable(s) of the "
        f"model: {'; '.join(parts)}. Restore a checkpoint of this model, or start from a fresh model_dir "
        "and warm-start from this checkpoint with a var_name_to_prev_var_name mapping."
    )


__all__ = [
    "KeyedRestoreBuilder",
    "Spec",
    "expected_by_key",
    "keys_by_name",
    "mismatch",
    "missing_message",
    "raise_mismatches",
    "variable_name",
]
