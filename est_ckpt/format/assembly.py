"""A new TensorBundle assembled from bytes that already exist and tensors computed now: the writer's seam.

Tools say what the new checkpoint holds, key by key, and never number shards
or encode entries themselves:

- `link(key, source, entry)`: the tensor is `entry`'s bytes in `source`'s data
  files. Index only: the shard is shared (hard-linked or copied whole when
  published), renumbered in the new shard set.
- `link_parts(key, whole, source, parts)`: a partitioned tensor (an entry with
  slices and no data) over parts in `source`'s shards.
- `compute(key, dtype, shape, data)`: bytes computed now (an object graph, a
  rescaled slot), or a `Producer` that writes them (a transformed tensor,
  streamed); they go into one extra shard, last.
- `put(key, raw)`: a row whose entry needs no data (it is already encoded).

`rows(...)` then gives the header, the index rows, the source shards in their
new numbering and the `NewShard`, for `tools.publish` to write atomically
(the computed tensors' rows are complete once the new shard is written: their
checksums are taken as they are written).
The source shards are numbered source by source in the order the sources were
given, by old shard id within each: only the shards a linked entry uses.
"""

from __future__ import annotations

import dataclasses
from typing import BinaryIO, Iterator, Optional, Protocol, Sequence, Union

from est_ckpt.format import bundle, tensors, wire
from est_ckpt.format.bundle import Bundle, Entry

__all__ = ["Assembled", "Assembly", "NewShard", "Producer"]


class Producer(Protocol):
    """Writes one computed tensor's `nbytes` bytes at a file's current position; returns their CRC32C.

    It may `os.pwrite`/`os.pread` the file's descriptor within its own region,
    and leaves the position at the region's end.
    """

    nbytes: int

    def write(self, f: BinaryIO) -> int: ...


class NewShard:
    """The one data shard of computed tensors: written in order, each tensor's row encoded once it is written."""

    def __init__(self, tensors_: Sequence[tuple[bytes, int, tuple, Union[bytes, Producer]]], shard_id: int):
        self._tensors, self.shard_id = list(tensors_), shard_id
        self.size = sum(len(d) if isinstance(d, bytes) else d.nbytes for *_, d in self._tensors)

    def write(self, f: BinaryIO) -> dict[bytes, bytes]:
        """Writes the shard into `f` from its start; returns the computed tensors' index rows."""
        rows: dict[bytes, bytes] = {}
        for raw_key, dtype, shape, data in self._tensors:
            offset = f.tell()
            if isinstance(data, bytes):
                f.write(data)
                rows[raw_key] = tensors.new_entry(dtype, shape, self.shard_id, offset, data)
                continue
            crc = data.write(f)
            if f.tell() != offset + data.nbytes:
                raise AssertionError(
                    f"{raw_key!r}: {f.tell() - offset} bytes written, {data.nbytes} expected"
                )
            rows[raw_key] = tensors.entry_bytes(dtype, shape, self.shard_id, offset, data.nbytes, crc)
        return rows


@dataclasses.dataclass(frozen=True)
class Assembled:
    """What `Assembly.rows` gives `tools.publish.publish`.

    Attributes:
      header: the encoded bundle header (its shard count includes `new_shard`).
      rows: every index row but the header, by raw key.
      shards: each source shard in the new numbering, as `(data file, size)`.
      new_shard: the computed tensors, to write (None when nothing was computed);
        their rows are not in `rows` until it is written.
    """

    header: bytes
    rows: dict[bytes, bytes]
    shards: list[tuple[str, int]]
    new_shard: Optional[NewShard]


class Assembly:
    """The rows of a new checkpoint over `sources`' data shards plus one shard of computed tensors.

    Args:
      sources: the bundles whose bytes the new checkpoint may link, in the
        order their shards are numbered.
    """

    def __init__(self, *sources: Bundle):
        self._sources = list(sources)
        # raw key -> ("link", bundle, entry) | ("raw", bytes) | ("new", dtype, shape, data)
        self._rows: dict[bytes, tuple] = {}
        self._new: list[bytes] = []

    def link(self, key: str, source: Bundle, entry: Entry, *, shape: Optional[Sequence[int]] = None) -> None:
        """The tensor `key` is `entry`'s bytes, where `source` stores them (read as `shape`: a row-major reshape)."""
        self._check(source)
        self._rows[key.encode("utf-8")] = ("link", source, entry, None if shape is None else tuple(shape))

    def link_parts(
        self, key: str, whole: Entry, source: Bundle, parts: Sequence[tuple[tuple, Entry]]
    ) -> None:
        """A partitioned tensor: `whole` (slices, no data), each `(extents, part entry)` in `source`."""
        self._check(source)
        self._rows[key.encode("utf-8")] = ("raw", whole.raw)
        for extents, part in parts:
            self._rows[bundle.encode_slice_key(key, extents)] = ("link", source, part)

    def compute(
        self, key: Union[str, bytes], dtype: int, shape: Sequence[int], data: Union[bytes, Producer]
    ) -> None:
        """The tensor `key` is `data` (TensorBundle's encoding of `dtype`, or a `Producer` of it), in the new shard.

        A `bytes` key is a raw index key (a part's, `bundle.encode_slice_key`).
        """
        raw_key = key if isinstance(key, bytes) else key.encode("utf-8")
        self._rows[raw_key] = ("new", dtype, tuple(shape), len(self._new))
        self._new.append(data)

    def put(self, key: str, raw: bytes) -> None:
        """A row whose encoded entry refers to no data shard of its own (the whole of a partitioned tensor)."""
        self._rows[key.encode("utf-8")] = ("raw", raw)

    def referenced(self) -> Iterator[tuple[Bundle, Entry]]:
        """Every `(source, entry)` linked: what to check before publishing."""
        for row in self._rows.values():
            if row[0] == "link":
                yield row[1], row[2]

    def rows(self, *, header_template: Optional[bundle.Header] = None) -> Assembled:
        """The header, rows, source shards and new shard, numbered and encoded (computed rows: see `NewShard`)."""
        numbering: dict[tuple[int, int], int] = {}
        shards: list[tuple[str, int]] = []
        for source in self._sources:
            used = sorted({e.shard_id for b, e in self.referenced() if b is source and not e.slices})
            for old in used:
                numbering[(id(source), old)] = len(shards)
                shards.append((source.data_path(old), source.shard_sizes[old]))
        new_shard_id = len(shards)
        computed = []
        rows: dict[bytes, bytes] = {}
        for raw_key, row in self._rows.items():
            if row[0] == "link":
                source, entry, shape = row[1], row[2], row[3] if len(row) > 3 else None
                new = numbering[(id(source), entry.shard_id)]
                if shape is not None:
                    rows[raw_key] = tensors.entry_bytes(
                        entry.dtype, shape, new, entry.offset, entry.size, wire.unmask_crc(entry.crc32c)
                    )
                    continue
                rows[raw_key] = (
                    entry.raw if new == entry.shard_id else bundle.encode_entry(entry, shard_id=new)
                )
            elif row[0] == "raw":
                rows[raw_key] = row[1]
            else:
                _, dtype, shape, i = row
                computed.append((i, raw_key, dtype, shape))
        new_shard = (
            NewShard(
                [(k, dtype, shape, self._new[i]) for i, k, dtype, shape in sorted(computed)], new_shard_id
            )
            if computed
            else None
        )
        header = bundle.encode_header(len(shards) + (new_shard is not None), template=header_template)
        return Assembled(header, rows, shards, new_shard)

    def _check(self, source: Bundle) -> None:
        if not any(source is s for s in self._sources):
            raise ValueError(f"{source.prefix}: not a source of this assembly; pass it to Assembly(...).")
