"""The TensorBundle index: its entries and header, decoded and encoded without TensorFlow.

A checkpoint `<prefix>` is `<prefix>.index`, a LevelDB-format table (`table`)
of `BundleEntryProto`s keyed by tensor name, whose empty key holds the
`BundleHeaderProto`, plus the data shards `<prefix>.data-NNNNN-of-MMMMM`
(their tensor bytes: `tensors`). The entry of each part of a partitioned
variable is keyed by `checkpoint::EncodeTensorNameSlice`. `reader` reads and
checks a whole bundle.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Optional, Sequence

from est_ckpt.errors import WireError
from est_ckpt.format import dtypes, table, wire

# Field numbers of `tensorflow/core/protobuf/tensor_bundle.proto` and the
# `TensorShapeProto`, `TensorSliceProto` and `VersionDef` it embeds.
HEADER_NUM_SHARDS, HEADER_ENDIANNESS, HEADER_VERSION = 1, 2, 3
VERSION_PRODUCER = 1
ENTRY_DTYPE, ENTRY_SHAPE, ENTRY_SHARD_ID, ENTRY_OFFSET, ENTRY_SIZE, ENTRY_CRC32C, ENTRY_SLICES = range(1, 8)
SHAPE_DIM, SHAPE_UNKNOWN_RANK = 2, 3
DIM_SIZE = 1
SLICE_EXTENT = 1
EXTENT_START, EXTENT_LENGTH = 1, 2

LITTLE_ENDIAN = 0
# The first byte of a slice key (`OrderedCode` of 0); tensor names never start with it.
SLICE_KEY_MARK = b"\x00"


@dataclasses.dataclass(frozen=True)
class Header:
    """A `BundleHeaderProto`."""

    num_shards: int
    endianness: int = LITTLE_ENDIAN
    version_producer: int = 1
    raw: bytes = b""


@dataclasses.dataclass(frozen=True)
class Entry:
    """A `BundleEntryProto` under its key.

    `slices` is set on the entry of a partitioned variable: a tuple of slices,
    each a tuple of `(start, length)` per dimension (`length == -1` is the full
    extent). Such an entry has no data of its own; its parts are in
    `Bundle.slice_entries`.
    """

    key: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0
    slices: tuple[tuple[tuple[int, int], ...], ...] = ()
    raw: bytes = b""

    @property
    def dtype_name(self) -> str:
        return dtypes.dtype_name(self.dtype)

    @property
    def num_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(d, 0)
        return n


@dataclasses.dataclass(frozen=True)
class SliceEntry:
    """The entry of one part of a partitioned variable."""

    raw_key: bytes
    name: str
    extents: tuple[tuple[int, int], ...]
    entry: Entry


@dataclasses.dataclass
class Bundle:
    """Everything an index holds, in key order.

    `damaged` holds the raw keys of entries whose metadata failed a check
    (only a checked read with `problems` keeps such entries); their data is
    never read. A bundle over another file's byte ranges (a Keras file:
    `format.keras_file`) has that `data_file` as its one shard and no
    checksums (`checksummed` False): its entries are read unchecked, and
    copied, never linked, into a checkpoint.
    """

    prefix: str
    header: Header
    entries: dict[str, Entry]
    slice_entries: list[SliceEntry]
    shard_sizes: list[int]
    damaged: frozenset[bytes] = frozenset()
    data_file: Optional[str] = None
    checksummed: bool = True

    def data_path(self, shard_id: int) -> str:
        if self.data_file is not None:
            return self.data_file
        return data_path(self.prefix, shard_id, self.header.num_shards)


def index_path(prefix: str) -> str:
    return f"{prefix}.index"


def data_path(prefix: str, shard_id: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}"


# -- the protos -------------------------------------------------------------------


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, _, value in wire.iter_fields(buf):
        if field == SHAPE_DIM:
            size = 0
            for f2, _, v2 in wire.iter_fields(wire.expect_bytes(value, "dim")):
                if f2 == DIM_SIZE:
                    size = wire.to_signed64(wire.expect_int(v2, "dim.size"))
            dims.append(size)
        elif field == SHAPE_UNKNOWN_RANK and value:
            raise WireError("shape has unknown rank")
    return tuple(dims)


def _parse_slice(buf: bytes) -> tuple[tuple[int, int], ...]:
    extents = []
    for field, _, value in wire.iter_fields(buf):
        if field == SLICE_EXTENT:
            start, length = 0, -1
            for f2, _, v2 in wire.iter_fields(wire.expect_bytes(value, "extent")):
                if f2 == EXTENT_START:
                    start = wire.to_signed64(wire.expect_int(v2, "extent.start"))
                elif f2 == EXTENT_LENGTH:
                    length = wire.to_signed64(wire.expect_int(v2, "extent.length"))
            extents.append((start, length))
    return tuple(extents)


# Tags of the `BundleEntryProto` fields that the fast path of `parse_entry` decodes.
_TAG_DTYPE = wire.tag(ENTRY_DTYPE, wire.VARINT)
_TAG_SHAPE = wire.tag(ENTRY_SHAPE, wire.LENGTH_DELIMITED)
_TAG_SHARD = wire.tag(ENTRY_SHARD_ID, wire.VARINT)
_TAG_OFFSET = wire.tag(ENTRY_OFFSET, wire.VARINT)
_TAG_SIZE = wire.tag(ENTRY_SIZE, wire.VARINT)
_TAG_CRC = wire.tag(ENTRY_CRC32C, wire.FIXED32)
_SHAPES: dict[bytes, tuple[int, ...]] = {}


def _cached_shape(buf: bytes) -> tuple[int, ...]:
    # Checkpoints repeat a handful of shapes thousands of times.
    shape = _SHAPES.get(buf)
    if shape is None:
        shape = _parse_shape(buf)
        if len(_SHAPES) < 4096:
            _SHAPES[buf] = shape
    return shape


def parse_entry(key: str, buf: bytes) -> Entry:
    """Decodes a `BundleEntryProto` (raises `errors.WireError`).

    The fast path reads the fields TF writes, in any order; anything else
    (slices, unknown fields) goes through the generic decoder.
    """
    dtype = shard_id = offset = size = crc = 0
    shape: tuple[int, ...] = ()
    pos, end = 0, len(buf)
    read_varint = wire.read_varint
    while pos < end:
        tag = buf[pos]
        pos += 1
        if tag == _TAG_CRC:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            crc = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
            continue
        if tag == _TAG_SHAPE:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise WireError(f"length-delimited field {ENTRY_SHAPE} runs past the end")
            shape = _cached_shape(buf[pos : pos + length])
            pos += length
            continue
        if tag not in (_TAG_DTYPE, _TAG_SHARD, _TAG_OFFSET, _TAG_SIZE):
            return _parse_entry_generic(key, buf)
        if pos < end and buf[pos] < 0x80:
            value = buf[pos]
            pos += 1
        else:
            value, pos = read_varint(buf, pos, end)
        if tag == _TAG_DTYPE:
            dtype = value
        elif tag == _TAG_SHARD:
            shard_id = wire.to_signed64(value)
        elif tag == _TAG_OFFSET:
            offset = wire.to_signed64(value)
        else:
            size = wire.to_signed64(value)
    return Entry(key, dtype, shape, shard_id, offset, size, crc, (), buf)


def _parse_entry_generic(key: str, buf: bytes) -> Entry:
    dtype = 0
    shape: tuple[int, ...] = ()
    shard_id = offset = size = crc = 0
    slices = []
    for field, _, value in wire.iter_fields(buf):
        if field == ENTRY_DTYPE:
            dtype = wire.expect_int(value, "dtype")
        elif field == ENTRY_SHAPE:
            shape = _parse_shape(wire.expect_bytes(value, "shape"))
        elif field == ENTRY_SHARD_ID:
            shard_id = wire.to_signed64(wire.expect_int(value, "shard_id"))
        elif field == ENTRY_OFFSET:
            offset = wire.to_signed64(wire.expect_int(value, "offset"))
        elif field == ENTRY_SIZE:
            size = wire.to_signed64(wire.expect_int(value, "size"))
        elif field == ENTRY_CRC32C:
            crc = wire.expect_int(value, "crc32c")
        elif field == ENTRY_SLICES:
            slices.append(_parse_slice(wire.expect_bytes(value, "slice")))
    return Entry(key, dtype, shape, shard_id, offset, size, crc, tuple(slices), buf)


def parse_header(buf: bytes) -> Header:
    """Decodes a `BundleHeaderProto` (raises `errors.WireError`)."""
    num_shards = endianness = producer = 0
    for field, _, value in wire.iter_fields(buf):
        if field == HEADER_NUM_SHARDS:
            num_shards = wire.to_signed64(wire.expect_int(value, "num_shards"))
        elif field == HEADER_ENDIANNESS:
            endianness = wire.expect_int(value, "endianness")
        elif field == HEADER_VERSION:
            for f2, _, v2 in wire.iter_fields(wire.expect_bytes(value, "version")):
                if f2 == VERSION_PRODUCER:
                    producer = wire.expect_int(v2, "version.producer")
    return Header(num_shards, endianness, producer, buf)


def encode_header(num_shards: int, template: Optional[Header] = None) -> bytes:
    """Serializes a `BundleHeaderProto`, keeping a template's version field."""
    out = wire.field_varint(HEADER_NUM_SHARDS, num_shards) if num_shards else b""
    version = b""
    if template is not None:
        for field, _, value in wire.iter_fields(template.raw):
            if field == HEADER_VERSION:
                version = wire.field_bytes(HEADER_VERSION, value)
    return out + (version or wire.field_bytes(HEADER_VERSION, wire.field_varint(VERSION_PRODUCER, 1)))


def encode_entry(entry: Entry, shard_id: Optional[int] = None, offset: Optional[int] = None) -> bytes:
    """Re-serializes `entry`, optionally moving it to another shard or offset.

    Without changes the original bytes are returned unchanged.
    """
    if shard_id is None and offset is None and entry.raw:
        return entry.raw
    shard_id = entry.shard_id if shard_id is None else shard_id
    offset = entry.offset if offset is None else offset
    out = bytearray()
    for field, wire_type, value in wire.iter_fields(entry.raw):
        if field in (ENTRY_SHARD_ID, ENTRY_OFFSET):
            continue
        if wire_type == wire.VARINT:
            out += wire.field_varint(field, value)
        elif wire_type == wire.LENGTH_DELIMITED:
            out += wire.field_bytes(field, value)
        elif wire_type == wire.FIXED32:
            out += wire.field_fixed32(field, value)
        if field == ENTRY_SHAPE:
            if shard_id:
                out += wire.field_varint(ENTRY_SHARD_ID, shard_id)
            if offset:
                out += wire.field_varint(ENTRY_OFFSET, offset)
    return bytes(out)


def parse_slice_key(raw: bytes) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Decodes `checkpoint::EncodeTensorNameSlice`: the key of one partition's data."""
    zero, pos = wire.read_oc_num_increasing(raw, 0)
    if zero != 0:
        raise WireError("slice key does not start with 0")
    name, pos = wire.read_oc_string(raw, pos)
    dims, pos = wire.read_oc_num_increasing(raw, pos)
    if dims > 64:
        raise WireError("slice key has too many dimensions")
    extents = []
    for _ in range(dims):
        start, pos = wire.read_oc_signed_num_increasing(raw, pos)
        length, pos = wire.read_oc_signed_num_increasing(raw, pos)
        extents.append((start, length))
    if pos != len(raw):
        raise WireError("slice key has trailing bytes")
    try:
        return name.decode("utf-8"), tuple(extents)
    except UnicodeDecodeError:
        raise WireError("slice key name is not UTF-8") from None


def encode_slice_key(name: str, extents: Sequence[tuple[int, int]]) -> bytes:
    out = wire.oc_num_increasing(0) + wire.oc_string(name.encode("utf-8"))
    out += wire.oc_num_increasing(len(extents))
    for start, length in extents:
        out += wire.oc_signed_num_increasing(start) + wire.oc_signed_num_increasing(length)
    return out


def build_index(header: bytes, rows: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Serializes a bundle index: the header under the empty key, then sorted entries."""
    return table.build_table([(b"", header), *sorted(rows)])
