"""The transform vocabulary on real checkpoints: each op, whole and streamed, equals numpy on TF's reader.

A checkpoint written by TensorFlow holds tensors of a few shapes; rules
files compute targets from them through `convert --like` onto a template
written by TensorFlow too. Every result is read back with TF's own reader and
compared with numpy applying the same op to what TF's reader gives for the
source. Streaming is forced by a small block size (`compute.BLOCK_BYTES`), so
the block-by-block and tile-by-tile paths are the ones compared. Shapes the
transforms cannot reach, and corrupt source bytes, are refused.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import est_ckpt
from est_ckpt.errors import ConversionError, RulesFileError, TransformError
from est_ckpt.tools import compute

pytestmark = pytest.mark.tensorflow
tf = pytest.importorskip("tensorflow")

RNG = np.random.RandomState(0)
SOURCES = {
    "a": RNG.randn(48, 20).astype(np.float32),  # 3840 bytes: streamed with a 256-byte block
    "b": RNG.randn(16, 20).astype(np.float32),
    "c": RNG.randn(6, 4, 5).astype(np.float64),
    "s": np.float32(2.5),
}

# (name, target shape, sources, ops, numpy of the sources)
CASES = [
    ("reshape", (12, 4, 20), ["a"], [{"reshape": None}], lambda a: a.reshape(12, 4, 20)),
    ("reshape_rows", (20, 48), ["a"], [{"reshape": [20, -1]}, {"scale": 1.0}], lambda a: a.reshape(20, 48)),
    ("transpose", (20, 48), ["a"], [{"transpose": [1, 0]}], lambda a: a.T),
    ("transpose_3d", (5, 6, 4), ["c"], [{"transpose": [2, 0, 1]}], lambda c: c.transpose(2, 0, 1)),
    ("transpose_keep0", (6, 5, 4), ["c"], [{"transpose": [0, 2, 1]}], lambda c: c.transpose(0, 2, 1)),
    ("slice_end", (10, 20), ["a"], [{"slice": {"axis": 0, "begin": "end"}}], lambda a: a[-10:]),
    ("slice_axis1", (48, 7), ["a"], [{"slice": {"axis": 1, "begin": -9, "size": 7}}], lambda a: a[:, 11:18]),
    ("split", (48, 5), ["a"], [{"split": {"axis": 1, "parts": 4, "index": 2}}], lambda a: a[:, 10:15]),
    ("concat0", (64, 20), ["a", "b"], [{"concat": {"axis": 0}}], lambda a, b: np.concatenate([a, b])),
    (
        "concat0_reorder0",
        (64, 20),
        ["a", "b"],
        [{"concat": {"axis": 0}}, {"reorder": {"axis": 0, "parts": 4, "order": [3, 1, 0, 2]}}],
        lambda a, b: np.concatenate([np.split(np.concatenate([a, b]), 4)[k] for k in (3, 1, 0, 2)]),
    ),
    (
        "reorder1",
        (48, 20),
        ["a"],
        [{"reorder": {"axis": 1, "parts": 4, "order": [0, 2, 1, 3]}}],
        lambda a: np.concatenate([np.split(a, 4, axis=1)[k] for k in (0, 2, 1, 3)], axis=1),
    ),
    (
        "add_block0",
        (48, 20),
        ["a"],
        [{"add": {"value": "bias", "axis": 0, "parts": 3, "index": 1}}],
        lambda a: np.concatenate([a[:16], a[16:32] + np.float32(0.75), a[32:]]),
    ),
    ("scale_neg", (48, 20), ["a"], [{"scale": "-bias"}], lambda a: a * np.float32(-0.75)),
    ("cast", (6, 4, 5), ["c"], [{"cast": "float32"}], lambda c: c.astype(np.float32)),
    ("scalar", (1,), ["s"], [{"add": 1.0}, {"reshape": [1]}], lambda s: np.reshape(s + np.float32(1), [1])),
]


def _write(path, values: dict) -> str:
    """A TF2 checkpoint of `values`, written by TensorFlow: its prefix."""
    root = tf.train.Checkpoint(**{k: tf.Variable(v, name=k) for k, v in values.items()})
    return root.write(str(path))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("src") / "ckpt", SOURCES)


def _rules(tmp_path, cases) -> str:
    rules = [
        {"target": f"t_{name}", "sources": list(srcs), "transforms": ops}
        if len(srcs) > 1
        else {"target": f"t_{name}", "source": srcs[0], "transforms": ops}
        for name, _, srcs, ops, _ in cases
    ]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"est_ckpt_rules": 1, "params": {"bias": 0.75}, "rules": rules}))
    return str(path)


def _template(tmp_path, cases) -> str:
    values = {
        f"t_{name}": np.zeros(shape, np.float64 if name == "transpose_3d" else np.float32)
        for name, shape, *_ in cases
    }
    values = {
        k: v.astype(np.float64) if k in ("t_transpose_3d", "t_transpose_keep0") else v
        for k, v in values.items()
    }
    return _write(tmp_path / "tpl" / "ckpt", values)


@pytest.mark.parametrize("block", [compute.BLOCK_BYTES, 256], ids=["whole", "streamed"])
def test_every_op_equals_numpy_on_tensorflows_reader(source, tmp_path, monkeypatch, block):
    """Each case's target, read by TF, equals numpy's op on the sources TF reads; reshapes are index only."""
    monkeypatch.setattr(compute, "BLOCK_BYTES", block)
    template = _template(tmp_path, CASES)
    dst = str(tmp_path / "out" / "ckpt")
    est_ckpt.convert_checkpoint(source, dst, like=template, rules=_rules(tmp_path, CASES), keep_unmapped=True)
    ours, theirs = tf.train.load_checkpoint(dst), tf.train.load_checkpoint(source)
    got_keys = {k for k in ours.get_variable_to_shape_map() if k.startswith("t_")}
    assert len(got_keys) == len(CASES)
    for name, shape, srcs, _, fn in CASES:
        key = f"t_{name}/.ATTRIBUTES/VARIABLE_VALUE"
        want = fn(*[theirs.get_tensor(f"{s}/.ATTRIBUTES/VARIABLE_VALUE") for s in srcs])
        got = ours.get_tensor(key)
        assert got.shape == tuple(shape), name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert est_ckpt.verify_checkpoint(dst).ok
    info = est_ckpt.read_checkpoint(dst)
    src_info = est_ckpt.read_checkpoint(source)
    reshaped = info.bundle.entries["t_reshape/.ATTRIBUTES/VARIABLE_VALUE"]
    original = src_info.bundle.entries["a/.ATTRIBUTES/VARIABLE_VALUE"]
    assert (reshaped.offset, reshaped.size, reshaped.crc32c) == (
        original.offset,
        original.size,
        original.crc32c,
    )


def test_a_transpose_bigger_than_a_block_is_written_by_tiles(source, tmp_path, monkeypatch):
    """With 64-byte tiles the transpose of `a` (48 x 20) takes the tiled path and equals numpy's."""
    monkeypatch.setattr(compute, "BLOCK_BYTES", 64)
    cases = [c for c in CASES if c[0] in ("transpose", "transpose_3d")]
    template = _template(tmp_path, cases)
    dst = str(tmp_path / "out" / "ckpt")
    est_ckpt.convert_checkpoint(source, dst, like=template, rules=_rules(tmp_path, cases), keep_unmapped=True)
    reader = tf.train.load_checkpoint(dst)
    np.testing.assert_array_equal(reader.get_tensor("t_transpose/.ATTRIBUTES/VARIABLE_VALUE"), SOURCES["a"].T)
    np.testing.assert_array_equal(
        reader.get_tensor("t_transpose_3d/.ATTRIBUTES/VARIABLE_VALUE"), SOURCES["c"].transpose(2, 0, 1)
    )


@pytest.mark.parametrize("block", [compute.BLOCK_BYTES, 256, 64], ids=["whole", "streamed", "tiled"])
def test_corrupt_source_bytes_are_refused_and_nothing_is_written(source, tmp_path, monkeypatch, block):
    """A flipped byte in a transformed source fails its CRC32C: an error naming the file, no DST."""
    import shutil

    monkeypatch.setattr(compute, "BLOCK_BYTES", block)
    copy = tmp_path / "src"
    shutil.copytree(os.path.dirname(source), copy)
    prefix = str(copy / os.path.basename(source))
    info = est_ckpt.read_checkpoint(prefix)
    entry = info.bundle.entries["a/.ATTRIBUTES/VARIABLE_VALUE"]
    data = info.bundle.data_path(entry.shard_id)
    with open(data, "r+b") as f:
        f.seek(entry.offset + 100)
        byte = f.read(1)
        f.seek(entry.offset + 100)
        f.write(bytes([byte[0] ^ 0x40]))
    cases = [c for c in CASES if c[0] == "transpose"]
    dst = tmp_path / "out"
    with pytest.raises((ConversionError, est_ckpt.errors.CorruptCheckpointError), match="CRC32C|checksum"):
        est_ckpt.convert_checkpoint(
            prefix,
            str(dst / "ckpt"),
            like=_template(tmp_path, cases),
            rules=_rules(tmp_path, cases),
            keep_unmapped=True,
        )
    assert not dst.exists() or not os.listdir(dst)


def test_shapes_no_transform_reaches_are_refused_naming_the_pair(source, tmp_path):
    """Wrong shapes, a bad op argument, an unset parameter: a TransformError naming target, source and a fix."""
    template = _write(tmp_path / "tpl" / "ckpt", {"t": np.zeros((20, 48), np.float32)})
    for ops, message in [
        (
            [],
            r"'t' <- 'a': the transforms give \[48, 20\], the target is \[20, 48\]; add \{\"reshape\": \[20, 48\]\}",
        ),
        (
            [{"slice": {"axis": 0, "begin": 0}}],
            r"transforms\[0\]: slice \[0:20\] of axis 0 is outside|give \[20, 20\]",
        ),
        (
            [{"reorder": {"axis": 1, "parts": 3, "order": [0, 1, 2]}}],
            r"20 \(axis 1 of \[48, 20\]\) does not split into 3 parts",
        ),
        ([{"scale": "nope"}], r"parameter 'nope' is not set"),
    ]:
        rules = {"est_ckpt_rules": 1, "rules": [{"target": "t", "source": "a", "transforms": ops}]}
        with pytest.raises(TransformError, match=message):
            est_ckpt.convert_checkpoint(
                source, str(tmp_path / "o" / "c"), like=template, rules=rules, keep_unmapped=True
            )
    assert not (tmp_path / "o").exists()


def test_rules_file_format_errors_name_the_rule():
    """A rules file that is not the format is refused at load, naming the rule and the field."""
    for data, message in [
        ({"rules": []}, r"not an est_ckpt rules file"),
        ({"est_ckpt_rules": 1, "rules": [{"target": "x"}]}, r"rules\[0\]: a rule is an object with 'target'"),
        (
            {"est_ckpt_rules": 1, "rules": [{"target": "(x", "source": "y"}]},
            r"rules\[0\]: .*does not compile",
        ),
        ({"est_ckpt_rules": 1, "rules": [{"target": "x", "sources": ["a", "b"]}]}, r"joined by a first op"),
        (
            {"est_ckpt_rules": 1, "rules": [{"target": "${p}", "source": "y"}]},
            r"'\$\{p\}' names no text parameter",
        ),
        (
            {"est_ckpt_rules": 1, "rules": [{"target": "x", "source": "y", "extra": 1}]},
            r"unknown field\(s\) 'extra'",
        ),
    ]:
        with pytest.raises(RulesFileError, match=message):
            est_ckpt.load_rules(data)
