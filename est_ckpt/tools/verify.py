"""`verify_checkpoint`: check a checkpoint's every byte without TensorFlow.

Verification walks the index table block by block, so one damaged block does
not hide the problems of the others, then checks the header, every entry's
shard, offset and size, every tensor's CRC32C (each part of a partitioned
variable on its own), how the parts of a partitioned variable tile it, and the
object graph. It never hands an offset or size to TensorFlow: it does not use
TensorFlow at all.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Optional

from est_ckpt import fileio
from est_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError, EstCkptError
from est_ckpt.format import bundle, checkpoint, keys, wire

# More lines than this say nothing more to a reader; the rest are counted.
MAX_PROBLEMS = 200
# Numeric tensors larger than this are checksummed in chunks rather than read whole.
STREAM_THRESHOLD = 64 << 20


@dataclasses.dataclass
class VerifyReport:
    """What `verify_checkpoint` found.

    Attributes:
      path: the path as given.
      prefix: the checkpoint prefix that was verified (None when `path` names
        no checkpoint prefix at all, e.g. a file that is not part of one).
      problems: one line per problem, each naming the file it is about.
      tensors_checked: how many stored tensors (partitions counted one by
        one) passed their CRC32C check.
      bytes_checked: how many stored tensor bytes those hold.
    """

    path: str
    prefix: Optional[str]
    problems: list[str] = dataclasses.field(default_factory=list)
    tensors_checked: int = 0
    bytes_checked: int = 0

    @property
    def ok(self) -> bool:
        """Whether the checkpoint is sound (no problem was found)."""
        return not self.problems


class _Problems:
    """Collects problem lines, counting those past `MAX_PROBLEMS`."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.dropped = 0

    def add(self, line: str) -> None:
        if len(self.lines) < MAX_PROBLEMS:
            self.lines.append(line)
        else:
            self.dropped += 1

    def __bool__(self) -> bool:
        return bool(self.lines)

    def finish(self) -> list[str]:
        if self.dropped:
            return [*self.lines, f"... and {self.dropped} more problems"]
        return list(self.lines)


def verify_checkpoint(path: str) -> VerifyReport:
    """Checks the checkpoint at `path` and reports every problem it can find.

    Args:
      path: a model directory, a checkpoint prefix, or its `.index` / `.data-*`
        file. For a directory, the `checkpoint` state file is checked too (it
        must name only checkpoints that exist), then its latest checkpoint is
        verified (the newest one on disk if none is complete).

    Returns:
      A `VerifyReport`; `report.ok` is True when no problem was found.

    Raises:
      CheckpointNotFoundError: nothing at `path` is or names a checkpoint.
    """
    path = str(path)
    problems = _Problems()
    prefix = _resolve(path, problems)
    report = VerifyReport(path=path, prefix=prefix)
    if prefix is not None:
        _verify_prefix(prefix, problems, report)
    report.problems = problems.finish()
    return report


def _resolve(path: str, problems: _Problems) -> Optional[str]:
    if fileio.isdir(path):
        state = fileio.join(path, checkpoint.STATE_FILENAME)
        for named in checkpoint.read_state_file(path):
            if not fileio.exists(bundle.index_path(named)):
                problems.add(f"{state}: names checkpoint '{named}', whose .index does not exist")
    try:
        return checkpoint.resolve_checkpoint(path)
    except CheckpointNotFoundError:
        if not fileio.isdir(path):
            raise
        newest = _newest_index(path)
        if newest is None:
            raise
        return newest
    except EstCkptError as e:
        problems.add(str(e))
        return None


def _newest_index(directory: str) -> Optional[str]:
    # No checkpoint here is complete: verify the newest, to say what is wrong with it.
    prefixes = [
        fileio.join(directory, name[: -len(".index")])
        for name in fileio.listdir(directory)
        if name.endswith(".index") and ".tmp" not in name
    ]
    if not prefixes:
        return None
    prefixes.sort(key=lambda p: (checkpoint._step_of(p), fileio.mtime(bundle.index_path(p))))
    return prefixes[-1]


def _verify_prefix(prefix: str, problems: _Problems, report: VerifyReport) -> None:
    index = bundle.index_path(prefix)
    try:
        fileio.require_regular(index, directory_ok=False)
        data = fileio.read_bytes(index)
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"{index}: no such checkpoint index.") from None
    except OSError as e:
        problems.add(f"{index}: cannot be read: {e}")
        return
    rows = _read_rows(index, data, problems)
    if rows is None:
        return
    if not rows or rows[0][0] != b"":
        if not problems:  # A lost first block already explains a missing header.
            problems.add(f"{index}: the header entry (empty key) is missing")
        return
    try:
        header = bundle.parse_header(rows[0][1])
    except wire.WireError as e:
        problems.add(f"{index}: the header does not decode: {e}")
        return
    if header.endianness != 0:
        problems.add(f"{index}: the header declares a big-endian bundle, which TF never writes here")
        return
    if not 0 <= header.num_shards <= 1 << 20:
        problems.add(f"{index}: the header declares {header.num_shards} data shards")
        return
    shard_sizes = _shard_sizes(prefix, header.num_shards, problems)
    entries, parts, readable = _parse_entries(index, rows[1:], header, shard_sizes, problems)
    b = bundle.Bundle(prefix, header, entries, parts, [s or 0 for s in shard_sizes])
    for entry in entries.values():
        if entry.key in readable:
            _check_data(b, entry, f"'{entry.key}'", problems, report)
    for part in parts:
        if part.raw_key in readable:
            _check_data(b, part.entry, f"slice {list(part.extents)} of '{part.name}'", problems, report)
    _check_partitions(index, entries, parts, problems)
    _check_object_graph(b, readable, problems)
    if not problems:
        # Whatever verify passes, the reader must accept as well.
        try:
            checkpoint.info_from_bundle(bundle.parse_index(prefix, data))
        except EstCkptError as e:
            problems.add(str(e))


def _read_rows(index: str, data: bytes, problems: _Problems) -> Optional[list[tuple[bytes, bytes]]]:
    """Decodes the table, block by block; None when not even its index block reads."""
    size = len(data)
    if size < bundle.FOOTER_SIZE:
        problems.add(f"{index}: is {size} bytes, shorter than a table footer ({bundle.FOOTER_SIZE})")
        return None
    footer = data[-bundle.FOOTER_SIZE :]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != bundle.TABLE_MAGIC:
        problems.add(f"{index}: no table magic number at its end: not a checkpoint index")
        return None
    try:
        _, _, pos = bundle._parse_handle(footer, 0)
        offset, length, _ = bundle._parse_handle(footer, pos)
        handles = bundle._block_entries(
            bundle._read_block(data, offset, length, "index block"), "index block"
        )
    except (bundle._Corrupt, wire.WireError) as e:
        problems.add(f"{index}: {e}")
        return None
    rows: list[tuple[bytes, bytes]] = []
    for number, (_, handle) in enumerate(handles):
        what = f"data block {number}"
        try:
            offset, length, _ = bundle._parse_handle(handle, 0)
            block = bundle._block_entries(bundle._read_block(data, offset, length, what), what)
        except (bundle._Corrupt, wire.WireError) as e:
            problems.add(f"{index}: {e}; its entries are lost")
            continue
        if rows and block and block[0][0] <= rows[-1][0]:
            problems.add(f"{index}: {what} is out of key order")
            continue
        rows.extend(block)
    return rows


def _shard_sizes(prefix: str, num_shards: int, problems: _Problems) -> list[Optional[int]]:
    sizes: list[Optional[int]] = []
    for shard in range(num_shards):
        path = bundle.data_path(prefix, shard, num_shards)
        try:
            fileio.require_regular(path, directory_ok=False)
            sizes.append(fileio.getsize(path))
        except fileio.NotARegularFileError:
            sizes.append(None)
            problems.add(f"{path}: data shard {shard} of {num_shards} is not a regular file")
            continue
        except OSError:
            sizes.append(None)
            problems.add(f"{path}: data shard {shard} of {num_shards} is missing")
            if len(sizes) >= MAX_PROBLEMS and all(s is None for s in sizes):
                # A header declaring a million shards that all are missing: stop looking.
                problems.add(f"{bundle.index_path(prefix)}: declares {num_shards} data shards, none found")
                return sizes + [None] * (num_shards - len(sizes))
    return sizes


def _parse_entries(index, rows, header, shard_sizes, problems):
    """Returns `(entries, slice entries, keys whose data may be read)`, reporting bad ones.

    Readable keys are entry keys (str) and slice entries' raw keys (bytes).
    """
    entries: dict[str, bundle.Entry] = {}
    parts: list[bundle.SliceEntry] = []
    readable: set = set()
    for raw_key, value in rows:
        try:
            if raw_key[:1] == b"\x00":
                name, extents = bundle.parse_slice_key(raw_key)
                where = f"slice {list(extents)} of '{name}'"
            else:
                name, extents = raw_key.decode("utf-8"), None
                where = f"entry '{name}'"
            entry = bundle.parse_entry(name, value)
        except (wire.WireError, UnicodeDecodeError) as e:
            problems.add(f"{index}: key {raw_key[:80]!r} does not decode: {e}")
            continue
        if _check_entry(index, entry, header, shard_sizes, where, problems):
            readable.add(name if extents is None else raw_key)
        if extents is None:
            entries[name] = entry
        else:
            parts.append(bundle.SliceEntry(raw_key, name, extents, entry))
    return entries, parts, readable


def _check_entry(index, entry, header, shard_sizes, where, problems) -> bool:
    """Checks one entry's metadata; returns whether its data may be read."""
    if not entry.slices and 0 <= entry.shard_id < header.num_shards and shard_sizes[entry.shard_id] is None:
        problems.add(f"{index}: {where}: its data shard {entry.shard_id} is missing or not a regular file")
        return False
    sizes = [s or 0 for s in shard_sizes]
    try:
        bundle._check_entry(entry, header, sizes, where)
    except bundle._Corrupt as e:
        problems.add(f"{index}: {e}")
        return False
    return not entry.slices


def _check_data(b: bundle.Bundle, entry: bundle.Entry, what: str, problems, report) -> None:
    """Reads one stored tensor, checks its CRC32C and that it decodes."""
    path = b.data_path(entry.shard_id)
    try:
        if entry.dtype != 7 and entry.size > STREAM_THRESHOLD:
            _check_streamed(path, entry)
        else:
            bundle.decode_tensor(entry, bundle.read_entry_bytes(b, entry), f"{path}: ")
    except EstCkptError as e:
        problems.add(str(e).replace(f"'{entry.key}'", what, 1))
        return
    except OSError as e:
        problems.add(f"{path}: {what} cannot be read: {e}")
        return
    report.tensors_checked += 1
    report.bytes_checked += entry.size


def _check_streamed(path: str, entry: bundle.Entry) -> None:
    """`read_entry_bytes` + `decode_tensor` for a large numeric tensor, without holding its bytes."""
    import numpy as np

    crc = size = 0
    for chunk in fileio.iter_range(path, entry.offset, entry.size):
        crc = wire.crc32c(chunk, crc)
        size += len(chunk)
    if size != entry.size:
        raise CorruptCheckpointError(f"{path}: '{entry.key}' is truncated.")
    if crc != wire.unmask_crc(entry.crc32c):
        raise CorruptCheckpointError(
            f"{path}: the bytes of '{entry.key}' fail their CRC32C check; the data file is damaged."
        )
    dtype = bundle._numpy_dtype(entry.dtype)
    if dtype is None:
        raise CorruptCheckpointError(f"{path}: '{entry.key}': cannot decode dtype {entry.dtype_name}.")
    try:  # The reader's reshape, as a view that allocates nothing.
        np.broadcast_to(np.zeros((), dtype=dtype), entry.shape)
    except ValueError as e:
        raise CorruptCheckpointError(
            f"{path}: '{entry.key}': shape {list(entry.shape)} cannot be decoded: {e}."
        ) from None


def _check_partitions(index, entries, parts, problems) -> None:
    by_name: dict[str, list[bundle.SliceEntry]] = {}
    for part in parts:
        by_name.setdefault(part.name, []).append(part)
    for name, owned in by_name.items():
        owner = entries.get(name)
        if owner is None or not owner.slices:
            problems.add(f"{index}: {len(owned)} slices of '{name}' have no partitioned entry of that name")
    for entry in entries.values():
        if entry.slices:
            for line in bundle.slice_problems(entry, by_name.get(entry.key, [])):
                problems.add(f"{index}: {line}")


def _check_object_graph(b: bundle.Bundle, readable: set, problems) -> None:
    entry = b.entries.get(keys.OBJECT_GRAPH_KEY)
    if entry is None:
        return
    index = bundle.index_path(b.prefix)
    if entry.dtype != 7 or entry.shape != () or entry.slices:
        problems.add(f"{index}: '{keys.OBJECT_GRAPH_KEY}' is not a scalar string")
        return
    if keys.OBJECT_GRAPH_KEY not in readable:
        return  # Its entry is bad, and reported: never read what it declares.
    try:
        raw = bundle.decode_tensor(entry, bundle.read_entry_bytes(b, entry)).item()
    except (EstCkptError, OSError):
        return  # Already reported by the data check.
    try:
        graph = checkpoint.parse_object_graph(raw)
    except wire.WireError as e:
        problems.add(f"{index}: the object graph ('{keys.OBJECT_GRAPH_KEY}') does not decode: {e}")
        return
    for node_id, node in enumerate(graph.nodes):
        for attr in node.attributes:
            if attr.checkpoint_key and attr.checkpoint_key not in b.entries:
                problems.add(
                    f"{index}: the object graph names '{attr.checkpoint_key}' (node {node_id}), "
                    "which the index does not hold"
                )
