"""Asynchronous saves: training waits for one host copy of the saved state; a background thread writes it.

`Snapshot(saveables)`, built with the Saver before the graph is finalized,
lists every tensor that Saver saves (its key, the slice of a partitioned
variable it holds, its dtype) and the graph tensor that reads it. At a save,
`Snapshot.take` copies all of them into host memory in one `session.run`: the
only time training waits. A `Writer` thread then lays the copy out as a
TensorBundle with est_ckpt's own writer (`format.assembly`: every tensor in one
data shard, a partitioned variable's parts under their slice keys, as TF's
Saver keys them), writes it under a temporary name, reads its index back and
renames it into place (`tools.publish`), and only then runs what follows a
save (the `checkpoint` state file, retention, the name-based copy).

One write is in flight at a time: `Writer.wait` (called before the next
snapshot is taken, and when the training session closes, so `Estimator.train`
returns with its last checkpoint on disk) blocks until the previous write ends
and raises its error, if any, as an `AsyncSaveError`. The host memory held is one copy of the saved
state, from the snapshot until its write ends.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from est_ckpt.errors import AsyncSaveError
from est_ckpt.format import bundle, tensors, wire
from est_ckpt.format.assembly import Assembly
from est_ckpt.tools import publish

_CHUNK = 4 << 20
_STRING = 7  # DT_STRING


class _Array:
    """A `format.assembly.Producer` of one fetched numpy array: its bytes, chunk by chunk, with their CRC32C."""

    def __init__(self, value: np.ndarray):
        self._bytes = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
        self.nbytes = self._bytes.size

    def write(self, f) -> int:
        crc = 0
        for at in range(0, self.nbytes, _CHUNK):
            chunk = self._bytes[at : at + _CHUNK].tobytes()
            f.write(chunk)
            crc = wire.crc32c(chunk, crc)
        return crc


def _extents(slice_spec: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """`(full shape, ((start, length), ...))` of TF's slice spec `"10 4 0,5:0,4"` (`-`: the whole extent)."""
    *full, spec = slice_spec.split(" ")
    extents = []
    for part in spec.split(":"):
        if part == "-":
            extents.append((0, -1))
        else:
            start, length = part.split(",")
            extents.append((int(start), int(length)))
    return tuple(int(d) for d in full), tuple(extents)


class Snapshot:
    """What one save writes: each saved tensor's key, slice and dtype, and the graph tensors that read them.

    Args:
      saveables: the `SaveableObject`s of the Saver (their specs are read now, in graph mode).
    """

    def __init__(self, saveables: Sequence[Any]):
        import tensorflow as tf

        self._saved: list[tuple[str, str, int]] = []
        self.fetches: list[Any] = []
        for saveable in saveables:
            for spec in saveable.specs:
                tensor = spec.tensor
                if tensor is None:  # TF's Saver skips it too
                    continue
                dtype = spec.dtype.base_dtype
                self._saved.append((spec.name, spec.slice_spec, dtype.as_datatype_enum))
                if dtype != tf.string:
                    # A copy made by TF, on its threads, hands its buffer to numpy as it is: one copy in all,
                    # in parallel (a variable's value, fetched as it is, is copied again, tensor by tensor).
                    with tf.device(tensor.device):
                        tensor = tf.raw_ops.DeepCopy(x=tensor)
                self.fetches.append(tensor)

    def take(self, session) -> list:
        """The saved state, copied to host memory in one run (what training waits for)."""
        return session.run(self.fetches)

    def assembly(self, values: Sequence[Any]) -> Assembly:
        """The TensorBundle of `values` (from `take`), every tensor computed into one new shard."""
        out = Assembly()
        partitioned: dict[str, tuple[int, tuple[int, ...], list]] = {}
        for (key, slice_spec, dtype), value in zip(self._saved, values):
            value = np.asarray(value)
            if dtype == _STRING:
                data: Any = tensors.encode_string_tensor([bytes(v) for v in value.reshape(-1)])
            else:
                data = _Array(value)
            if slice_spec:
                full, extents = _extents(slice_spec)
                out.compute(bundle.encode_slice_key(key, extents), dtype, value.shape, data)
                partitioned.setdefault(key, (dtype, full, []))[2].append(extents)
            else:
                out.compute(key, dtype, value.shape, data)
        for key, (dtype, full, slices) in partitioned.items():
            out.put(key, tensors.sliced_entry(key, dtype, full, slices).raw)
        return out


def write_checkpoint(prefix: str, snapshot: Snapshot, values: Sequence[Any]) -> None:
    """Writes `values` as the checkpoint `prefix`, atomically (a checkpoint already there is replaced)."""
    assembled = snapshot.assembly(values).rows()
    dest = publish.save_destination(prefix)
    publish.publish(dest, assembled.header, assembled.rows, assembled.shards, new_shard=assembled.new_shard)


class Writer:
    """At most one background write in flight; its error is kept for the next `wait`."""

    def __init__(self) -> None:
        self._thread: Optional[threading.Thread] = None
        self._error: Optional[BaseException] = None
        self._what = ""
        self._started = 0.0

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def describe(self) -> str:
        """What is being written and for how long, for the log."""
        return f"{self._what} (writing for {time.monotonic() - self._started:.1f} s)"

    def wait(self) -> None:
        """Blocks until the write in flight ends.

        Raises:
          AsyncSaveError: that write failed (the checkpoint it wrote is not published).
        """
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise AsyncSaveError(
                f"{self._what}: the checkpoint written in the background failed, and training stops here: "
                f"{error}"
            ) from error

    def submit(self, what: str, job: Callable[[], None]) -> None:
        """Runs `job` in a new (non-daemon) thread; the caller has waited for the previous one."""
        if self._thread is not None:
            raise RuntimeError("est_ckpt: a checkpoint write is still in flight; wait() for it first")

        def run() -> None:
            try:
                job()
            except BaseException as e:  # kept for the next wait(): never lost
                self._error = e

        self._what, self._started = what, time.monotonic()
        # Not a daemon: an interpreter exiting waits for the write in flight to end.
        self._thread = threading.Thread(target=run, name="est_ckpt-checkpoint-writer")
        self._thread.start()


__all__ = ["Snapshot", "Writer", "write_checkpoint"]
