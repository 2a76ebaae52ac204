"""The LevelDB-format table a checkpoint's `.index` is, read and written as TF does.

A table is data blocks of prefix-compressed `(key, value)` rows with restart
points, an (empty) meta-index block, an index block mapping each data block's
last key (or a shorter separator) to its handle, and a footer of two handles
and a magic number. Every block carries a type byte (0, uncompressed: TF
never compresses an index) and a masked CRC32C. The reader checks every CRC,
offset and size before using it.
"""

from __future__ import annotations

import struct
from typing import Iterable, Optional

from est_ckpt.errors import TableError, WireError
from est_ckpt.format import wire

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
# Both handles, padded: the magic number follows at this offset of the footer.
_FOOTER_HANDLES = 40
BLOCK_TRAILER_SIZE = 5
_UNCOMPRESSED = 0
BLOCK_SIZE = 262144
RESTART_INTERVAL = 16

Rows = list[tuple[bytes, bytes]]


def parse_handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    """Decodes a block handle at `pos`; returns `(offset, size, new_pos)`."""
    offset, pos = wire.read_varint(buf, pos)
    size, pos = wire.read_varint(buf, pos)
    return offset, size, pos


def read_block(data: bytes, offset: int, size: int, what: str) -> bytes:
    """Returns the contents of the block at `offset`, checking its place, type and CRC32C."""
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise TableError(f"{what} at offset {offset} size {size} runs past the end of the file")
    block = data[offset:end]
    ctype = data[end]
    (stored,) = struct.unpack_from("<I", data, end + 1)
    actual = wire.crc32c(data[offset : end + 1])
    if wire.unmask_crc(stored) != actual:
        raise TableError(f"{what} at offset {offset} fails its CRC32C check")
    if ctype != _UNCOMPRESSED:
        raise TableError(f"{what} at offset {offset} is compressed (type {ctype}); TensorBundle never is")
    return block


def block_entries(block: bytes, what: str) -> Rows:
    """Decodes the rows of one block, checking restarts, bounds and key order."""
    if len(block) < 4:
        raise TableError(f"{what} is shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 and len(block) > 4 or limit < 0:
        raise TableError(f"{what} declares {num_restarts} restart points that do not fit")
    out = []
    pos, prev = 0, b""
    while pos < limit:
        shared, pos = wire.read_varint(block, pos, limit)
        non_shared, pos = wire.read_varint(block, pos, limit)
        value_len, pos = wire.read_varint(block, pos, limit)
        if shared > len(prev) or pos + non_shared + value_len > limit:
            raise TableError(f"{what} has an entry that runs past its end")
        key = prev[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        value = block[pos : pos + value_len]
        pos += value_len
        if out and key <= prev:
            raise TableError(f"{what} keys are out of order")
        out.append((key, value))
        prev = key
    return out


def read_table(data: bytes, *, problems: Optional[list[str]] = None) -> Optional[Rows]:
    """Decodes a whole table held in `data`, checking every block.

    Args:
      data: the bytes of the table.
      problems: None to raise on the first problem. A list to collect them
        instead: a damaged or misplaced data block is recorded (one message
        each, not naming the file) and skipped, and the rows of every other
        block are returned; None is returned when the footer or the index
        block is unusable.

    Raises:
      TableError: the table is malformed (only without `problems`).
    """
    if len(data) < FOOTER_SIZE:
        return _fail(problems, f"is {len(data)} bytes, shorter than a table footer ({FOOTER_SIZE})")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_HANDLES)
    if magic != TABLE_MAGIC:
        return _fail(problems, "no table magic number at its end: not a checkpoint index")
    try:
        _, _, pos = parse_handle(footer, 0)
        offset, size, _ = parse_handle(footer, pos)
        handles = block_entries(read_block(data, offset, size, "index block"), "index block")
    except (TableError, WireError) as e:
        return _fail(problems, str(e))
    rows: Rows = []
    for number, (_, handle) in enumerate(handles):
        what = f"data block {number}"
        try:
            offset, size, _ = parse_handle(handle, 0)
            block = block_entries(read_block(data, offset, size, what), what)
            if rows and block and block[0][0] <= rows[-1][0]:
                raise TableError(f"{what} is out of key order")
        except (TableError, WireError) as e:
            if problems is None:
                raise
            problems.append(f"{e}; its entries are lost")
            continue
        rows.extend(block)
    return rows


def _fail(problems: Optional[list[str]], message: str) -> None:
    if problems is None:
        raise TableError(message)
    problems.append(message)


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
    trailer = bytes([_UNCOMPRESSED])
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
    footer = (meta_handle + index_handle).ljust(_FOOTER_HANDLES, b"\x00") + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out + footer)
