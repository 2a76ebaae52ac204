"""Comparing two checkpoints variable by variable, across formats, without TensorFlow.

Variables are matched by their TF1 name (a name-based key, an object-based
checkpoint's recorded `full_name`), named as `convert` names them, so a
checkpoint and its conversion compare equal.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from est_ckpt import fileio
from est_ckpt.errors import InvalidArgumentError
from est_ckpt.format import checkpoint, tensors
from est_ckpt.mapping.tf1_names import Variable, tf1_variables


@dataclasses.dataclass(frozen=True)
class DiffResult:
    """The differences between two checkpoints, matched by TF1 variable name.

    Attributes:
      a: the prefix of the first checkpoint.
      b: the prefix of the second checkpoint.
      only_in_a: names only the first checkpoint holds.
      only_in_b: names only the second checkpoint holds.
      changed: one dict per differing name: `{"name", "why": "dtype"|"shape"|"value", ...}`
        with `a`/`b` for dtype and shape, `max_abs_diff` (None for strings)
        and `num_different` for values.
    """

    a: str
    b: str
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    changed: tuple[dict, ...]

    @property
    def equal(self) -> bool:
        return not (self.only_in_a or self.only_in_b or self.changed)


def _diff_names(info: checkpoint.CheckpointInfo) -> dict[str, Variable]:
    return {v.name: v for v in tf1_variables(info, strict=False).variables}


def _value(info: checkpoint.CheckpointInfo, var: Variable):
    import numpy as np

    if len(var.source_keys) == 1:
        return info.read_tensor(var.source_keys[0])
    # Parts saved one by one: each placed at its extents in the whole, which takes the parts' numpy dtype.
    full = None
    for extents, part in var.parts:
        value = tensors.decode_tensor(part, tensors.read_entry_bytes(info.bundle, part))
        if full is None:
            full = np.empty(var.entry.shape, dtype=value.dtype)
        full[tuple(slice(s, s + n) for s, n in extents)] = value
    return full


def _shares_bytes(
    ia: checkpoint.CheckpointInfo, va: Variable, ib: checkpoint.CheckpointInfo, vb: Variable
) -> bool:
    """Whether both variables are the very same stored bytes (a hard-linked conversion)."""
    ea = [p for _, p in va.parts] if va.parts else [va.entry]
    eb = [p for _, p in vb.parts] if vb.parts else [vb.entry]
    if len(ea) != len(eb) or [x[0] for x in va.parts] != [x[0] for x in vb.parts]:
        return False
    for x, y in zip(ea, eb):
        if (x.offset, x.size, x.crc32c, x.dtype, x.shape) != (y.offset, y.size, y.crc32c, y.dtype, y.shape):
            return False
        pa, pb = ia.bundle.data_path(x.shard_id), ib.bundle.data_path(y.shard_id)
        if fileio.is_remote(pa) or fileio.is_remote(pb) or not fileio.same_file(pa, pb):
            return False
    return True


def _compare_values(a, b, atol: float) -> Optional[dict]:
    import numpy as np

    a, b = np.atleast_1d(a), np.atleast_1d(b)
    if a.dtype == object or b.dtype == object:
        different = int(np.count_nonzero(a.reshape(-1) != b.reshape(-1))) if a.size else 0
        return {"max_abs_diff": None, "num_different": different} if different else None
    if a.dtype.kind in "biu" and b.dtype.kind in "biu":
        # 64-bit integers go through Python ints so that no difference overflows.
        wide = object if max(a.dtype.itemsize, b.dtype.itemsize) == 8 else np.int64
        diff = np.abs(a.astype(wide) - b.astype(wide)).astype(np.float64)
    else:
        wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b) else np.float64
        x, y = a.astype(wide), b.astype(wide)
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(x - y).astype(np.float64)
        both_nan = np.isnan(x) & np.isnan(y)
        diff[both_nan] = 0.0
        diff[np.isnan(diff)] = np.inf
        same_inf = np.isinf(x) & (x == y)
        diff[same_inf] = 0.0
    different = int(np.count_nonzero(diff > atol))
    if not different:
        return None
    return {"max_abs_diff": float(diff.max()), "num_different": different}


def diff_checkpoints(a: str, b: str, *, atol: float = 0.0) -> DiffResult:
    """Compares two checkpoints variable by variable, across formats.

    Variables are matched by their TF1 name: the key of a name-based
    checkpoint, the recorded `full_name` of an object-based one. The root's
    `step` matches `global_step`; `save_counter` and the object graph are
    ignored (bookkeeping of `tf.train.Checkpoint`). A name that is empty or
    held by several keys of one checkpoint is matched by its key instead.
    Values are read without TensorFlow.

    Args:
      a: the first checkpoint (prefix, file or model directory).
      b: the second checkpoint.
      atol: values differ where `|a - b| > atol`.

    Returns:
      A `DiffResult`.

    Raises:
      CheckpointNotFoundError: `a` or `b` is not a checkpoint.
      CorruptCheckpointError: a checkpoint is damaged.
      InvalidArgumentError: `atol` is negative or not a number (a `ValueError`).
    """
    if not atol >= 0:
        raise InvalidArgumentError(f"`atol` must be a number >= 0 (got {atol!r}).")
    ia, ib = checkpoint.read_checkpoint(a), checkpoint.read_checkpoint(b)
    na, nb = _diff_names(ia), _diff_names(ib)
    changed = []
    for name in sorted(set(na) & set(nb)):
        va, vb = na[name], nb[name]
        if va.entry.dtype != vb.entry.dtype:
            changed.append({"name": name, "why": "dtype", "a": va.entry.dtype_name, "b": vb.entry.dtype_name})
        elif va.entry.shape != vb.entry.shape:
            changed.append(
                {"name": name, "why": "shape", "a": list(va.entry.shape), "b": list(vb.entry.shape)}
            )
        elif not _shares_bytes(ia, va, ib, vb):
            delta = _compare_values(_value(ia, va), _value(ib, vb), atol)
            if delta is not None:
                changed.append({"name": name, "why": "value", **delta})
    return DiffResult(
        ia.prefix,
        ib.prefix,
        tuple(sorted(set(na) - set(nb))),
        tuple(sorted(set(nb) - set(na))),
        tuple(changed),
    )


__all__ = ["DiffResult", "diff_checkpoints"]
