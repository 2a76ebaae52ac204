"""`verify_checkpoint` and `est-ckpt verify`: every byte checked, every problem reported, no TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import est_ckpt
from est_ckpt import verify_checkpoint
from est_ckpt.format import bundle, keys, reader, table, wire
from est_ckpt.tools import verify

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOUND = [
    "tf1",
    "tf2",
    "nested",
    "partitioned",
    "partitioned_tf2",
    "adam",
    "adam_tf2",
    "keras_functional",
    "dtypes",
    "dtypes_tf2",
    "dotted_names",
    "estimator_tf1",
    "estimator_tf2",
]


def est_ckpt_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "est_ckpt", *args], capture_output=True, text=True, timeout=60, cwd=_ROOT
    )


def copy_prefix(prefix: str, directory) -> str:
    """Copies the files of one checkpoint into `directory`; returns the new prefix."""
    os.makedirs(directory, exist_ok=True)
    src_dir, stem = os.path.dirname(prefix), os.path.basename(prefix)
    for name in os.listdir(src_dir):
        if name == stem + ".index" or name.startswith(stem + ".data-"):
            shutil.copy(os.path.join(src_dir, name), os.path.join(directory, name))
    return os.path.join(str(directory), stem)


def flip(path: str, offset: int) -> None:
    data = bytearray(open(path, "rb").read())
    data[offset] ^= 0x01
    open(path, "wb").write(bytes(data))


def rewrite_index(prefix: str, edit) -> None:
    """Rebuilds `<prefix>.index` (valid CRCs) from `edit(rows)` where rows exclude the header."""
    rows = table.read_table(open(prefix + ".index", "rb").read())
    header = rows[0][1]
    open(prefix + ".index", "wb").write(bundle.build_index(header, edit(rows[1:])))


@pytest.mark.parametrize("name", SOUND)
def test_sound_checkpoints_verify(ckpts, name):
    """Every checkpoint TF wrote is sound, with every stored tensor and every data byte checked."""
    prefix = ckpts.prefix(name)
    report = verify_checkpoint(ckpts(name))
    assert report.ok, report.problems
    assert report.prefix == prefix and report.problems == []
    b = reader.read_bundle(prefix)
    stored = [e for e in b.entries.values() if not e.slices] + [p.entry for p in b.slice_entries]
    assert report.tensors_checked == len(stored)
    # TF's writer leaves no gaps: the tensors account for every byte of every shard.
    assert report.bytes_checked == sum(b.shard_sizes)


def test_cli_text_json_and_exit_codes(ckpts, tmp_path):
    """`verify` prints one OK line (exit 0) or one line per problem (exit 1); `--json` prints the report object."""
    prefix = copy_prefix(ckpts("tf1"), tmp_path / "c")
    proc = est_ckpt_cli("verify", prefix)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == f"{prefix}: OK (3 tensors, 12 bytes checked)\n"
    out = json.loads(est_ckpt_cli("verify", prefix, "--json").stdout)
    assert out == {
        "path": prefix,
        "prefix": prefix,
        "ok": True,
        "problems": [],
        "tensors_checked": 3,
        "bytes_checked": 12,
    }
    flip(prefix + ".data-00000-of-00001", 0)
    proc = est_ckpt_cli("verify", prefix, "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ok"] is False and len(out["problems"]) == 1
    proc = est_ckpt_cli("verify", prefix)
    assert proc.returncode == 1 and proc.stdout.splitlines() == out["problems"]


def test_usage_errors():
    """`verify` takes exactly one PATH: anything else is a usage error (exit 2)."""
    assert est_ckpt_cli("verify").returncode == 2
    proc = est_ckpt_cli("verify", "a", "b")
    assert proc.returncode == 2 and "exactly one PATH" in proc.stderr


def test_reports_every_damaged_tensor(ckpts, tmp_path):
    """Two damaged tensors give two lines, each naming its shard and key; the sound one still counts."""
    prefix = copy_prefix(ckpts("tf1"), tmp_path / "c")
    b = reader.read_bundle(prefix)
    shard = b.data_path(0)
    for key in ("a", "scoped/c"):
        flip(shard, b.entries[key].offset)
    report = verify_checkpoint(prefix)
    assert report.problems == [
        f"{shard}: the bytes of 'a' fail their CRC32C check; the data file is damaged.",
        f"{shard}: the bytes of 'scoped/c' fail their CRC32C check; the data file is damaged.",
    ]
    assert report.tensors_checked == 1


def test_tensorflow_agrees_a_flipped_tensor_is_damaged(ckpts, tmp_path):
    """Where verify reports a tensor's CRC32C, TF's own reader refuses that tensor too."""
    import tensorflow as tf

    prefix = copy_prefix(ckpts("dtypes_tf2"), tmp_path / "c")
    b = reader.read_bundle(prefix)
    key = next(k for k, e in b.entries.items() if e.dtype == 7 and e.shape and k != keys.OBJECT_GRAPH_KEY)
    entry = b.entries[key]
    flip(b.data_path(entry.shard_id), entry.offset + entry.size - 1)
    report = verify_checkpoint(prefix)
    assert len(report.problems) == 1 and f"'{key}'" in report.problems[0]
    with pytest.raises(tf.errors.OpError, match="Checksum does not match"):
        tf.train.load_checkpoint(prefix).get_tensor(key)


def test_partition_slice_is_named(ckpts, tmp_path):
    """A damaged part of a partitioned variable is reported by its slice, and the other parts are checked."""
    prefix = copy_prefix(ckpts("partitioned"), tmp_path / "c")
    b = reader.read_bundle(prefix)
    part = b.slice_entries[1]
    flip(b.data_path(part.entry.shard_id), part.entry.offset)
    report = verify_checkpoint(prefix)
    assert report.problems == [
        f"{b.data_path(0)}: the bytes of slice {list(part.extents)} of 'emb' fail their CRC32C check; "
        "the data file is damaged."
    ]
    # Every other part and dense/kernel passed.
    assert report.tensors_checked == len(b.slice_entries)


def test_partition_geometry(ckpts, tmp_path):
    """A partitioned variable whose stored parts no longer tile it is reported, and reading it is refused."""
    prefix = copy_prefix(ckpts("partitioned"), tmp_path / "c")
    dropped = reader.read_bundle(prefix).slice_entries[0]
    rewrite_index(prefix, lambda rows: [r for r in rows if r[0] != dropped.raw_key])
    report = verify_checkpoint(prefix)
    assert report.problems == [
        f"{prefix}.index: declared slice {list(dropped.extents)} of 'emb' has no stored part"
    ]
    info = est_ckpt.read_checkpoint(prefix)
    with pytest.raises(est_ckpt.errors.CorruptCheckpointError, match="has no stored part"):
        info.read_tensor("emb")


def test_lost_index_block_does_not_hide_the_rest(ckpts, tmp_path):
    """With one index data block damaged, verify says so and still checks the entries of every other block."""
    prefix = copy_prefix(ckpts("many_vars", n=50), tmp_path / "c")
    rows = table.read_table(open(prefix + ".index", "rb").read())
    open(prefix + ".index", "wb").write(table.build_table(rows, block_size=256))
    assert verify_checkpoint(prefix).ok
    data = open(prefix + ".index", "rb").read()
    footer = data[-table.FOOTER_SIZE :]
    _, _, pos = table.parse_handle(footer, 0)
    index_off, index_size, _ = table.parse_handle(footer, pos)
    handles = table.block_entries(data[index_off : index_off + index_size], "index")
    assert len(handles) > 4
    second, _, _ = table.parse_handle(handles[2][1], 0)
    flip(prefix + ".index", second + 3)
    report = verify_checkpoint(prefix)
    assert report.problems == [
        f"{prefix}.index: data block 2 at offset {second} fails its CRC32C check; its entries are lost"
    ]
    assert 30 < report.tensors_checked < 50


def test_hostile_offsets_are_reported_without_tensorflow(ckpts, tmp_path):
    """CRC-valid entries with huge offsets and sizes are problems, found without importing TensorFlow."""
    prefix = copy_prefix(ckpts("tf1"), tmp_path / "c")

    def hostile(rows):
        out = []
        for key, value in rows:
            entry = bundle.parse_entry(key.decode(), value)
            if key == b"a":
                value = bundle.encode_entry(entry, offset=1 << 62)
            elif key == b"b":
                value = value + wire.field_varint(5, (1 << 64) - 1)  # the last size field wins
            out.append((key, value))
        return out

    rewrite_index(prefix, hostile)
    code = (
        "import sys, json; from est_ckpt import verify_checkpoint;"
        f"r = verify_checkpoint({prefix!r});"
        "print(json.dumps([r.problems, 'tensorflow' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_ROOT)
    problems, imported_tf = json.loads(out.stdout)
    assert imported_tf is False
    assert problems == [
        f"{prefix}.data-00000-of-00001: entry 'a' needs bytes [{1 << 62}, {(1 << 62) + 4}), but the file "
        f"holds only 12 bytes: the data file is truncated (or {os.path.basename(prefix)}.index is damaged)",
        f"{prefix}.index: entry 'b': bad offset 4 or size -1",
    ]


def test_object_graph_naming_a_missing_key(ckpts, tmp_path):
    """An object graph naming a key the index lacks is a problem (the lenient reader still lists the rest)."""
    prefix = copy_prefix(ckpts("tf2"), tmp_path / "c")
    gone = "variables/1/.ATTRIBUTES/VARIABLE_VALUE"
    rewrite_index(prefix, lambda rows: [r for r in rows if r[0] != gone.encode()])
    report = verify_checkpoint(prefix)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{prefix}.index: the object graph names '{gone}' (node ")
    assert gone not in est_ckpt.read_checkpoint(prefix).tensors


def test_problem_lines_are_capped(ckpts, tmp_path):
    """A header declaring a thousand missing shards gives a bounded report ending in a count."""
    prefix = copy_prefix(ckpts("tf1"), tmp_path / "c")
    rows = table.read_table(open(prefix + ".index", "rb").read())
    header = bundle.encode_header(1000)
    open(prefix + ".index", "wb").write(bundle.build_index(header, rows[1:]))
    report = verify_checkpoint(prefix)
    assert len(report.problems) == verify.MAX_PROBLEMS + 1
    assert report.problems[-1].startswith("... and ") and report.problems[-1].endswith(" more problems")


def test_public_name_and_no_tensorflow_import():
    """`est_ckpt.verify_checkpoint` is the lazily exported function, and importing it loads no TensorFlow."""
    assert est_ckpt.verify_checkpoint is verify.verify_checkpoint
    code = "import sys, est_ckpt; est_ckpt.verify_checkpoint; import est_ckpt.commands.verify; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_ROOT)
    assert out.stdout.strip() == "False"


def test_object_graph_entry_with_hostile_size_is_not_read(ckpts, tmp_path):
    """An object-graph entry declaring 2**47 bytes is one problem, never a read of that size."""
    prefix = copy_prefix(ckpts("tf2"), tmp_path / "c")
    graph_key = keys.OBJECT_GRAPH_KEY.encode()

    def hostile(rows):
        return [(k, v + wire.field_varint(5, 1 << 47) if k == graph_key else v) for k, v in rows]

    rewrite_index(prefix, hostile)
    report = verify_checkpoint(prefix)
    assert len(report.problems) == 1
    assert (
        f"entry '{keys.OBJECT_GRAPH_KEY}'" in report.problems[0]
        and "the file holds only" in report.problems[0]
    )


def test_streamed_check_of_large_tensors_reports_the_same(ckpts, tmp_path, monkeypatch):
    """Tensors checksummed in chunks (above STREAM_THRESHOLD) give exactly the problems of a whole read."""
    prefix = copy_prefix(ckpts("dtypes"), tmp_path / "c")
    b = reader.read_bundle(prefix)
    numeric = [e for _, e in sorted(b.entries.items()) if e.dtype != 7 and e.size]
    flip(b.data_path(0), numeric[0].offset)
    rank40 = numeric[1]
    shape = (1,) * (
        70 - len(rank40.shape)
    ) + rank40.shape  # as many elements, more dims than numpy has (32; 64 from numpy 2)
    proto = wire.field_varint(1, rank40.dtype) + wire.field_bytes(
        2, b"".join(wire.field_bytes(2, wire.field_varint(1, d)) for d in shape)
    )
    proto += wire.field_varint(4, rank40.offset) + wire.field_varint(5, rank40.size)
    proto += wire.field_fixed32(6, rank40.crc32c)
    rewrite_index(prefix, lambda rows: [(k, proto if k == rank40.key.encode() else v) for k, v in rows])

    whole = verify_checkpoint(prefix)
    monkeypatch.setattr(verify, "STREAM_THRESHOLD", 0)
    streamed = verify_checkpoint(prefix)
    assert whole.problems == streamed.problems and len(whole.problems) == 2, whole.problems
    assert "CRC32C" in whole.problems[0] and "cannot be decoded" in whole.problems[1]
    assert (whole.tensors_checked, whole.bytes_checked) == (streamed.tensors_checked, streamed.bytes_checked)
