"""Fuzz: hostile mutations of real checkpoints get the right answer or a typed error, never worse.

Seeded and bounded. `EST_CKPT_FUZZ_MUTANTS` sets how many mutants to try (the
systematic ones first: truncation at every structural boundary of each index,
zeroed, emptied and extended files, dropped and swapped shards, CRC-valid
hostile entries, malformed object graphs, bad state files; then random bit
flips and truncations, CRC-valid random entry fields). `EST_CKPT_FUZZ_SEED`
picks the random ones; `EST_CKPT_FUZZ_BASES` (comma-separated fixture names)
the checkpoints to mutate.

Every mutant is run in a worker subprocess whose address space is capped (a
declared size that makes us allocate fails there instead of swapping) and
whose every call is bounded by `signal.alarm`; the parent kills a worker that
stops answering. For each mutant the worker calls `resolve_checkpoint`,
`read_checkpoint`, `CheckpointInfo.read_tensor` for every key,
`verify_checkpoint`, `convert_checkpoint` and `diff_checkpoints` (when
`est_ckpt/tools/convert.py` exists), `map_checkpoints` both ways (when
`est_ckpt/mapping/__init__.py` exists) and the CLI (`inspect --json`, `inspect --values`,
`verify`, `map`) in process; a sample also runs the CLI as a subprocess. The
table of outcomes per entry point is printed to stderr at the end.

Oracle, per mutant:
  * every call returns or raises `est_ckpt.errors.EstCkptError`, within 10 s,
    in a worker capped at 1 GiB of address space and 600 MiB resident;
  * what reads must equal what the pristine checkpoint of the same name holds
    (read without TensorFlow, and cross-checked here against TensorFlow);
  * `verify_checkpoint` is ok exactly when nothing else failed to read, and is
    never ok for a mutant built to be invalid;
  * the CLI exits 0 or 1 (one stderr line, no traceback) in step with the library;
  * a failed conversion leaves nothing at its destination, a successful one of
    a sound mutant verifies and equals its source.
"""

from __future__ import annotations

import collections
import importlib
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import traceback

import pytest

from tests.fixtures import VV

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from est_ckpt.format import bundle, checkpoint, keys, reader, table, tensors, wire  # noqa: E402
from tests.cli import outcome, run_cli_in_process  # noqa: E402

pytestmark = pytest.mark.estimator

MUTANTS = int(os.environ.get("EST_CKPT_FUZZ_MUTANTS", "900"))
SEED = int(os.environ.get("EST_CKPT_FUZZ_SEED", "20261126"))
CALL_TIMEOUT = 30  # seconds per library call in the worker: a hang detector, far above any real call
MUTANT_TIMEOUT = 300  # seconds without an answer before the parent kills the worker
MEMORY_LIMIT = 1 << 30  # address space of the worker, bytes
SUBPROCESS_SAMPLES = 8  # mutants whose CLI also runs as a real subprocess

# Fixtures to mutate: two formats, two shards plus a state file with two
# prefixes, partitioned slices, strings and many dtypes, slot variables, and
# `multiblock`, an index of several data blocks (see the `bases` fixture).
BASES = tuple(
    os.environ.get(
        "EST_CKPT_FUZZ_BASES", "tf1,estimator_tf2,partitioned,dtypes_tf2,adam_tf2,multiblock"
    ).split(",")
)


# -- bases: pristine copies with a relative state file ----------------------------------------


def _prefixes_in(directory: str) -> list[str]:
    names = sorted(n[: -len(".index")] for n in os.listdir(directory) if n.endswith(".index"))
    return [os.path.join(directory, n) for n in names]


def _write_state(directory: str, names: list[str]) -> None:
    lines = [f'model_checkpoint_path: "{names[-1]}"'] + [f'all_model_checkpoint_paths: "{n}"' for n in names]
    with open(os.path.join(directory, "checkpoint"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _make_base(source: str, directory: str) -> str:
    """Copies the checkpoint files of a fixture into `directory`; returns the base dir."""
    os.makedirs(directory)
    src_dir = source if os.path.isdir(source) else os.path.dirname(source)
    wanted = _prefixes_in(src_dir) if os.path.isdir(source) else [source]
    for prefix in wanted:
        stem = os.path.basename(prefix)
        for name in os.listdir(src_dir):
            if name == stem + ".index" or name.startswith(stem + ".data-"):
                shutil.copyfile(os.path.join(src_dir, name), os.path.join(directory, name))
    # Estimator state files hold absolute paths into the fixture; ours are relative.
    _write_state(directory, [os.path.basename(p) for p in wanted])
    return directory


# -- structure of an index, for truncation at every boundary ------------------------------------


def _boundaries(data: bytes) -> list[int]:
    """Every structural offset of a table: blocks, trailers, restart arrays, entries, footer."""
    size = len(data)
    footer = data[-table.FOOTER_SIZE :]
    _, _, pos = table.parse_handle(footer, 0)
    index_off, index_size, _ = table.parse_handle(footer, pos)
    out = {0, size - table.FOOTER_SIZE, size - 8, size - 1, index_off, index_off + index_size}
    block = data[index_off : index_off + index_size]
    blocks = [(index_off, index_size)]
    for _, handle in table.block_entries(block, "index"):
        off, length, _ = table.parse_handle(handle, 0)
        blocks.append((off, length))
    for off, length in blocks:
        out |= {off, off + length, off + length + 1, off + length + table.BLOCK_TRAILER_SIZE}
        (num_restarts,) = struct.unpack_from("<I", data, off + length - 4)
        limit = length - 4 - 4 * num_restarts
        out |= {off + limit, off + length - 4}
        pos = 0
        while pos < limit:
            out.add(off + pos)
            shared, pos = wire.read_varint(data, off + pos)
            non_shared, pos = wire.read_varint(data, pos)
            value_len, pos = wire.read_varint(data, pos)
            pos = pos + non_shared + value_len - off
    return sorted(b for b in out if 0 <= b < size)


# -- crafting CRC-valid hostile indexes -----------------------------------------------------------


def _entry_proto(dtype, shape, shard_id=0, offset=0, size=0, crc=0, slices=()) -> bytes:
    """A `BundleEntryProto` with any field values, however hostile."""
    shape_proto = b"".join(wire.field_bytes(2, wire.field_varint(1, d)) for d in shape)
    out = wire.field_varint(1, dtype) + wire.field_bytes(2, shape_proto)
    out += wire.field_varint(3, shard_id) + wire.field_varint(4, offset) + wire.field_varint(5, size)
    out += wire.field_fixed32(6, crc)
    for extents in slices:
        ext = b"".join(
            wire.field_bytes(1, wire.field_varint(1, s) + (wire.field_varint(2, n) if n != -1 else b""))
            for s, n in extents
        )
        out += wire.field_bytes(7, ext)
    return out


def _rows(prefix: str) -> list[tuple[bytes, bytes]]:
    with open(prefix + ".index", "rb") as f:
        return table.read_table(f.read())


def _write_rows(prefix: str, rows) -> None:
    header = dict(rows)[b""]
    with open(prefix + ".index", "wb") as f:
        f.write(bundle.build_index(header, [r for r in rows if r[0] != b""]))


def _replace_entry(prefix: str, key: bytes, proto: bytes) -> None:
    rows = [(k, proto if k == key else v) for k, v in _rows(prefix)]
    _write_rows(prefix, rows)


def _string_data(value: bytes) -> tuple[bytes, int]:
    data = tensors.encode_string_tensor([value])
    crc = tensors.tensor_crc32c(bundle.Entry("", 7, ()), data)
    return data, wire.mask_crc(crc)


def _set_object_graph(prefix: str, graph: bytes) -> None:
    """Stores `graph` as the object graph, appended to its shard, with valid CRCs."""
    b = reader.read_bundle(prefix)
    entry = b.entries[keys.OBJECT_GRAPH_KEY]
    path = b.data_path(entry.shard_id)
    data, crc = _string_data(graph)
    offset = os.path.getsize(path)
    with open(path, "ab") as f:
        f.write(data)
    proto = _entry_proto(7, (), entry.shard_id, offset, len(data), crc)
    _replace_entry(prefix, keys.OBJECT_GRAPH_KEY.encode(), proto)


def _graph_node(children=(), attributes=(), slots=()) -> bytes:
    body = b""
    for node_id, name in children:
        body += wire.field_bytes(1, wire.field_varint(1, node_id) + wire.field_bytes(2, name))
    for name, full_name, key in attributes:
        body += wire.field_bytes(
            2, wire.field_bytes(1, name) + wire.field_bytes(2, full_name) + wire.field_bytes(3, key)
        )
    for orig, slot_name, slot_node in slots:
        body += wire.field_bytes(
            3,
            wire.field_varint(1, orig) + wire.field_bytes(2, slot_name) + wire.field_varint(3, slot_node),
        )
    return wire.field_bytes(1, body)


# -- mutants ---------------------------------------------------------------------------------------


class Mutant:
    """One way to damage a copy of a base; `apply(directory)` edits the files in place.

    `expect` is what `verify_checkpoint` must say: `"invalid"` for mutants built
    to be unsound, `"sound"` for changes TF ignores too, `"any"` where it depends
    (a bit flip in footer padding changes nothing). `crafted` marks CRC-valid rewrites whose listing legitimately differs from
    the pristine one, so only unaffected tensor values are compared.
    """

    def __init__(self, base, kind, apply, *, expect="any", crafted=False, target="dir"):
        self.base, self.kind, self.apply = base, kind, apply
        self.expect, self.crafted, self.target = expect, crafted, target
        self.random = False


def _shards(prefix: str) -> list[str]:
    d, stem = os.path.dirname(prefix), os.path.basename(prefix)
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.startswith(stem + ".data-"))


def _truncate(path: str, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def _flip(path: str, rng: random.Random, flips: int) -> None:
    data = bytearray(open(path, "rb").read())
    if not data:
        return
    for _ in range(flips):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    open(path, "wb").write(bytes(data))


def _append(path: str, garbage: bytes) -> None:
    with open(path, "ab") as f:
        f.write(garbage)


def _zero(path: str, keep_length: bool) -> None:
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(b"\0" * size if keep_length else b"")


def _systematic(name: str, base: str) -> list[Mutant]:
    """Every boundary, file and field mutation of one base."""
    out = []
    latest = os.path.basename(_prefixes_in(base)[-1])

    def at(d):
        return os.path.join(d, latest)

    index_data = open(at(base) + ".index", "rb").read()
    for b in _boundaries(index_data):
        out.append(
            Mutant(
                name, f"truncate-index@{b}", lambda d, b=b: _truncate(at(d) + ".index", b), expect="invalid"
            )
        )
    shards = [os.path.basename(s) for s in _shards(at(base))]
    b0 = reader.read_bundle(at(base))
    for shard in shards:
        out.append(
            Mutant(
                name,
                f"drop-{shard[-16:]}",
                lambda d, s=shard: os.remove(os.path.join(d, s)),
                expect="invalid",
            )
        )
        out.append(
            Mutant(
                name,
                f"zero-{shard[-16:]}",
                lambda d, s=shard: _zero(os.path.join(d, s), True),
                expect="invalid",
            )
        )
        out.append(
            Mutant(
                name,
                f"empty-{shard[-16:]}",
                lambda d, s=shard: _zero(os.path.join(d, s), False),
                expect="invalid",
            )
        )
        out.append(
            Mutant(
                name,
                f"garbage-{shard[-16:]}",
                lambda d, s=shard: _append(os.path.join(d, s), b"\xde\xad" * 9),
                expect="sound",
            )
        )
    for entry in [*b0.entries.values(), *(p.entry for p in b0.slice_entries)]:
        if entry.slices or not entry.size:
            continue
        shard = os.path.basename(b0.data_path(entry.shard_id))
        for cut in (entry.offset, entry.offset + entry.size - 1):
            out.append(
                Mutant(
                    name,
                    f"truncate-data@{cut}",
                    lambda d, s=shard, c=cut: _truncate(os.path.join(d, s), c),
                    expect="invalid",
                )
            )
    if len(shards) > 1:

        def swap(d, a=shards[0], b=shards[1]):
            pa, pb = os.path.join(d, a), os.path.join(d, b)
            os.rename(pa, pa + ".x")
            os.rename(pb, pa)
            os.rename(pa + ".x", pb)

        out.append(Mutant(name, "swap-shards", swap, expect="invalid"))
    out.append(Mutant(name, "zero-index", lambda d: _zero(at(d) + ".index", True), expect="invalid"))
    out.append(Mutant(name, "empty-index", lambda d: _zero(at(d) + ".index", False), expect="invalid"))
    out.append(
        Mutant(name, "garbage-index", lambda d: _append(at(d) + ".index", b"garbage!"), expect="invalid")
    )
    out.append(Mutant(name, "drop-index", lambda d: os.remove(at(d) + ".index"), expect="invalid"))
    out.append(
        Mutant(
            name,
            "not-a-checkpoint",
            lambda d: open(at(d) + ".index", "wb").write(b"hello\n" * 20),
            expect="invalid",
        )
    )

    # CRC-valid indexes whose values are hostile.
    rows = _rows(at(base))
    plain = [(k, bundle.parse_entry(k.decode(), v)) for k, v in rows[1:] if k[:1] != b"\x00"]
    plain = [(k, e) for k, e in plain if not e.slices and e.size]
    k, e = plain[len(plain) // 2]
    shard_size = b0.shard_sizes[e.shard_id]
    n = e.num_elements
    hostile = {
        "size-2^47": dict(size=1 << 47),
        "size-2^63": dict(size=1 << 63),
        "size-2^64-1": dict(size=(1 << 64) - 1),
        "offset-2^62": dict(offset=1 << 62),
        "offset-2^64-1": dict(offset=(1 << 64) - 1),
        "offset-past-end": dict(offset=shard_size - 1),
        "shard-7": dict(shard_id=7),
        "shard-2^63": dict(shard_id=1 << 63),
        "shape-2^40x2^40": dict(shape=(1 << 40, 1 << 40)),
        "shape-2^62": dict(shape=(1 << 62,)),
        "shape-negative": dict(shape=((1 << 64) - 1,)),
        "shape-rank40": dict(shape=(1,) * 39 + (n,)),
        "shape-0x2^62": dict(shape=(0, 1 << 62), size=0, crc=wire.mask_crc(0)),
        "dtype-0": dict(dtype=0),
        "dtype-99": dict(dtype=99),
        "dtype-resource": dict(dtype=20),
        "dtype-string": dict(dtype=7),
        "crc-wrong": dict(crc=e.crc32c ^ 1),
    }
    for label, change in hostile.items():
        fields = dict(
            dtype=e.dtype, shape=e.shape, shard_id=e.shard_id, offset=e.offset, size=e.size, crc=e.crc32c
        )
        fields.update(change)
        proto = _entry_proto(**fields)
        out.append(
            Mutant(
                name,
                f"entry-{label}",
                lambda d, k=k, p=proto: _replace_entry(at(d), k, p),
                expect="invalid",
                crafted=True,
            )
        )
    for label, value in {
        "header-0-shards": wire.field_varint(1, 0),
        "header-2^20-shards": wire.field_varint(1, 1 << 20),
        "header-2^40-shards": wire.field_varint(1, 1 << 40),
        "header-big-endian": wire.field_varint(1, len(shards)) + wire.field_varint(2, 1),
        "header-bad-wire": wire.field_bytes(1, b"xx"),
    }.items():
        out.append(
            Mutant(
                name,
                label,
                lambda d, v=value: _write_rows(at(d), [(b"", v)] + _rows(at(d))[1:]),
                expect="invalid",
                crafted=True,
            )
        )
    out.append(
        Mutant(
            name,
            "entry-not-utf8-key",
            lambda d: _write_rows(at(d), _rows(at(d)) + [(b"\xff\xfe", rows[1][1])]),
            expect="invalid",
            crafted=True,
        )
    )
    out.append(
        Mutant(
            name,
            "entry-bad-proto",
            lambda d, k=k: _replace_entry(at(d), k, b"\x0a\xff\xff"),
            expect="invalid",
            crafted=True,
        )
    )
    if b0.slice_entries:
        out += _partition_mutants(name, at, rows)
    if keys.OBJECT_GRAPH_KEY in b0.entries:
        out += _graph_mutants(name, at)
    out += _state_mutants(name, base)
    return out


def _partition_mutants(name, at, rows) -> list[Mutant]:
    out = []
    owner_key, owner_raw = next(
        (k, v) for k, v in rows[1:] if k[:1] != b"\x00" and bundle.parse_entry("", v).slices
    )
    owner = bundle.parse_entry(owner_key.decode(), owner_raw)
    slice_rows = [(k, v) for k, v in rows[1:] if k[:1] == b"\x00"]
    first_key, first_raw = slice_rows[0]
    part = bundle.parse_entry("", first_raw)
    _, extents = bundle.parse_slice_key(first_key)

    def with_owner(**change):
        fields = dict(dtype=owner.dtype, shape=owner.shape, slices=owner.slices)
        fields.update(change)
        return _entry_proto(**fields)

    def with_part_key(new_extents, label):
        new_key = bundle.encode_slice_key(owner.key, new_extents)
        return Mutant(
            name,
            f"slice-{label}",
            lambda d: _write_rows(at(d), [(new_key if k == first_key else k, v) for k, v in _rows(at(d))]),
            expect="invalid",
            crafted=True,
        )

    changes = {
        "owner-shape-2^40": with_owner(shape=(1 << 40,) + owner.shape[1:]),
        "owner-shape-rank1": with_owner(shape=owner.shape[:1]),
        "owner-dtype-string": with_owner(dtype=7),
        "owner-no-slices": with_owner(slices=()),
        "owner-extra-slice": with_owner(slices=owner.slices + (((0, 1),) * len(owner.shape),)),
    }
    for label, proto in changes.items():
        out.append(
            Mutant(
                name,
                f"partition-{label}",
                lambda d, p=proto: _replace_entry(at(d), owner_key, p),
                expect="invalid",
                crafted=True,
            )
        )
    out.append(with_part_key([(extents[0][0] + 1 << 40, extents[0][1])] + list(extents[1:]), "outside"))
    out.append(with_part_key([(-5, 3)] + list(extents[1:]), "negative-start"))
    out.append(with_part_key(list(extents) + [(0, -1)], "extra-dim"))
    bad_name = wire.oc_num_increasing(0) + wire.oc_string(b"\xff\xfe") + wire.oc_num_increasing(0)
    out.append(
        Mutant(
            name,
            "slice-key-not-utf8",
            lambda d: _write_rows(at(d), [(bad_name if k == first_key else k, v) for k, v in _rows(at(d))]),
            expect="invalid",
            crafted=True,
        )
    )
    out.append(
        Mutant(
            name,
            "slice-dropped",
            lambda d: _write_rows(at(d), [(k, v) for k, v in _rows(at(d)) if k != first_key]),
            expect="invalid",
            crafted=True,
        )
    )
    grown = _entry_proto(
        part.dtype, (1 << 40,) + part.shape[1:], part.shard_id, part.offset, part.size, part.crc32c
    )
    out.append(
        Mutant(
            name,
            "slice-shape-2^40",
            lambda d: _replace_entry(at(d), first_key, grown),
            expect="invalid",
            crafted=True,
        )
    )
    return out


def _graph_mutants(name, at) -> list[Mutant]:
    good_leaf = _graph_node(attributes=[(b"VARIABLE_VALUE", b"x", b"x" + VV.encode())])
    graphs = {
        "truncated": (_graph_node(children=[(1, b"x")]) + good_leaf)[:-7],
        "child-out-of-range": _graph_node(children=[(10**6, b"x")]),
        "node-wrong-wire-type": wire.field_varint(1, 5),
        "name-not-utf8": _graph_node(children=[(1, b"\xff\xfe")]) + good_leaf,
        "missing-checkpoint-key": _graph_node(children=[(1, b"x")]) + good_leaf,
        "slot-out-of-range": _graph_node(slots=[(0, b"m", 99)]),
        "length-2^62": wire.encode_varint((1 << 3) | 2) + wire.encode_varint(1 << 62),
        "wire-type-7": b"\x0f",
    }
    out = [
        Mutant(
            name, f"graph-{label}", lambda d, g=g: _set_object_graph(at(d), g), expect="invalid", crafted=True
        )
        for label, g in graphs.items()
    ]
    # Decodable, just odd: a cycle back to the root and a self-slot.
    odd = _graph_node(children=[(1, b"a")]) + _graph_node(children=[(0, b"back")], slots=[(1, b"m", 1)])
    out.append(Mutant(name, "graph-cycle", lambda d: _set_object_graph(at(d), odd), crafted=True))
    return out


def _state_mutants(name, base) -> list[Mutant]:
    def state(text):
        def apply(d):
            with open(os.path.join(d, "checkpoint"), "wb") as f:
                f.write(text)

        return apply

    cases = {
        "state-nowhere": b'model_checkpoint_path: "nowhere-123"\n',
        "state-absolute-nowhere": b'model_checkpoint_path: "/nonexistent/dir/model.ckpt-9"\n',
        "state-tuple": b'model_checkpoint_path: "a", "b"\n',
        "state-garbage": bytes(range(256)),
        "state-empty": b"",
        "state-self": b'model_checkpoint_path: "."\n',
        "state-nul": b'model_checkpoint_path: "a\\x00b"\n',
    }
    out = [Mutant(name, label, state(text)) for label, text in cases.items()]
    older = _prefixes_in(base)[0]
    out.append(
        Mutant(
            name,
            "state-older",
            state(f'model_checkpoint_path: "{os.path.basename(older)}"\n'.encode()),
            expect="sound",
        )
    )
    return out


_INTERESTING = (0, 1, 3, 4, 7, 255, 1 << 31, (1 << 32) - 1, 1 << 40, 1 << 62, (1 << 63) - 1, (1 << 64) - 1)


def _random_entry_mutant(name: str, base: str, latest: str, rng: random.Random, target: str) -> Mutant:
    """One field of one entry set to an interesting value, CRCs kept valid."""
    rows = _rows(os.path.join(base, latest))
    row = rng.randrange(1, len(rows))
    key, value = rows[row]
    e = bundle.parse_entry("", value)
    fields = dict(
        dtype=e.dtype,
        shape=e.shape,
        shard_id=e.shard_id,
        offset=e.offset,
        size=e.size,
        crc=e.crc32c,
        slices=e.slices,
    )
    field = rng.choice(["dtype", "shape", "shard_id", "offset", "size", "crc", "slices"])
    if field == "shape":
        fields["shape"] = tuple(rng.choice(_INTERESTING) for _ in range(rng.randint(0, 3)))
    elif field == "slices":
        fields["slices"] = (
            tuple((rng.choice(_INTERESTING[:6]), rng.choice((-1, *_INTERESTING[:6]))) for _ in e.shape),
        )
    elif field == "crc":
        fields["crc"] = rng.randrange(1 << 32)
    else:
        fields[field] = rng.choice(_INTERESTING)
    proto = _entry_proto(**fields)
    return Mutant(
        name,
        f"entry-random-{field}",
        lambda d: _replace_entry(os.path.join(d, latest), key, proto),
        crafted=True,
        target=target,
    )


def _random_mutant(name: str, base: str, rng: random.Random) -> Mutant:
    latest = os.path.basename(_prefixes_in(base)[-1])
    files = sorted(os.listdir(base))
    choice = rng.randrange(5)
    target = rng.choice(["dir", "prefix", "index"])
    if choice == 4:
        return _random_entry_mutant(name, base, latest, rng, target)
    if choice == 0:
        seed, flips = rng.randrange(1 << 30), rng.randint(1, 3)
        return Mutant(
            name,
            "bitflip-index",
            lambda d: _flip(os.path.join(d, latest + ".index"), random.Random(seed), flips),
            target=target,
        )
    if choice == 1:
        f = rng.choice([n for n in files if n.startswith(latest + ".data-")])
        seed = rng.randrange(1 << 30)
        return Mutant(
            name,
            "bitflip-data",
            lambda d: _flip(os.path.join(d, f), random.Random(seed), 1),
            expect="invalid",
            target=target,
        )
    if choice == 2:
        f = rng.choice(files)
        cut = rng.randrange(max(os.path.getsize(os.path.join(base, f)), 1))
        return Mutant(
            name,
            f"truncate-random-{f.split('.')[-1][:5]}",
            lambda d: _truncate(os.path.join(d, f), cut),
            target=target,
        )
    seed = rng.randrange(1 << 30)
    return Mutant(
        name,
        "bitflip-state",
        lambda d: _flip(os.path.join(d, "checkpoint"), random.Random(seed), 2),
        target=target,
    )


def _plan(bases: dict[str, str], count: int, seed: int) -> list[Mutant]:
    rng = random.Random(seed)
    systematic = [m for name, base in bases.items() for m in _systematic(name, base)]
    if count <= len(systematic):
        return rng.sample(systematic, count)
    names = sorted(bases)
    randoms = []
    for _ in range(count - len(systematic)):
        name = rng.choice(names)
        randoms.append(_random_mutant(name, bases[name], rng))
    for m in randoms:
        m.random = True
    return systematic + randoms


# -- the worker ---------------------------------------------------------------------------------------


class _Timeout(BaseException):
    """A call ran past CALL_TIMEOUT (a BaseException, so library code cannot swallow it)."""


def _on_alarm(signum, frame):
    raise _Timeout()


def _outcome(fn, *args):
    """Runs `fn(*args)` bounded in time; returns `(label, value, exception)`."""
    from est_ckpt.errors import EstCkptError

    signal.alarm(CALL_TIMEOUT)
    try:
        return "ok", fn(*args), None
    except _Timeout:
        return "BAD hang", None, None
    except EstCkptError as e:
        return type(e).__name__, None, e
    except BaseException as e:  # noqa: BLE001 - anything else is the bug being hunted.
        return (
            f"BAD {type(e).__name__}",
            None,
            "".join(traceback.format_exception(type(e), e, e.__traceback__)),
        )
    finally:
        signal.alarm(0)


def _same_value(a, b) -> bool:
    import numpy as np

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype == object:
        return list(a.reshape(-1)) == list(b.reshape(-1))
    return a.tobytes() == b.tobytes() or bool(np.array_equal(a, b, equal_nan=True))


def _check_cli_result(what, code, out, err, expect_ok, problems):
    if "Traceback" in err or "Traceback" in out:
        problems.append(f"{what}: printed a traceback: {err[-500:]}")
    if code not in (0, 1):
        problems.append(f"{what}: exit code {code!r}: {err[-300:]}")
    elif (code == 0) != expect_ok:
        problems.append(
            f"{what}: exit code {code} but the library call {'succeeded' if expect_ok else 'failed'}"
        )
    if (
        code == 1
        and what.startswith("inspect")
        and (len(err.splitlines()) != 1 or not err.startswith("est-ckpt: error: "))
    ):
        problems.append(f"{what}: stderr is not one error line: {err!r}")


class _Truth:
    """What the pristine checkpoints hold, read once per prefix."""

    def __init__(self):
        self.cache = {}

    def get(self, pristine_prefix):
        if pristine_prefix not in self.cache:
            if os.path.exists(pristine_prefix + ".index"):
                info = checkpoint.read_checkpoint(pristine_prefix)
                listing = {k: (t.dtype, t.shape, t.name, t.slices) for k, t in info.tensors.items()}
                values = {k: info.read_tensor(k) for k in info.tensors}
                self.cache[pristine_prefix] = (listing, values)
            else:
                self.cache[pristine_prefix] = None
        return self.cache[pristine_prefix]


def _comparable(job: dict, key: str, listing: dict, expected: dict) -> bool:
    """Whether `key` must read as in the pristine checkpoint (crafted mutants change some keys)."""
    if not job["crafted"]:
        return True
    return listing.get(key) == expected.get(key) and not job["kind"].startswith("graph-")


def _run_mutant(job: dict, truth: _Truth) -> dict:
    """Calls every entry point on one mutant; returns outcomes and oracle violations."""
    from est_ckpt import read_checkpoint, resolve_checkpoint, verify_checkpoint
    from est_ckpt.errors import CheckpointNotFoundError

    target, pristine, mdir = job["target"], job["pristine"], job["dir"]
    outcomes, problems = {}, []
    values_labels = collections.Counter()
    read_failed = False

    def record(entry_point, result):
        label = result[0]
        outcomes[entry_point] = label
        if label.startswith("BAD"):
            problems.append(f"{entry_point}: {label}: {result[2] or ''}"[:2000])
        return result

    label, prefix, _ = record("resolve_checkpoint", _outcome(resolve_checkpoint, target))
    label, info, error = record("read_checkpoint", _outcome(read_checkpoint, target))
    nothing_there = isinstance(error, CheckpointNotFoundError) and label == outcomes["resolve_checkpoint"]
    if label != "ok":
        read_failed = True
    else:
        expected = truth.get(os.path.join(pristine, os.path.basename(info.prefix)))
        if os.path.dirname(info.prefix) != mdir.rstrip("/"):
            problems.append(f"read_checkpoint resolved outside the mutant: {info.prefix}")
            expected = None
        listing = {k: (t.dtype, t.shape, t.name, t.slices) for k, t in info.tensors.items()}
        if expected is not None and not job["crafted"] and listing != expected[0]:
            problems.append(
                f"read_checkpoint: wrong listing: {sorted(set(listing.items()) ^ set(expected[0].items()))[:4]}"
            )
        tensor_labels, values_labels = collections.Counter(), collections.Counter()
        for key in list(info.tensors)[:60]:
            label, value, error = _outcome(info.read_tensor, key)
            tensor_labels[label] += 1
            if key != keys.OBJECT_GRAPH_KEY:  # `inspect --values` shows every value but the graph's.
                values_labels[label] += 1
            if label.startswith("BAD"):
                problems.append(f"read_tensor({key!r}): {label}: {error}"[:2000])
            elif label != "ok":
                read_failed = True
            elif expected is not None and key in expected[1] and _comparable(job, key, listing, expected[0]):
                if not _same_value(value, expected[1][key]):
                    problems.append(
                        f"read_tensor({key!r}): wrong value {value!r} != {expected[1][key]!r}"[:500]
                    )
        outcomes["read_tensor"] = (
            "ok" if set(tensor_labels) <= {"ok"} else sorted(set(tensor_labels) - {"ok"})[0]
        )
    label, report, _ = record("verify_checkpoint", _outcome(verify_checkpoint, target))
    if label == "ok":
        if report.ok and read_failed:
            problems.append("verify_checkpoint: ok, yet reading failed")
        if report.ok and job["expect"] == "invalid":
            problems.append("verify_checkpoint: ok for a mutant built to be invalid")
        if not report.ok and job["expect"] == "sound":
            problems.append(f"verify_checkpoint: not ok for a sound mutant: {report.problems[:3]}")
        if not report.ok and any(not p.strip() or "\n" in p for p in report.problems):
            problems.append(f"verify_checkpoint: a problem is not one line: {report.problems}")
        outcomes["verify_checkpoint"] = "ok (sound)" if report.ok else "ok (problems)"
    elif label != "ok" and not nothing_there and not label.startswith("BAD"):
        problems.append(
            f"verify_checkpoint raised {label} where read_checkpoint gave {outcomes['read_checkpoint']}"
        )
    if job.get("convert"):
        _fuzz_convert(job, outcomes, problems, record, info, outcomes["verify_checkpoint"] == "ok (sound)")
    if job.get("map"):
        _fuzz_map(job, outcomes, problems, record, info, outcomes["verify_checkpoint"] == "ok (sound)")
    if job.get("cli"):
        inspect_ok = outcomes["read_checkpoint"] == "ok"
        values_ok = inspect_ok and set(values_labels) <= {"ok"}
        verify_ok = outcomes["verify_checkpoint"] == "ok (sound)"
        for argv, expect in (
            (["inspect", target, "--json"], inspect_ok),
            (["inspect", target, "--values"], values_ok),
            (["verify", target], verify_ok),
        ):
            label, result, error = _outcome(run_cli_in_process, argv)
            what = " ".join(argv[:1] + argv[2:])
            outcomes[f"cli {what}"] = label if label != "ok" else f"exit {result[0]}"
            if label != "ok":
                problems.append(f"cli {what}: {label}: {error}"[:2000])
            else:
                _check_cli_result(what, *result, expect, problems)
    return {"outcomes": outcomes, "problems": problems}


def _fuzz_convert(job, outcomes, problems, record, info, verify_ok):
    """`convert_checkpoint` converts fully or raises, leaving nothing at the destination;
    `diff_checkpoints` finds a sound mutant equal to its pristine checkpoint."""
    from est_ckpt.tools.convert import convert_checkpoint
    from est_ckpt.tools.diff import diff_checkpoints

    to = "tf1" if info is not None and info.format == "tf2" else "tf2"
    out_dir = job["dir"] + "-converted"
    dst = os.path.join(out_dir, "out")
    label, written, _ = record(
        "convert_checkpoint", _outcome(lambda: convert_checkpoint(job["target"], dst, to=to))
    )
    left = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
    if label != "ok":
        if left:
            problems.append(f"convert_checkpoint failed ({label}) but left {left} at the destination")
    else:
        if any(".tmp" in name for name in left):
            problems.append(f"convert_checkpoint left temporary files: {left}")
        if verify_ok:
            from est_ckpt import verify_checkpoint

            converted = _outcome(verify_checkpoint, written)
            if converted[0] != "ok" or not converted[1].ok:
                problems.append(f"convert_checkpoint of a sound checkpoint wrote an unsound one: {converted}")
            same = _outcome(diff_checkpoints, job["target"], written)
            if same[0] != "ok" or not same[1].equal:
                problems.append(f"diff_checkpoints(source, converted) is not equal: {same[:2]}")
    shutil.rmtree(out_dir, ignore_errors=True)
    if info is not None:
        pristine = os.path.join(job["pristine"], os.path.basename(info.prefix))
        label, result, _ = record("diff_checkpoints", _outcome(diff_checkpoints, job["target"], pristine))
        if label == "ok" and verify_ok and not job["crafted"] and not result.equal:
            problems.append(
                "diff_checkpoints: a sound mutant differs from its pristine checkpoint: "
                f"{(result.only_in_a, result.only_in_b, result.changed)}"
            )


def _fuzz_map(job, outcomes, problems, record, info, verify_ok):
    """`map_checkpoints` plans from or onto a mutant, or raises a typed error; sound mutants plan as pristine."""
    from est_ckpt.mapping import map_checkpoints

    pristine = job["pristine_latest"]
    if info is not None:
        pristine = os.path.join(job["pristine"], os.path.basename(info.prefix))
    label, plan, _ = record("map_checkpoints (source)", _outcome(map_checkpoints, job["target"], pristine))
    if label == "ok" and verify_ok and not job["crafted"]:
        expected = map_checkpoints(pristine, pristine)
        if (plan.mapping(), plan.ok) != (expected.mapping(), expected.ok):
            problems.append(
                f"map_checkpoints: a sound mutant plans differently: {plan.mapping()} != {expected.mapping()}"[
                    :2000
                ]
            )
    record("map_checkpoints (target)", _outcome(map_checkpoints, pristine, job["target"]))
    if job.get("cli"):
        label, result, error = _outcome(run_cli_in_process, ["map", job["target"], "--target", pristine])
        outcomes["cli map"] = label if label != "ok" else f"exit {result[0]}"
        if label != "ok":
            problems.append(f"cli map: {label}: {error}"[:2000])
        elif result[0] not in (0, 1) or "Traceback" in result[1] + result[2]:
            problems.append(f"cli map: exit {result[0]}: {result[2][-500:]}")


def _peak_rss_kib() -> int:
    """This process's peak resident set (`VmHWM`; `ru_maxrss` would include the parent's, kept across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_main() -> None:
    """Reads one JSON job a line from stdin, answers one JSON line on stdout."""
    import resource

    import numpy  # noqa: F401 - imported before the cap, as every reader needs it.

    import est_ckpt.commands.inspect  # noqa: F401
    import est_ckpt.commands.main  # noqa: F401
    import est_ckpt.commands.verify  # noqa: F401

    for optional in ("est_ckpt.tools.convert", "est_ckpt.mapping", "est_ckpt.commands.map"):
        try:
            importlib.import_module(optional)
        except ImportError:
            pass
    import est_ckpt.tools.verify  # noqa: F401

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signal.signal(signal.SIGALRM, _on_alarm)
    truth = _Truth()
    real_stdout = sys.stdout
    for line in sys.stdin:
        job = json.loads(line)
        answer = _run_mutant(job, truth)
        answer["id"] = job["id"]
        answer["peak_rss_kib"] = _peak_rss_kib()
        real_stdout.write(json.dumps(answer) + "\n")
        real_stdout.flush()


class _Worker:
    def __init__(self):
        self.proc = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=_ROOT, TF_CPP_MIN_LOG_LEVEL="2", OPENBLAS_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=_ROOT,
        )

    def ask(self, job: dict) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], MUTANT_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        if ready:  # EOF: the worker died.
            code = self.proc.wait()
            self.proc = None
            return {"outcomes": {"worker": f"BAD died ({code})"}, "problems": [f"worker died with {code}"]}
        self.stop()
        return {"outcomes": {"worker": "BAD hang"}, "problems": [f"no answer within {MUTANT_TIMEOUT} s"]}

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _table(
    counts: dict[str, collections.Counter], kinds: collections.Counter, randoms: int, seconds: float
) -> str:
    labels = sorted({label for c in counts.values() for label in c})
    width = max(len(e) for e in counts) + 2
    total = sum(kinds.values())
    lines = [
        f"fuzz: {total} mutants ({total - randoms} systematic, {randoms} random; seed {SEED}, "
        f"EST_CKPT_FUZZ_MUTANTS={MUTANTS}) in {seconds:.1f} s",
        "  mutants: " + ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items())),
        "  outcomes per entry point:",
    ]
    for entry_point, c in counts.items():
        cells = ", ".join(f"{label}: {c[label]}" for label in labels if c[label])
        lines.append(f"  {entry_point.ljust(width)}{cells}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def bases(ckpts, tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-bases")
    out = {}
    for name in BASES:
        if name == "multiblock":
            # 60 variables re-indexed in 1 KiB blocks: several data blocks, several restart points each.
            base = _make_base(ckpts("many_vars", n=60), str(root / name))
            prefix = _prefixes_in(base)[0]
            with open(prefix + ".index", "rb") as f:
                rows = table.read_table(f.read())
            with open(prefix + ".index", "wb") as f:
                f.write(table.build_table(rows, block_size=1024))
            out[name] = base
        else:
            out[name] = _make_base(ckpts(name), str(root / name))
    return out


def test_pristine_bases_match_tensorflow(bases):
    """Every pristine base reads, verifies and equals what TensorFlow's own reader returns."""
    import numpy as np
    import tensorflow as tf

    from est_ckpt import verify_checkpoint

    for base in bases.values():
        for prefix in _prefixes_in(base):
            assert verify_checkpoint(prefix).ok
            info = checkpoint.read_checkpoint(prefix)
            reader = tf.train.load_checkpoint(prefix)
            assert set(info.tensors) == set(reader.get_variable_to_shape_map())
            for key in info.tensors:
                ours, theirs = info.read_tensor(key), np.asarray(reader.get_tensor(key))
                if ours.dtype == object:
                    assert list(ours.reshape(-1)) == list(theirs.reshape(-1)), key
                else:
                    # Raw bytes: TF 2.13 returns bfloat16 in its own numpy type, which `astype`
                    # to ml_dtypes' bfloat16 would convert through integers.
                    assert ours.shape == theirs.shape and ours.tobytes() == theirs.tobytes(), key


def test_fuzz(bases, tmp_path, capsys):
    """Hostile mutants of real checkpoints give the right answer or a typed error, never worse."""
    mutants = _plan(bases, MUTANTS, SEED)
    sample = set(random.Random(SEED).sample(range(len(mutants)), min(SUBPROCESS_SAMPLES, len(mutants))))
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    worker = _Worker()
    start = time.monotonic()
    try:
        for number, mutant in enumerate(mutants):
            mdir = str(tmp_path / f"m{number}")
            shutil.copytree(bases[mutant.base], mdir)
            mutant.apply(mdir)
            latest = _prefixes_in(bases[mutant.base])[-1]
            prefix = os.path.join(mdir, os.path.basename(latest))
            target = {"dir": mdir, "prefix": prefix, "index": prefix + ".index"}[mutant.target]
            job = {
                "id": number,
                "dir": mdir,
                "target": target,
                "pristine": bases[mutant.base],
                "kind": mutant.kind,
                "expect": mutant.expect,
                "crafted": mutant.crafted,
                "cli": True,
                "convert": True,
                "map": True,
                "pristine_latest": latest,
            }
            answer = worker.ask(job)
            for entry_point, label in answer["outcomes"].items():
                counts[entry_point][label] += 1
            if answer.get("peak_rss_kib", 0) > 600 * 1024:
                answer["problems"].append(f"worker peak RSS reached {answer['peak_rss_kib'] // 1024} MiB")
            if number in sample:
                for argv in (["inspect", target], ["verify", target]):
                    code, out, err = outcome(*argv)
                    counts[f"subprocess {argv[0]}"][f"exit {code}"] += 1
                    if (
                        code not in (0, 1)
                        or "Traceback" in err
                        or (code == 1 and argv[0] == "inspect" and len(err.splitlines()) != 1)
                    ):
                        answer["problems"].append(f"subprocess {argv}: exit {code}, stderr {err[-500:]!r}")
            for problem in answer["problems"]:
                failures.append(f"[{number} {mutant.base} {mutant.kind} target={mutant.target}] {problem}")
            shutil.rmtree(mdir, ignore_errors=True)
    finally:
        worker.stop()
    with capsys.disabled():
        kinds = collections.Counter(re.split(r"[-@]", m.kind)[0] for m in mutants)
        sys.stderr.write(
            "\n" + _table(counts, kinds, sum(m.random for m in mutants), time.monotonic() - start) + "\n"
        )
    assert len(mutants) == MUTANTS
    assert not failures, f"{len(failures)} oracle violations:\n" + "\n".join(failures[:40])


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    worker_main()
