"""The on-disk TensorBundle format, read and written without TensorFlow.

A checkpoint `<prefix>` is `<prefix>.index`, a LevelDB-format table (no
compression) of `BundleEntryProto`s keyed by tensor name, whose empty key holds
the `BundleHeaderProto`, plus the data shards `<prefix>.data-NNNNN-of-MMMMM`.
Every block's CRC, offset and size is checked before it is used, and every
entry's shard, offset and size are checked against the shard files, so nothing
unchecked ever reaches TensorFlow's C++ reader.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Iterable, Optional, Sequence

from est_ckpt import fileio
from est_ckpt.errors import CheckpointNotFoundError, CorruptCheckpointError
from est_ckpt.format import wire

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
BLOCK_SIZE = 262144
RESTART_INTERVAL = 16
# A tensor entry can describe at most this many bytes: larger declared sizes are
# treated as corruption rather than trusted with an allocation.
MAX_DECLARED_SIZE = 1 << 48

# DataType enum (tensorflow/core/framework/types.proto) -> (TF name, numpy type, itemsize).
DTYPES: dict[int, tuple[str, Optional[str], int]] = {
    1: ("float32", "<f4", 4),
    2: ("float64", "<f8", 8),
    3: ("int32", "<i4", 4),
    4: ("uint8", "u1", 1),
    5: ("int16", "<i2", 2),
    6: ("int8", "i1", 1),
    7: ("string", None, 0),
    8: ("complex64", "<c8", 8),
    9: ("int64", "<i8", 8),
    10: ("bool", "?", 1),
    11: ("qint8", "i1", 1),
    12: ("quint8", "u1", 1),
    13: ("qint32", "<i4", 4),
    14: ("bfloat16", "bfloat16", 2),
    15: ("qint16", "<i2", 2),
    16: ("quint16", "<u2", 2),
    17: ("uint16", "<u2", 2),
    18: ("complex128", "<c16", 16),
    19: ("float16", "<f2", 2),
    20: ("resource", None, 0),
    21: ("variant", None, 0),
    22: ("uint32", "<u4", 4),
    23: ("uint64", "<u8", 8),
    24: ("float8_e5m2", "float8_e5m2", 1),
    25: ("float8_e4m3fn", "float8_e4m3fn", 1),
}
DTYPE_ENUM = {name: num for num, (name, _, _) in DTYPES.items()}


def dtype_name(enum: int) -> str:
    """Returns TF's name for a `DataType` enum value (`float32`, `bfloat16`, ...)."""
    if enum in DTYPES:
        return DTYPES[enum][0]
    if enum > 100 and enum - 100 in DTYPES:
        return DTYPES[enum - 100][0] + "_ref"
    return f"dtype_{enum}"


@dataclasses.dataclass(frozen=True)
class Header:
    """A `BundleHeaderProto`."""

    num_shards: int
    endianness: int = 0
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
        return dtype_name(self.dtype)

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
    """Everything an index holds, in key order."""

    prefix: str
    header: Header
    entries: dict[str, Entry]
    slice_entries: list[SliceEntry]
    shard_sizes: list[int]

    def data_path(self, shard_id: int) -> str:
        return data_path(self.prefix, shard_id, self.header.num_shards)


def index_path(prefix: str) -> str:
    return f"{prefix}.index"


def data_path(prefix: str, shard_id: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}"


# -- reading the table ----------------------------------------------------------


class _Corrupt(Exception):
    pass


def _parse_handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = wire.read_varint(buf, pos)
    size, pos = wire.read_varint(buf, pos)
    return offset, size, pos


def _read_block(data: bytes, offset: int, size: int, what: str) -> bytes:
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise _Corrupt(f"{what} at offset {offset} size {size} runs past the end of the file")
    block = data[offset:end]
    ctype = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    actual = wire.crc32c(data[offset : end + 1])
    if wire.unmask_crc(stored) != actual:
        raise _Corrupt(f"{what} at offset {offset} fails its CRC32C check")
    if ctype != 0:
        raise _Corrupt(f"{what} at offset {offset} is compressed (type {ctype}); TensorBundle never is")
    return block


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise _Corrupt(f"{what} is shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 and len(block) > 4 or limit < 0:
        raise _Corrupt(f"{what} declares {num_restarts} restart points that do not fit")
    out = []
    pos, prev = 0, b""
    while pos < limit:
        shared, pos = wire.read_varint(block, pos, limit)
        non_shared, pos = wire.read_varint(block, pos, limit)
        value_len, pos = wire.read_varint(block, pos, limit)
        if shared > len(prev) or pos + non_shared + value_len > limit:
            raise _Corrupt(f"{what} has an entry that runs past its end")
        key = prev[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        value = block[pos : pos + value_len]
        pos += value_len
        if out and key <= prev:
            raise _Corrupt(f"{what} keys are out of order")
        out.append((key, value))
        prev = key
    return out


def read_table(data: bytes) -> list[tuple[bytes, bytes]]:
    """Decodes a whole LevelDB-format table held in `data`, checking every block."""
    if len(data) < FOOTER_SIZE:
        raise _Corrupt(f"file is {len(data)} bytes, shorter than a table footer ({FOOTER_SIZE})")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != TABLE_MAGIC:
        raise _Corrupt("no table magic number at the end: not a checkpoint index")
    _, _, pos = _parse_handle(footer, 0)
    index_offset, index_size, _ = _parse_handle(footer, pos)
    body = len(data) - FOOTER_SIZE
    if index_offset + index_size + BLOCK_TRAILER_SIZE > body:
        raise _Corrupt("index block handle points outside the file")
    index = _block_entries(_read_block(data, index_offset, index_size, "index block"), "index block")
    out: list[tuple[bytes, bytes]] = []
    for _, handle in index:
        offset, size, _ = _parse_handle(handle, 0)
        if offset + size + BLOCK_TRAILER_SIZE > body:
            raise _Corrupt(f"data block handle ({offset}, {size}) points outside the file")
        entries = _block_entries(_read_block(data, offset, size, "data block"), "data block")
        if out and entries and entries[0][0] <= out[-1][0]:
            raise _Corrupt("data blocks are out of order")
        out.extend(entries)
    return out


# -- protos ---------------------------------------------------------------------


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, _, value in wire.iter_fields(buf):
        if field == 2:
            size = 0
            for f2, _, v2 in wire.iter_fields(wire.expect_bytes(value, "dim")):
                if f2 == 1:
                    size = wire.to_signed64(wire.expect_int(v2, "dim.size"))
            dims.append(size)
        elif field == 3 and value:
            raise wire.WireError("shape has unknown rank")
    return tuple(dims)


def _parse_slice(buf: bytes) -> tuple[tuple[int, int], ...]:
    extents = []
    for field, _, value in wire.iter_fields(buf):
        if field == 1:
            start, length = 0, -1
            for f2, _, v2 in wire.iter_fields(wire.expect_bytes(value, "extent")):
                if f2 == 1:
                    start = wire.to_signed64(wire.expect_int(v2, "extent.start"))
                elif f2 == 2:
                    length = wire.to_signed64(wire.expect_int(v2, "extent.length"))
            extents.append((start, length))
    return tuple(extents)


# Tags of `BundleEntryProto` fields that the fast path of `parse_entry` decodes.
_TAG_DTYPE, _TAG_SHAPE, _TAG_SHARD, _TAG_OFFSET, _TAG_SIZE, _TAG_CRC = 0x08, 0x12, 0x18, 0x20, 0x28, 0x35
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
    """Decodes a `BundleEntryProto` (raises `wire.WireError`).

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
                raise wire.WireError("truncated fixed32")
            crc = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
            continue
        if tag == _TAG_SHAPE:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise wire.WireError("length-delimited field 2 runs past the end")
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
        if field == 1:
            dtype = wire.expect_int(value, "dtype")
        elif field == 2:
            shape = _parse_shape(wire.expect_bytes(value, "shape"))
        elif field == 3:
            shard_id = wire.to_signed64(wire.expect_int(value, "shard_id"))
        elif field == 4:
            offset = wire.to_signed64(wire.expect_int(value, "offset"))
        elif field == 5:
            size = wire.to_signed64(wire.expect_int(value, "size"))
        elif field == 6:
            crc = wire.expect_int(value, "crc32c")
        elif field == 7:
            slices.append(_parse_slice(wire.expect_bytes(value, "slice")))
    return Entry(key, dtype, shape, shard_id, offset, size, crc, tuple(slices), buf)


def parse_header(buf: bytes) -> Header:
    num_shards = endianness = 0
    producer = 0
    for field, _, value in wire.iter_fields(buf):
        if field == 1:
            num_shards = wire.to_signed64(wire.expect_int(value, "num_shards"))
        elif field == 2:
            endianness = wire.expect_int(value, "endianness")
        elif field == 3:
            for f2, _, v2 in wire.iter_fields(wire.expect_bytes(value, "version")):
                if f2 == 1:
                    producer = wire.expect_int(v2, "version.producer")
    return Header(num_shards, endianness, producer, buf)


def encode_header(num_shards: int, template: Optional[Header] = None) -> bytes:
    """Serializes a `BundleHeaderProto`, keeping a template's version field."""
    out = wire.field_varint(1, num_shards) if num_shards else b""
    version = b""
    if template is not None:
        for field, _, value in wire.iter_fields(template.raw):
            if field == 3:
                version = wire.field_bytes(3, value)
    return out + (version or wire.field_bytes(3, wire.field_varint(1, 1)))


def parse_slice_key(raw: bytes) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Decodes `checkpoint::EncodeTensorNameSlice`: the key of one partition's data."""
    zero, pos = wire.read_oc_num_increasing(raw, 0)
    if zero != 0:
        raise wire.WireError("slice key does not start with 0")
    name, pos = wire.read_oc_string(raw, pos)
    dims, pos = wire.read_oc_num_increasing(raw, pos)
    if dims > 64:
        raise wire.WireError("slice key has too many dimensions")
    extents = []
    for _ in range(dims):
        start, pos = wire.read_oc_signed_num_increasing(raw, pos)
        length, pos = wire.read_oc_signed_num_increasing(raw, pos)
        extents.append((start, length))
    if pos != len(raw):
        raise wire.WireError("slice key has trailing bytes")
    try:
        return name.decode("utf-8"), tuple(extents)
    except UnicodeDecodeError:
        raise wire.WireError("slice key name is not UTF-8") from None


def encode_slice_key(name: str, extents: Sequence[tuple[int, int]]) -> bytes:
    out = wire.oc_num_increasing(0) + wire.oc_string(name.encode("utf-8"))
    out += wire.oc_num_increasing(len(extents))
    for start, length in extents:
        out += wire.oc_signed_num_increasing(start) + wire.oc_signed_num_increasing(length)
    return out


# -- the bundle -----------------------------------------------------------------


def _check_entry(entry: Entry, header: Header, shard_sizes: Sequence[int], where: str) -> None:
    if entry.dtype not in DTYPES:
        raise _Corrupt(f"{where}: unknown dtype {entry.dtype}")
    if any(d < 0 for d in entry.shape):
        raise _Corrupt(f"{where}: negative dimension in shape {list(entry.shape)}")
    if entry.slices:
        return
    if not 0 <= entry.shard_id < header.num_shards:
        raise _Corrupt(f"{where}: shard {entry.shard_id} is not one of {header.num_shards} shards")
    if entry.offset < 0 or entry.size < 0 or entry.size > MAX_DECLARED_SIZE:
        raise _Corrupt(f"{where}: bad offset {entry.offset} or size {entry.size}")
    limit = shard_sizes[entry.shard_id]
    if entry.offset + entry.size > limit:
        raise _Corrupt(
            f"{where}: bytes [{entry.offset}, {entry.offset + entry.size}) lie outside "
            f"shard {entry.shard_id} ({limit} bytes)"
        )
    itemsize = DTYPES[entry.dtype][2]
    if itemsize and entry.size != entry.num_elements * itemsize:
        raise _Corrupt(
            f"{where}: {entry.size} bytes do not hold {entry.num_elements} {entry.dtype_name} values"
        )


def parse_index(prefix: str, data: bytes, shard_sizes: Optional[Sequence[int]] = None) -> Bundle:
    """Decodes index bytes of `prefix`; raises `CorruptCheckpointError` naming the file."""
    path = index_path(prefix)
    try:
        rows = read_table(data)
        if not rows or rows[0][0] != b"":
            raise _Corrupt("the header entry (empty key) is missing")
        header = parse_header(rows[0][1])
        if header.endianness != 0:
            raise _Corrupt("big-endian bundles are not supported")
        if not 0 <= header.num_shards <= 1 << 20:
            raise _Corrupt(f"header declares {header.num_shards} shards")
        if shard_sizes is None:
            shard_sizes = _stat_shards(prefix, header.num_shards)
        entries: dict[str, Entry] = {}
        slice_entries: list[SliceEntry] = []
        for raw_key, value in rows[1:]:
            if raw_key[:1] == b"\x00":
                name, extents = parse_slice_key(raw_key)
                entry = parse_entry(name, value)
                _check_entry(entry, header, shard_sizes, f"slice of '{name}'")
                slice_entries.append(SliceEntry(raw_key, name, extents, entry))
                continue
            try:
                key = raw_key.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _Corrupt(f"key {raw_key!r} is not UTF-8") from e
            entry = parse_entry(key, value)
            _check_entry(entry, header, shard_sizes, f"entry '{key}'")
            entries[key] = entry
    except (_Corrupt, wire.WireError) as e:
        raise CorruptCheckpointError(
            f"{path}: {e}. The index is damaged; restore it from a good copy."
        ) from None
    for s in slice_entries:
        owner = entries.get(s.name)
        if owner is None or not owner.slices:
            raise CorruptCheckpointError(
                f"{path}: a slice of '{s.name}' has no partitioned entry of that name."
            )
    return Bundle(prefix, header, entries, slice_entries, list(shard_sizes))


def _stat_shards(prefix: str, num_shards: int) -> list[int]:
    sizes = []
    for shard in range(num_shards):
        path = data_path(prefix, shard, num_shards)
        try:
            fileio.require_regular(path, directory_ok=False)
            sizes.append(fileio.getsize(path))
        except fileio.NotARegularFileError:
            raise CorruptCheckpointError(f"{path}: data shard {shard} is not a regular file.") from None
        except (OSError, Exception) as e:  # gfile raises its own NotFoundError.
            if fileio.exists(path):
                raise
            raise CheckpointNotFoundError(
                f"{path}: data shard {shard} of {num_shards} of checkpoint '{prefix}' is missing; "
                "copy every .data-* file together with the .index."
            ) from e
    return sizes


def read_bundle(prefix: str) -> Bundle:
    """Reads and checks `<prefix>.index` and the sizes of its data shards."""
    path = index_path(prefix)
    try:
        fileio.require_regular(path)
        data = fileio.read_bytes(path)
    except fileio.NotARegularFileError:
        raise CorruptCheckpointError(f"{path}: is not a regular file (a FIFO, device or socket).") from None
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"{path}: no such checkpoint index.") from None
    except IsADirectoryError:
        raise CorruptCheckpointError(f"{path}: is a directory, not a checkpoint index.") from None
    return parse_index(prefix, data)


# -- tensor data -----------------------------------------------------------------


def read_entry_bytes(bundle: Bundle, entry: Entry, check_crc: bool = True) -> bytes:
    """Reads the stored bytes of one (unpartitioned) entry, checking its CRC32C."""
    path = bundle.data_path(entry.shard_id)
    data = fileio.read_range(path, entry.offset, entry.size)
    if len(data) != entry.size:
        raise CorruptCheckpointError(f"{path}: '{entry.key}' is truncated.")
    if check_crc and wire.unmask_crc(entry.crc32c) != tensor_crc32c(entry, data):
        raise CorruptCheckpointError(
            f"{path}: the bytes of '{entry.key}' fail their CRC32C check; the data file is damaged."
        )
    return data


def tensor_crc32c(entry: Entry, data: bytes) -> int:
    """The CRC32C that TensorBundle records for a tensor's stored bytes.

    For strings, TF checksums each length as a little-endian uint32 (not the
    varints it stores), then the masked length checksum and the string bytes.
    """
    if entry.dtype != 7:
        return wire.crc32c(data)
    try:
        pos, crc = 0, 0
        for _ in range(entry.num_elements):
            length, pos = wire.read_varint(data, pos)
            crc = wire.crc32c(struct.pack("<I", length & 0xFFFFFFFF), crc)
    except wire.WireError:
        return -1
    return wire.crc32c(data[pos:], crc)


def _numpy_dtype(enum: int):
    import numpy as np

    npname = DTYPES[enum][1]
    if npname is None:
        return None
    if npname in ("bfloat16", "float8_e5m2", "float8_e4m3fn"):
        try:
            import ml_dtypes

            return np.dtype(getattr(ml_dtypes, npname))
        except ImportError:
            return np.dtype("<u2" if npname == "bfloat16" else "u1")
    return np.dtype(npname)


def decode_tensor(entry: Entry, data: bytes, where: str = ""):
    """Decodes stored bytes into a numpy array (strings become an object array of bytes)."""
    import numpy as np

    n = entry.num_elements
    if entry.dtype == 7:
        try:
            lengths, pos = [], 0
            for _ in range(n):
                length, pos = wire.read_varint(data, pos)
                lengths.append(length)
            pos += 4  # masked CRC32C of the lengths
            values = []
            for length in lengths:
                if pos + length > len(data):
                    raise wire.WireError("string runs past its tensor")
                values.append(bytes(data[pos : pos + length]))
                pos += length
        except wire.WireError as e:
            raise CorruptCheckpointError(f"{where}'{entry.key}': {e}.") from None
        arr = np.empty(n, dtype=object)
        arr[:] = values
        return arr.reshape(entry.shape)
    dtype = _numpy_dtype(entry.dtype)
    if dtype is None:
        raise CorruptCheckpointError(f"{where}'{entry.key}': cannot decode dtype {entry.dtype_name}.")
    try:
        return np.frombuffer(data, dtype=dtype, count=n).reshape(entry.shape)
    except ValueError as e:  # numpy refuses the declared shape (rank > 32, too big).
        raise CorruptCheckpointError(
            f"{where}'{entry.key}': shape {list(entry.shape)} cannot be decoded: {e}."
        ) from None


def slice_problems(entry: Entry, parts: Sequence[SliceEntry]) -> list[str]:
    """Checks that `parts` tile the partitioned `entry` exactly; returns one line per problem.

    Pure geometry, no data is read: every part must lie inside the full shape,
    have the shape and dtype its extents and owner imply, be one of the
    entry's declared slices, and no two parts may overlap, so that they cover
    every element exactly once.
    """
    problems = []
    rank = len(entry.shape)
    declared = set(entry.slices)
    boxes = []
    for part in parts:
        what = f"slice {list(part.extents)} of '{entry.key}'"
        if len(part.extents) != rank:
            problems.append(f"{what} has rank {len(part.extents)}, the variable has rank {rank}")
            continue
        box = []
        for (start, length), dim in zip(part.extents, entry.shape):
            if length == -1 and start == 0:
                box.append((0, dim))
            elif start >= 0 and length >= 0 and start + length <= dim:
                box.append((start, start + length))
            else:
                break
        if len(box) != rank:
            problems.append(f"{what} lies outside the shape {list(entry.shape)}")
            continue
        if part.entry.shape != tuple(hi - lo for lo, hi in box):
            problems.append(f"{what} holds a tensor of shape {list(part.entry.shape)}")
        if part.entry.dtype != entry.dtype:
            problems.append(f"{what} is {part.entry.dtype_name}, the variable is {entry.dtype_name}")
        if part.extents not in declared:
            problems.append(f"{what} is not one of the variable's declared slices")
        boxes.append(box)
    stored = {p.extents for p in parts}
    for extents in entry.slices:
        if extents not in stored:
            problems.append(f"declared slice {list(extents)} of '{entry.key}' has no stored part")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if all(lo1 < hi2 and lo2 < hi1 for (lo1, hi1), (lo2, hi2) in zip(a, b)):
                problems.append(f"slices {a} and {b} of '{entry.key}' overlap")
    covered = 0
    for box in boxes:
        n = 1
        for lo, hi in box:
            n *= hi - lo
        covered += n
    if not problems and covered != entry.num_elements:
        problems.append(f"the slices of '{entry.key}' cover {covered} of its {entry.num_elements} elements")
    return problems


def read_tensor(bundle: Bundle, key: str):
    """Returns the value of `key` as a numpy array, assembling partitioned variables."""
    import numpy as np

    entry = bundle.entries[key]
    where = f"{bundle.prefix}: "
    if not entry.slices:
        return decode_tensor(entry, read_entry_bytes(bundle, entry), where)
    parts = [p for p in bundle.slice_entries if p.name == key]
    problems = slice_problems(entry, parts)
    if problems:
        raise CorruptCheckpointError(f"{index_path(bundle.prefix)}: {problems[0]}.")
    # Decode every part before allocating the whole: the parts' bytes bound the
    # allocation, never the declared shape alone.
    values = [decode_tensor(p.entry, read_entry_bytes(bundle, p.entry), where) for p in parts]
    try:
        full = np.empty(entry.shape, dtype=_numpy_dtype(entry.dtype) or np.dtype(object))
    except ValueError as e:
        raise CorruptCheckpointError(
            f"{where}'{key}': shape {list(entry.shape)} cannot be decoded: {e}."
        ) from None
    for part, value in zip(parts, values):
        index = tuple(
            slice(None) if length == -1 else slice(start, start + length) for start, length in part.extents
        )
        full[index] = value
    return full


# -- writing an index ---------------------------------------------------------------


class _BlockBuilder:
    """LevelDB's BlockBuilder: prefix-compressed keys with a restart point every few entries."""

    def __init__(self, restart_interval: int):
        self.interval = restart_interval
        self.buf = bytearray()
        self.restarts: list[int] = [0]
        self.count = 0
        self.last = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count < self.interval:
            limit = min(len(self.last), len(key))
            while shared < limit and self.last[shared] == key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.count = 0
        self.buf += wire.encode_varint(shared)
        self.buf += wire.encode_varint(len(key) - shared)
        self.buf += wire.encode_varint(len(value))
        self.buf += key[shared:]
        self.buf += value
        self.last = key
        self.count += 1

    def size_estimate(self) -> int:
        return len(self.buf) + 4 * len(self.restarts) + 4

    def finish(self) -> bytes:
        tail = b"".join(struct.pack("<I", r) for r in self.restarts)
        return bytes(self.buf) + tail + struct.pack("<I", len(self.restarts))


def _append_block(out: bytearray, block: bytes) -> bytes:
    offset = len(out)
    out += block
    trailer = b"\x00"
    out += trailer + struct.pack("<I", wire.mask_crc(wire.crc32c(block + trailer)))
    return wire.encode_varint(offset) + wire.encode_varint(len(block))


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    n = min(len(start), len(limit))
    i = 0
    while i < n and start[i] == limit[i]:
        i += 1
    if i < n and start[i] < 0xFF and start[i] + 1 < limit[i]:
        return start[:i] + bytes([start[i] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    for i, b in enumerate(key):
        if b != 0xFF:
            return key[:i] + bytes([b + 1])
    return key


def build_table(rows: Iterable[tuple[bytes, bytes]], block_size: int = BLOCK_SIZE) -> bytes:
    """Serializes sorted `(key, value)` rows as a LevelDB-format table, byte for byte as TF writes it."""
    out = bytearray()
    index = _BlockBuilder(1)
    block = _BlockBuilder(RESTART_INTERVAL)
    pending_handle: Optional[bytes] = None
    block_last = b""
    for key, value in rows:
        if pending_handle is not None:
            index.add(_shortest_separator(block_last, key), pending_handle)
            pending_handle = None
        block.add(key, value)
        if block.size_estimate() >= block_size:
            block_last = block.last
            pending_handle = _append_block(out, block.finish())
            block = _BlockBuilder(RESTART_INTERVAL)
    if block.count:
        block_last = block.last
        pending_handle = _append_block(out, block.finish())
    if pending_handle is not None:
        index.add(_short_successor(block_last), pending_handle)
    meta_handle = _append_block(out, _BlockBuilder(1).finish())
    index_handle = _append_block(out, index.finish())
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out + footer)


def build_index(header: bytes, rows: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Serializes a bundle index: the header under the empty key, then sorted entries."""
    rows = sorted(rows)
    return build_table([(b"", header), *rows])


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
        if field in (3, 4):
            continue
        if wire_type == 0:
            out += wire.field_varint(field, value)
        elif wire_type == 2:
            out += wire.field_bytes(field, value)
        elif wire_type == 5:
            out += wire.field_fixed32(field, value)
        if field == 2:
            if shard_id:
                out += wire.field_varint(3, shard_id)
            if offset:
                out += wire.field_varint(4, offset)
    return bytes(out)


def new_entry(dtype: int, shape: Sequence[int], shard_id: int, offset: int, data: bytes) -> bytes:
    """Serializes a `BundleEntryProto` for `data` written at `offset` of `shard_id`."""
    shape_proto = b"".join(wire.field_bytes(2, wire.field_varint(1, d)) for d in shape)
    out = wire.field_varint(1, dtype) + wire.field_bytes(2, shape_proto)
    if shard_id:
        out += wire.field_varint(3, shard_id)
    if offset:
        out += wire.field_varint(4, offset)
    if data:
        out += wire.field_varint(5, len(data))
    # Strings are checksummed as TF does (lengths as uint32), not as stored.
    crc = tensor_crc32c(Entry("", dtype, tuple(shape)), data)
    out += wire.field_fixed32(6, wire.mask_crc(crc))
    return out


def encode_string_tensor(values: Sequence[bytes]) -> bytes:
    """Encodes a string tensor as TensorBundle stores it."""
    lengths = b"".join(wire.encode_varint(len(v)) for v in values)
    checksum = 0
    for v in values:
        checksum = wire.crc32c(struct.pack("<I", len(v) & 0xFFFFFFFF), checksum)
    return lengths + struct.pack("<I", wire.mask_crc(checksum)) + b"".join(values)
