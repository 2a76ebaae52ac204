"""The one checked reader of a checkpoint's index and data shards.

`read_bundle(prefix)` reads `<prefix>.index` and checks every block's CRC and
every entry's dtype, shape, shard, offset and size against the shard files,
so nothing unchecked ever reaches TensorFlow's C++ reader. With
`problems=Problems()` it is the reader `verify` runs: it records every
problem, one line naming its file, and reads on as far as it can.
"""

from __future__ import annotations

from typing import Optional, Sequence

from est_ckpt import fileio
from est_ckpt.errors import CheckpointNotFoundError, FormatError, WireError
from est_ckpt.format import dtypes, table
from est_ckpt.format.bundle import (
    LITTLE_ENDIAN,
    SLICE_KEY_MARK,
    Bundle,
    Entry,
    Header,
    SliceEntry,
    data_path,
    index_path,
    parse_entry,
    parse_header,
    parse_slice_key,
)
from est_ckpt.format.problems import DAMAGED_INDEX, Problems, report

# A tensor entry can describe at most this many bytes: larger declared sizes are
# treated as corruption rather than trusted with an allocation.
MAX_DECLARED_SIZE = 1 << 48
MAX_SHARDS = 1 << 20


# What `entry_problem` returns for an entry whose bytes run past the end of its data shard: the shard is
# short (an interrupted copy), which `short_shard_problem` says naming the shard, not the index.
SHORT_SHARD = "short shard"


def short_shard_problem(prefix: str, entry: Entry, where: str, header: Header, size: int) -> str:
    """The line for an entry whose bytes `[offset, offset + size)` run past its data shard's `size`."""
    data = data_path(prefix, entry.shard_id, header.num_shards)
    return (
        f"{data}: {where} needs bytes [{entry.offset}, {entry.offset + entry.size}), but the file holds "
        f"only {size} bytes: the data file is truncated (or {fileio.basename(index_path(prefix))} is damaged)"
    )


def entry_problem(entry: Entry, header: Header, shard_sizes: Sequence[Optional[int]]) -> Optional[str]:
    """What is wrong with an entry's metadata, or None: dtype, shape, shard, offset and size.

    A shard size of None is a shard that is missing (already reported).
    """
    if entry.dtype not in dtypes.DTYPES:
        return f"unknown dtype {entry.dtype}"
    if any(d < 0 for d in entry.shape):
        return f"negative dimension in shape {list(entry.shape)}"
    if entry.slices:
        return None
    if not 0 <= entry.shard_id < header.num_shards:
        return f"shard {entry.shard_id} is not one of {header.num_shards} shards"
    limit = shard_sizes[entry.shard_id]
    if limit is None:
        return f"its data shard {entry.shard_id} is missing or not a regular file"
    if entry.offset < 0 or entry.size < 0 or entry.size > MAX_DECLARED_SIZE:
        return f"bad offset {entry.offset} or size {entry.size}"
    if entry.offset + entry.size > limit:
        return SHORT_SHARD
    itemsize = dtypes.itemsize(entry.dtype)
    if itemsize and entry.size != entry.num_elements * itemsize:
        return f"{entry.size} bytes do not hold {entry.num_elements} {entry.dtype_name} values"
    return None


_SHORT_SHARD_ADVICE = ". Copy every .data-* file again, together with its .index, from a good copy."


def _damaged(problems: Optional[Problems], line: str) -> None:
    report(problems, line, advice=DAMAGED_INDEX)


def parse_index(prefix: str, data: bytes, *, problems: Optional[Problems] = None) -> Optional[Bundle]:
    """Decodes the index bytes of `prefix` and checks them against its data shards.

    Args:
      prefix: the checkpoint prefix (its shards are looked up next to it).
      data: the bytes of `<prefix>.index`.
      problems: None to raise on the first problem. A `Problems` to record
        every problem instead: damaged blocks and entries are reported and
        skipped (entries whose metadata fails a check are kept, in
        `Bundle.damaged`), and None is returned when not even the header
        can be read.

    Raises:
      CorruptCheckpointError: the index is damaged (only without `problems`).
      CheckpointNotFoundError: a data shard is missing (only without `problems`).
    """
    path = index_path(prefix)
    lost_blocks: Optional[list[str]] = None if problems is None else []
    try:
        rows = table.read_table(data, problems=lost_blocks)
    except FormatError as e:
        return _damaged(problems, f"{path}: {e}")
    for message in lost_blocks or ():
        problems.add(f"{path}: {message}")
    if rows is None:
        return None
    if not rows or rows[0][0] != b"":
        if not lost_blocks:  # A lost first block already explains a missing header.
            _damaged(problems, f"{path}: the header entry (empty key) is missing")
        return None
    try:
        header = parse_header(rows[0][1])
    except WireError as e:
        return _damaged(problems, f"{path}: the header does not decode: {e}")
    if header.endianness != LITTLE_ENDIAN:
        return _damaged(
            problems, f"{path}: the header declares a big-endian bundle, which TF never writes here"
        )
    if not 0 <= header.num_shards <= MAX_SHARDS:
        return _damaged(problems, f"{path}: the header declares {header.num_shards} data shards")
    shard_sizes = stat_shards(prefix, header.num_shards, problems=problems)
    entries: dict[str, Entry] = {}
    slice_entries: list[SliceEntry] = []
    damaged = set()
    for raw_key, value in rows[1:]:
        try:
            if raw_key[:1] == SLICE_KEY_MARK:
                name, extents = parse_slice_key(raw_key)
            else:
                name, extents = raw_key.decode("utf-8"), None
            entry = parse_entry(name, value)
        except (WireError, UnicodeDecodeError) as e:
            _damaged(problems, f"{path}: key {raw_key[:80]!r} does not decode: {e}")
            continue
        problem = entry_problem(entry, header, shard_sizes)
        if problem is not None:
            where = f"entry '{name}'" if extents is None else f"slice {list(extents)} of '{name}'"
            if problem == SHORT_SHARD:
                line = short_shard_problem(prefix, entry, where, header, shard_sizes[entry.shard_id])
                report(problems, line, advice=_SHORT_SHARD_ADVICE)
            else:
                _damaged(problems, f"{path}: {where}: {problem}")
            damaged.add(raw_key)
        if extents is None:
            entries[name] = entry
        else:
            slice_entries.append(SliceEntry(raw_key, name, extents, entry))
    orphans: dict[str, int] = {}
    for s in slice_entries:
        owner = entries.get(s.name)
        if owner is None or not owner.slices:
            orphans[s.name] = orphans.get(s.name, 0) + 1
    for name, count in orphans.items():
        _damaged(problems, f"{path}: {count} slices of '{name}' have no partitioned entry of that name")
    sizes = [size or 0 for size in shard_sizes]
    return Bundle(prefix, header, entries, slice_entries, sizes, frozenset(damaged))


def stat_shards(prefix: str, num_shards: int, *, problems: Optional[Problems] = None) -> list[Optional[int]]:
    """The size of each data shard of `prefix`; None for one that is missing (with `problems` only)."""
    sizes: list[Optional[int]] = []
    for shard in range(num_shards):
        path = data_path(prefix, shard, num_shards)
        what = f"{path}: data shard {shard} of {num_shards}"
        try:
            fileio.require_regular(path, directory_ok=False)
        except fileio.NotARegularFileError:
            report(problems, f"{what} is not a regular file")
            sizes.append(None)
            continue
        if fileio.exists(path):
            sizes.append(fileio.getsize(path))
            continue
        advice = "; copy every .data-* file together with the .index."
        report(problems, f"{what} is missing", error=CheckpointNotFoundError, advice=advice)
        sizes.append(None)
        if len(sizes) >= problems.limit and all(s is None for s in sizes):
            # A header declaring a million shards that all are missing: stop looking.
            problems.add(f"{index_path(prefix)}: declares {num_shards} data shards, none found")
            return sizes + [None] * (num_shards - len(sizes))
    return sizes


def read_bundle(prefix: str, *, problems: Optional[Problems] = None) -> Optional[Bundle]:
    """Reads and checks `<prefix>.index` and the sizes of its data shards.

    With `problems`, see `parse_index`; an index that cannot be read at all
    is a problem too (None is returned), but a missing one still raises.

    Raises:
      CheckpointNotFoundError: there is no `<prefix>.index`, or (without
        `problems`) a data shard is missing.
      CorruptCheckpointError: the index is damaged (only without `problems`).
    """
    path = index_path(prefix)
    try:
        fileio.require_regular(path)
        data = fileio.read_bytes(path)
    except fileio.NotARegularFileError:
        return report(problems, f"{path}: is not a regular file (a FIFO, device or socket)")
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"{path}: no such checkpoint index.") from None
    except IsADirectoryError:
        return report(problems, f"{path}: is a directory, not a checkpoint index")
    except OSError as e:
        if problems is None:
            raise
        return problems.add(f"{path}: cannot be read: {e}")
    return parse_index(prefix, data, problems=problems)
