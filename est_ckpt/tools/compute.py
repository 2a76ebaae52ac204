"""Executing a `mapping.transforms.Transform` on checkpoint bytes: streamed, in bounded memory, checksummed.

`producer(info, transform)` gives an `Assembly` producer that writes the
transformed tensor into the new shard; `evaluate(info, transform)` gives it
as a numpy array (a warm start). Each op is a node whose `rows(lo, hi)`
computes rows `lo:hi` of its result (axis 0) from the rows of its input that
it needs, so a tensor is produced block by block (`BLOCK_BYTES` each) and no
step holds the whole of it: sources are read by `os.pread` range by range.
A transpose that moves axis 0 is written by tiles instead (`_Tiled`): tiles
of the source are read, transposed and put in place with `os.pwrite`, and
the result's checksum is taken by reading it back. What cannot be streamed
(a source saved in parts, a transpose below another op) is computed whole.
Every source read is checked against its CRC32C, as TF's reader does.
"""

from __future__ import annotations

import math
import os
from typing import BinaryIO, Optional, Sequence

from est_ckpt import fileio
from est_ckpt.errors import ConversionError
from est_ckpt.format import checkpoint, dtypes, tensors, wire
from est_ckpt.mapping.transforms import Step, Transform

# Rows of a result are produced this many bytes at a time (and a tile of a transpose is this big).
BLOCK_BYTES = 4 << 20


def _np():
    import numpy as np

    return np


def _numpy(enum: int):
    return dtypes.numpy_dtype(enum).newbyteorder("<")


class _Node:
    shape: tuple
    dtype: object  # numpy dtype

    def rows(self, lo: int, hi: int):
        raise NotImplementedError

    def all(self):
        return self.rows(0, self.shape[0]) if self.shape else self.rows(0, 1)

    def verify(self) -> None:
        for node in getattr(self, "inputs", ()):
            node.verify()


class _Source(_Node):
    """A tensor stored whole, read range by range; its checksum is checked once every byte was read in order."""

    def __init__(self, info: checkpoint.CheckpointInfo, keys_: Sequence[str], part_axis: int, shape: tuple):
        self.info, self.keys, self.part_axis, self.shape = info, tuple(keys_), part_axis, tuple(shape)
        entries = [info.bundle.entries[k] for k in self.keys]
        for k, e in zip(self.keys, entries):
            if (
                e.dtype == dtypes.DT_BOOL
                or e.dtype not in dtypes.DTYPES
                or dtypes.numpy_dtype(e.dtype) is None
            ):
                raise ConversionError(
                    f"{info.prefix}: '{k}' holds {dtypes.dtype_name(e.dtype)}: transforms take numbers."
                )
        self.dtype = _numpy(entries[0].dtype)
        self.entry = entries[0] if len(entries) == 1 and not entries[0].slices else None
        self._whole = None
        self._pos = self._crc = 0
        self._in_order = True

    def rows(self, lo: int, hi: int):
        np = _np()
        if self.entry is None:
            if self._whole is None:  # parts: joined whole, checked by the reader
                parts = [tensors.read_tensor(self.info.bundle, k) for k in self.keys]
                whole = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=self.part_axis)
                self._whole = whole.reshape(self.shape)
            return self._whole[lo:hi] if self.shape else self._whole
        row = math.prod(self.shape[1:]) * self.dtype.itemsize
        if not self.shape:
            lo, hi, row = 0, 1, self.dtype.itemsize
        start, size = self.entry.offset + lo * row, (hi - lo) * row
        data = fileio.read_range(self.info.bundle.data_path(self.entry.shard_id), start, size)
        if len(data) != size:
            raise ConversionError(f"{self.info.prefix}: '{self.keys[0]}' is truncated in its data file.")
        if self._in_order and lo * row == self._pos:
            self._crc, self._pos = wire.crc32c(data, self._crc), self._pos + size
        else:
            self._in_order = False
        out = np.frombuffer(data, self.dtype)
        return out.reshape((hi - lo,) + self.shape[1:]) if self.shape else out.reshape(())

    def verify(self) -> None:
        if self.entry is None:
            return
        if not self.info.bundle.checksummed:  # a Keras file keeps no checksums; its size was checked
            return
        if self._in_order and self._pos == self.entry.size:
            if self._crc != wire.unmask_crc(self.entry.crc32c):
                raise ConversionError(
                    f"{self.info.bundle.data_path(self.entry.shard_id)}: '{self.keys[0]}' fails its CRC32C: "
                    "the checkpoint is corrupt."
                )
        else:
            tensors.check_tensor(self.info.bundle, self.entry, stream_threshold=BLOCK_BYTES)


class _Op(_Node):
    def __init__(self, step: Step, inputs: Sequence[_Node]):
        self.step, self.inputs, self.shape = step, list(inputs), tuple(step.shape)
        self.dtype = _numpy(dtypes.DTYPE_ENUM[step.dtype]) if step.op == "cast" else inputs[0].dtype
        self._whole = None

    @property
    def input(self) -> _Node:
        return self.inputs[0]

    def rows(self, lo: int, hi: int):
        np = _np()
        op, a = self.step.op, self.step.args
        if op == "reshape":
            x = self.input
            if not self.shape or not x.shape:
                return x.all().reshape(self.shape)[lo:hi] if self.shape else x.all().reshape(())
            out_row, in_row = math.prod(self.shape[1:]), math.prod(x.shape[1:])
            first, last = lo * out_row, hi * out_row
            if in_row == 0 or out_row == 0:
                return np.zeros((hi - lo,) + self.shape[1:], self.dtype)
            r0, r1 = first // in_row, -(-last // in_row)
            flat = x.rows(r0, r1).reshape(-1)[first - r0 * in_row : last - r0 * in_row]
            return flat.reshape((hi - lo,) + self.shape[1:])
        if op == "transpose":
            if a[0] == 0:
                return self.input.rows(lo, hi).transpose(a)
            if self._whole is None:
                self._whole = np.ascontiguousarray(self.input.all().transpose(a))
            return self._whole[lo:hi]
        if op == "cast":
            return self.input.rows(lo, hi).astype(self.dtype)
        axis = a.get("axis", 0) if isinstance(a, dict) else 0
        if op == "slice":
            if axis == 0:
                return self.input.rows(a["begin"] + lo, a["begin"] + hi)
            index = [slice(None)] * len(self.shape)
            index[axis] = slice(a["begin"], a["begin"] + a["size"])
            return self.input.rows(lo, hi)[tuple(index)]
        if op == "concat":
            if axis:
                return np.concatenate([x.rows(lo, hi) for x in self.inputs], axis=axis)
            return np.concatenate(self._pieces([(x, 0, x.shape[0]) for x in self.inputs], lo, hi), axis=0)
        if op == "reorder":
            size = self.shape[axis] // a["parts"]
            if axis == 0:
                blocks = [(self.input, k * size, size) for k in a["order"]]
                return np.concatenate(self._pieces(blocks, lo, hi), axis=0)
            x = self.input.rows(lo, hi)
            return np.concatenate(
                [np.take(x, range(k * size, (k + 1) * size), axis=axis) for k in a["order"]], axis=axis
            )
        # add, scale: on all of it or on one block along an axis
        if self.dtype.kind in "iub":  # bfloat16 read as raw integers: numpy alone has no such type
            raise ConversionError(
                f"{op} on {self.step.dtype} needs the `ml_dtypes` package (installed with TensorFlow)."
            )
        x = np.array(self.input.rows(lo, hi), dtype=self.dtype, copy=True)
        value = x.dtype.type(a["value"])
        index = [slice(None)] * x.ndim
        if "parts" in a:
            size = self.shape[axis] // a["parts"]
            begin, end = a["index"] * size, (a["index"] + 1) * size
            if axis == 0:
                begin, end = max(begin - lo, 0), max(min(end - lo, hi - lo), 0)
            index[axis] = slice(begin, end)
        index = tuple(index)
        if op == "add":
            x[index] += value
        else:
            x[index] *= value
        return x

    @staticmethod
    def _pieces(blocks, lo: int, hi: int) -> list:
        """Rows `lo:hi` of blocks laid end to end, each `(node, first row, rows)`."""
        out, at = [], 0
        for node, first, n in blocks:
            a, b = max(lo, at), min(hi, at + n)
            if a < b:
                out.append(node.rows(first + a - at, first + b - at))
            at += n
        return out


def _graph(info: checkpoint.CheckpointInfo, transform: Transform) -> _Node:
    if len(transform.keys) != len(transform.sources):
        raise ConversionError(f"transform of {transform.sources} is not planned against a checkpoint.")
    nodes: list[_Node] = [
        _Source(info, keys_, axis, shape)
        for keys_, axis, shape in zip(transform.keys, transform.part_axes, transform.source_shapes)
    ]
    node: Optional[_Node] = None
    for step in transform.steps:
        if step.op == "concat":
            node = _Op(step, nodes)
        elif (
            step.op == "reshape"
            and isinstance(node or nodes[0], _Source)
            and (node or nodes[0]).entry is not None
        ):
            src = node or nodes[0]  # same bytes, another shape: read them so
            src.shape = tuple(step.shape)
            node = src
        else:
            node = _Op(step, [node or nodes[0]])
    return node or nodes[0]


def evaluate(info: checkpoint.CheckpointInfo, transform: Transform):
    """The transformed tensor as a numpy array (whole: for a warm start's values).

    Raises:
      ConversionError: a source is not numeric, truncated or fails its checksum.
    """
    node = _graph(info, transform)
    value = node.all()
    node.verify()
    return _np().ascontiguousarray(value)


class _Producer:
    def __init__(self, info: checkpoint.CheckpointInfo, transform: Transform):
        self.node = _graph(info, transform)
        self.nbytes = math.prod(transform.shape) * self.node.dtype.itemsize

    def write(self, f: BinaryIO) -> int:
        node, np = self.node, _np()
        core = node
        while isinstance(core, _Op) and core.step.op == "reshape" and core.input.shape and core.shape:
            core = core.input  # a reshape on top changes no byte
        if (
            isinstance(core, _Op)
            and core.step.op == "transpose"
            and core.step.args[0] != 0
            and isinstance(core.input, _Source)
            and core.input.entry is not None
            and _rotation(core.step.args) is not None
            and self.nbytes > BLOCK_BYTES
        ):
            crc = _Tiled(core.input, _rotation(core.step.args)).write(f)
            core.input.verify()
            return crc
        crc = 0
        if not node.shape or self.nbytes <= BLOCK_BYTES:
            data = np.ascontiguousarray(node.all(), dtype=node.dtype).tobytes()
            f.write(data)
            crc = wire.crc32c(data)
        else:
            row = max(1, self.nbytes // node.shape[0]) if node.shape[0] else 1
            step = max(1, BLOCK_BYTES // row)
            for lo in range(0, node.shape[0], step):
                data = np.ascontiguousarray(
                    node.rows(lo, min(lo + step, node.shape[0])), dtype=node.dtype
                ).tobytes()
                f.write(data)
                crc = wire.crc32c(data, crc)
        node.verify()
        return crc


def _rotation(perm) -> Optional[int]:
    """`k` when `perm` is `[k, ..., n-1, 0, ..., k-1]` (a 2-D transpose of `[prod(:k), prod(k:)]`), else None."""
    n = len(perm)
    k = perm[0]
    return k if list(perm) == list(range(k, n)) + list(range(k)) else None


class _Tiled:
    """A 2-D transpose `[R, C] -> [C, R]` of a stored tensor, tile by tile, through `pread`/`pwrite`."""

    def __init__(self, source: _Source, k: int):
        self.src = source
        self.rows_, self.cols = math.prod(source.shape[:k]), math.prod(source.shape[k:])

    def write(self, f: BinaryIO) -> int:
        np, src = _np(), self.src
        item = src.dtype.itemsize
        fd_out, base = f.fileno(), f.tell()
        path = src.info.bundle.data_path(src.entry.shard_id)
        side = max(1, int(math.sqrt(BLOCK_BYTES // item)))
        with fileio.open_read(path) as fin:
            fd_in = fin.fileno()
            for r0 in range(0, self.rows_, side):
                r1 = min(r0 + side, self.rows_)
                for c0 in range(0, self.cols, side):
                    c1 = min(c0 + side, self.cols)
                    tile = np.empty((r1 - r0, c1 - c0), src.dtype)
                    for i, r in enumerate(range(r0, r1)):
                        at = src.entry.offset + (r * self.cols + c0) * item
                        tile[i] = np.frombuffer(os.pread(fd_in, (c1 - c0) * item, at), src.dtype)
                    out = np.ascontiguousarray(tile.T)
                    for j, c in enumerate(range(c0, c1)):
                        os.pwrite(fd_out, out[j].data, base + (c * self.rows_ + r0) * item)
        src._in_order = False  # the source's checksum is checked by a read of its own
        size = self.rows_ * self.cols * item
        crc, done = 0, 0
        while done < size:
            data = os.pread(fd_out, min(BLOCK_BYTES, size - done), base + done)
            crc, done = wire.crc32c(data, crc), done + len(data)
        f.seek(base + size)
        return crc


def producer(info: checkpoint.CheckpointInfo, transform: Transform) -> _Producer:
    """A `format.assembly.Producer` writing `transform`'s result of `info`'s tensors, streamed."""
    return _Producer(info, transform)


__all__ = ["BLOCK_BYTES", "evaluate", "producer"]
