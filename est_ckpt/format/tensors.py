"""Tensor bytes in a bundle's data shards: read, checksummed, decoded, and written as TF does.

Numeric tensors are stored as little-endian arrays. A string tensor is the
varint length of each element, a masked CRC32C of those lengths, then the
bytes. TF checksums every stored tensor; a partitioned variable is stored as
parts (`bundle.SliceEntry`) that must tile it exactly.
"""

from __future__ import annotations

import struct
from typing import Sequence

from est_ckpt import fileio
from est_ckpt.errors import CorruptCheckpointError, WireError
from est_ckpt.format import bundle, dtypes, wire
from est_ckpt.format.bundle import Bundle, Entry, SliceEntry

# Numeric tensors larger than this are checksummed in chunks by `check_tensor` rather than read whole.
STREAM_THRESHOLD = 64 << 20


def tensor_crc32c(entry: Entry, data: bytes) -> int:
    """The CRC32C that TensorBundle records for a tensor's stored bytes.

    For strings, TF checksums each length as a little-endian uint32 (not the
    varints it stores), then the masked length checksum and the string bytes.
    """
    if entry.dtype != dtypes.DT_STRING:
        return wire.crc32c(data)
    try:
        pos, crc = 0, 0
        for _ in range(entry.num_elements):
            length, pos = wire.read_varint(data, pos)
            crc = wire.crc32c(struct.pack("<I", length & 0xFFFFFFFF), crc)
    except WireError:
        return -1
    return wire.crc32c(data[pos:], crc)


def _check_read(path: str, entry: Entry, size: int, crc: int) -> None:
    if size != entry.size:
        raise CorruptCheckpointError(f"{path}: '{entry.key}' is truncated.")
    if wire.unmask_crc(entry.crc32c) != crc:
        raise CorruptCheckpointError(
            f"{path}: the bytes of '{entry.key}' fail their CRC32C check; the data file is damaged."
        )


def read_entry_bytes(b: Bundle, entry: Entry, check_crc: bool = True) -> bytes:
    """Reads the stored bytes of one (unpartitioned) entry, checking its CRC32C."""
    path = b.data_path(entry.shard_id)
    data = fileio.read_range(path, entry.offset, entry.size)
    if check_crc and b.checksummed:
        _check_read(path, entry, len(data), tensor_crc32c(entry, data))
    elif len(data) != entry.size:
        raise CorruptCheckpointError(f"{path}: '{entry.key}' is truncated.")
    return data


def _numpy_dtype(entry: Entry, where: str):
    dtype = dtypes.numpy_dtype(entry.dtype)
    if dtype is None:
        raise CorruptCheckpointError(f"{where}'{entry.key}': cannot decode dtype {entry.dtype_name}.")
    return dtype


def _bad_shape(entry: Entry, where: str, e: ValueError) -> CorruptCheckpointError:
    # numpy refuses the declared shape (rank > 32, too many elements).
    return CorruptCheckpointError(f"{where}'{entry.key}': shape {list(entry.shape)} cannot be decoded: {e}.")


def decode_tensor(entry: Entry, data: bytes, where: str = ""):
    """Decodes stored bytes into a numpy array (strings become an object array of bytes)."""
    import numpy as np

    n = entry.num_elements
    if entry.dtype == dtypes.DT_STRING:
        try:
            lengths, pos = [], 0
            for _ in range(n):
                length, pos = wire.read_varint(data, pos)
                lengths.append(length)
            pos += 4  # masked CRC32C of the lengths
            values = []
            for length in lengths:
                if pos + length > len(data):
                    raise WireError("string runs past its tensor")
                values.append(bytes(data[pos : pos + length]))
                pos += length
        except WireError as e:
            raise CorruptCheckpointError(f"{where}'{entry.key}': {e}.") from None
        arr = np.empty(n, dtype=object)
        arr[:] = values
        return arr.reshape(entry.shape)
    dtype = _numpy_dtype(entry, where)
    try:
        return np.frombuffer(data, dtype=dtype, count=n).reshape(entry.shape)
    except ValueError as e:
        raise _bad_shape(entry, where, e) from None


def check_tensor(b: Bundle, entry: Entry, *, stream_threshold: int = STREAM_THRESHOLD) -> None:
    """Reads one stored tensor and checks it as `read_tensor` would, keeping nothing.

    Numeric tensors over `stream_threshold` bytes are checksummed chunk by
    chunk, so memory stays bounded whatever the size.

    Raises:
      CorruptCheckpointError: the bytes are truncated, fail their CRC32C or do not decode.
      OSError: the data shard cannot be read.
    """
    import numpy as np

    path = b.data_path(entry.shard_id)
    if entry.dtype == dtypes.DT_STRING or entry.size <= stream_threshold:
        decode_tensor(entry, read_entry_bytes(b, entry), f"{path}: ")
        return
    crc = size = 0
    for chunk in fileio.iter_range(path, entry.offset, entry.size):
        crc = wire.crc32c(chunk, crc) if b.checksummed else 0
        size += len(chunk)
    if b.checksummed:
        _check_read(path, entry, size, crc)
    elif size != entry.size:
        raise CorruptCheckpointError(f"{path}: '{entry.key}' is truncated.")
    dtype = _numpy_dtype(entry, f"{path}: ")
    try:  # The reshape of `decode_tensor`, as a view that allocates nothing.
        np.broadcast_to(np.zeros((), dtype=dtype), entry.shape)
    except ValueError as e:
        raise _bad_shape(entry, f"{path}: ", e) from None


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
        for c in boxes[i + 1 :]:
            if all(lo1 < hi2 and lo2 < hi1 for (lo1, hi1), (lo2, hi2) in zip(a, c)):
                problems.append(f"slices {a} and {c} of '{entry.key}' overlap")
    covered = 0
    for box in boxes:
        n = 1
        for lo, hi in box:
            n *= hi - lo
        covered += n
    if not problems and covered != entry.num_elements:
        problems.append(f"the slices of '{entry.key}' cover {covered} of its {entry.num_elements} elements")
    return problems


def read_tensor(b: Bundle, key: str):
    """Returns the value of `key` as a numpy array, assembling partitioned variables."""
    entry = b.entries[key]
    if not entry.slices:
        return decode_tensor(entry, read_entry_bytes(b, entry), f"{b.prefix}: ")
    parts = [p for p in b.slice_entries if p.name == key]
    problems = slice_problems(entry, parts)
    if problems:
        raise CorruptCheckpointError(f"{bundle.index_path(b.prefix)}: {problems[0]}.")
    return join_parts(b, entry, [(p.extents, p.entry) for p in parts])


def join_parts(b: Bundle, whole: Entry, parts: Sequence[tuple[tuple, Entry]]):
    """The whole of a partitioned variable (`whole`: its dtype and shape) from its `(extents, part entry)`s.

    Raises:
      CorruptCheckpointError: a part's bytes are truncated, fail their CRC32C or do not decode.
    """
    import numpy as np

    where = f"{b.prefix}: "
    # Decode every part before allocating the whole: the parts' bytes bound the
    # allocation, never the declared shape alone.
    values = [decode_tensor(part, read_entry_bytes(b, part), where) for _, part in parts]
    try:
        full = np.empty(whole.shape, dtype=dtypes.numpy_dtype(whole.dtype) or np.dtype(object))
    except ValueError as e:
        raise _bad_shape(whole, where, e) from None
    for (extents, _), value in zip(parts, values):
        index = tuple(
            slice(None) if length == -1 else slice(start, start + length) for start, length in extents
        )
        full[index] = value
    return full


def new_entry(dtype: int, shape: Sequence[int], shard_id: int, offset: int, data: bytes) -> bytes:
    """Serializes a `BundleEntryProto` for `data` written at `offset` of `shard_id`."""
    # Strings are checksummed as TF does (lengths as uint32), not as stored.
    crc = tensor_crc32c(Entry("", dtype, tuple(shape)), data)
    return entry_bytes(dtype, shape, shard_id, offset, len(data), crc)


def entry_bytes(dtype: int, shape: Sequence[int], shard_id: int, offset: int, size: int, crc: int) -> bytes:
    """Serializes a `BundleEntryProto` of `size` bytes at `offset` of `shard_id` whose (unmasked) CRC32C is `crc`."""
    shape_proto = b"".join(
        wire.field_bytes(bundle.SHAPE_DIM, wire.field_varint(bundle.DIM_SIZE, d)) for d in shape
    )
    out = wire.field_varint(bundle.ENTRY_DTYPE, dtype) + wire.field_bytes(bundle.ENTRY_SHAPE, shape_proto)
    if shard_id:
        out += wire.field_varint(bundle.ENTRY_SHARD_ID, shard_id)
    if offset:
        out += wire.field_varint(bundle.ENTRY_OFFSET, offset)
    if size:
        out += wire.field_varint(bundle.ENTRY_SIZE, size)
    out += wire.field_fixed32(bundle.ENTRY_CRC32C, wire.mask_crc(crc))
    return out


def encode_string_tensor(values: Sequence[bytes]) -> bytes:
    """Encodes a string tensor as TensorBundle stores it."""
    lengths = b"".join(wire.encode_varint(len(v)) for v in values)
    checksum = 0
    for v in values:
        checksum = wire.crc32c(struct.pack("<I", len(v) & 0xFFFFFFFF), checksum)
    return lengths + struct.pack("<I", wire.mask_crc(checksum)) + b"".join(values)


def sliced_entry(key: str, dtype: int, shape: Sequence[int], slices: Sequence) -> Entry:
    """The entry of a partitioned variable as TF writes it: dtype, shape, slices (`(start, length)` per
    dimension), no data."""
    shape_proto = b"".join(
        wire.field_bytes(bundle.SHAPE_DIM, wire.field_varint(bundle.DIM_SIZE, d) if d else b"") for d in shape
    )
    raw = wire.field_varint(bundle.ENTRY_DTYPE, dtype) + wire.field_bytes(bundle.ENTRY_SHAPE, shape_proto)
    for extents in slices:
        proto = b""
        for start, length in extents:
            ext = wire.field_varint(bundle.EXTENT_START, start) if start else b""
            if length != -1:  # the full extent has no length
                ext += wire.field_varint(bundle.EXTENT_LENGTH, length)
            proto += wire.field_bytes(bundle.SLICE_EXTENT, ext)
        raw += wire.field_bytes(bundle.ENTRY_SLICES, proto)
    return bundle.parse_entry(key, raw)
