"""Byte-level codecs shared by the bundle and object-graph readers and writers.

Protocol-buffer wire format (just what TensorBundle and the object graph use),
CRC32C with LevelDB's masking, and TensorFlow's `OrderedCode` for the keys of
tensor slices. Every decoder checks bounds and raises `errors.WireError`; callers
turn that into an error naming the file.
"""

from __future__ import annotations

import struct
from typing import Iterator

from est_ckpt.errors import WireError

# -- CRC32C -------------------------------------------------------------------

try:
    import google_crc32c as _gcrc

    def crc32c(data: bytes, crc: int = 0) -> int:
        """CRC32C of `data`, extending `crc`."""
        return _gcrc.extend(crc, data) if crc else _gcrc.value(data)

except ImportError:  # pragma: no cover - the C implementation is a dependency.
    _TABLE = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def crc32c(data: bytes, crc: int = 0) -> int:
        """CRC32C of `data`, extending `crc`."""
        crc ^= 0xFFFFFFFF
        for b in data:
            crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF


_MASK_DELTA = 0xA282EAD8


def mask_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# -- varints and protobuf ------------------------------------------------------

# Wire types: the low 3 bits of a field's tag.
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


def tag(field: int, wire_type: int) -> int:
    """The tag of a field: its number and wire type, as one varint value."""
    return (field << 3) | wire_type


def read_varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """Decodes a varint at `pos`; returns `(value, new_pos)`."""
    end = len(buf) if end is None else end
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """Yields `(field_number, wire_type, value)` of a serialized message.

    Varints and fixed-width fields come as ints, length-delimited ones as bytes.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end)
        elif wire == FIXED64:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            (value,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
        elif wire == LENGTH_DELIMITED:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise WireError(f"length-delimited field {field} runs past the end")
            value = bytes(buf[pos : pos + length])
            pos += length
        elif wire == FIXED32:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            (value,) = struct.unpack_from("<I", buf, pos)
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        yield field, wire, value


def to_signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def field_varint(field: int, value: int) -> bytes:
    return encode_varint(tag(field, VARINT)) + encode_varint(value)


def field_bytes(field: int, value: bytes) -> bytes:
    return encode_varint(tag(field, LENGTH_DELIMITED)) + encode_varint(len(value)) + value


def field_fixed32(field: int, value: int) -> bytes:
    return encode_varint(tag(field, FIXED32)) + struct.pack("<I", value)


def expect_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise WireError(f"{what} has the wrong wire type")
    return value


def expect_int(value: object, what: str) -> int:
    if not isinstance(value, int):
        raise WireError(f"{what} has the wrong wire type")
    return value


def decode_str(value: object, what: str) -> str:
    try:
        return expect_bytes(value, what).decode("utf-8")
    except UnicodeDecodeError as e:
        raise WireError(f"{what} is not UTF-8") from e


# -- OrderedCode (tensorflow/core/lib/strings/ordered_code.cc) ------------------


def oc_num_increasing(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(raw)]) + raw


def oc_string(value: bytes) -> bytes:
    return _oc_escape(value) + b"\x00\x01"


def _oc_escape(value: bytes) -> bytes:
    out = bytearray()
    for b in value:
        if b == 0:
            out += b"\x00\xff"
        elif b == 0xFF:
            out += b"\xff\x00"
        else:
            out.append(b)
    return bytes(out)


_HEADER_BITS = [
    (0, 0), (0x80, 0), (0xC0, 0), (0xE0, 0), (0xF0, 0), (0xF8, 0),
    (0xFC, 0), (0xFE, 0), (0xFF, 0), (0xFF, 0x80), (0xFF, 0xC0),
]  # fmt: skip


def oc_signed_num_increasing(value: int) -> bytes:
    x = ~value if value < 0 else value
    if x < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = min(x.bit_length() // 7 + 1, 10)
    buf = bytearray((value & ((1 << 80) - 1)).to_bytes(10, "big"))
    if value < 0:
        buf[0] = buf[1] = 0xFF
    begin = 10 - length
    buf[begin] ^= _HEADER_BITS[length][0]
    buf[begin + 1] ^= _HEADER_BITS[length][1]
    return bytes(buf[begin:])


def read_oc_num_increasing(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise WireError("truncated ordered number")
    n = buf[pos]
    if n > 8 or pos + 1 + n > len(buf):
        raise WireError("bad ordered number")
    return int.from_bytes(buf[pos + 1 : pos + 1 + n], "big"), pos + 1 + n


def read_oc_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    n = len(buf)
    while pos < n:
        b = buf[pos]
        if b == 0:
            if pos + 1 >= n:
                break
            nxt = buf[pos + 1]
            if nxt == 1:
                return bytes(out), pos + 2
            if nxt != 0xFF:
                raise WireError("bad escape in ordered string")
            out.append(0)
            pos += 2
        elif b == 0xFF:
            if pos + 1 >= n or buf[pos + 1] != 0:
                raise WireError("bad escape in ordered string")
            out.append(0xFF)
            pos += 2
        else:
            out.append(b)
            pos += 1
    raise WireError("unterminated ordered string")


def read_oc_signed_num_increasing(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise WireError("truncated ordered signed number")
    # The length is the run of leading bits that differ from the sign bit.
    flip = 0x00 if buf[pos] & 0x80 else 0xFF
    b0 = buf[pos] ^ flip
    if b0 != 0xFF:
        length = 8 - (b0 ^ 0xFF).bit_length()
    else:
        if pos + 1 >= len(buf):
            raise WireError("truncated ordered signed number")
        length = 8 + 8 - ((buf[pos + 1] ^ flip) ^ 0xFF).bit_length()
    if not 1 <= length <= 10 or pos + length > len(buf):
        raise WireError("bad ordered signed number")
    raw = bytearray(buf[pos : pos + length])
    raw[0] ^= _HEADER_BITS[length][0]
    if length > 1:
        raw[1] ^= _HEADER_BITS[length][1]
    return int.from_bytes(raw, "big", signed=True), pos + length
