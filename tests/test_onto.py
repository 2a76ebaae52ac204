"""`convert_checkpoint(src, dst, like=TEMPLATE)` and `est-ckpt convert --like`: onto the new model's own checkpoint.

Real TensorFlow writes every checkpoint: a TF1 graph's `Saver` checkpoint, an
eager Keras model's `tf.train.Checkpoint(model=m).write` and `save_weights`;
TensorFlow restores every result.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

import est_ckpt
from est_ckpt.errors import DestinationExistsError, MismatchError, UnmappedVariablesError
from est_ckpt.format import bundle, checkpoint, keys
from est_ckpt.tools import onto
from tests.cli import run_cli

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def _tf1_ckpt(
    tf, path: str, *, kernel_name: str = "dense/kernel", kernel_shape=(4, 3), step: int = 7
) -> dict:
    """A TF1 graph's `Saver` checkpoint of a dense layer and `global_step`; returns its values by name."""
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        rng = np.random.RandomState(0)
        kernel = tf1.get_variable(kernel_name, initializer=rng.randn(*kernel_shape).astype(np.float32))
        bias = tf1.get_variable("dense/bias", initializer=rng.randn(kernel_shape[1]).astype(np.float32))
        gs = tf1.train.get_or_create_global_step()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(gs.assign(step))
            tf1.train.Saver().save(sess, path)
            return dict(zip((kernel_name, "dense/bias", "global_step"), sess.run([kernel, bias, gs])))


def _keras_model(tf, units: int = 3):
    model = tf.keras.Sequential([tf.keras.layers.Dense(units, name="dense")])
    model.build((None, 4))
    return model


def _digest(prefix: str) -> dict:
    """Every file of a checkpoint and its content hash: what must never change."""
    directory, base = os.path.split(prefix)
    return {
        n: hashlib.sha256(open(os.path.join(directory, n), "rb").read()).hexdigest()
        for n in sorted(os.listdir(directory))
        if n.startswith(base + ".")
    }


def _layout(prefix: str) -> dict:
    """Every key's dtype and shape, from TensorFlow's own reader."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    return {
        k: (reader.get_variable_to_dtype_map()[k], tuple(s))
        for k, s in reader.get_variable_to_shape_map().items()
    }


def _graph_entry(prefix: str) -> bytes:
    info = checkpoint.read_checkpoint(prefix)
    return info.read_tensor(keys.OBJECT_GRAPH_KEY).item()


@pytest.mark.keras2
@pytest.mark.parametrize("how", ["write", "save"])
def test_tf1_onto_keras_checkpoint(tf, tmp_path, how):
    """A TF1 graph checkpoint onto `Checkpoint(model=m).write` / `.save`: the template's layout, SRC's values.

    `save` also records `save_counter` (bookkeeping, kept from the template);
    `write` does not, and is read back with `read`.
    """
    src = str(tmp_path / "src" / "model.ckpt")
    values = _tf1_ckpt(tf, src)
    template = _keras_model(tf)
    like = getattr(tf.train.Checkpoint(model=template), how)(str(tmp_path / "tpl" / "ckpt"))
    before = {p: _digest(p) for p in (src, like)}

    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    dst = report.prefix
    assert _layout(dst) == _layout(like)
    assert _graph_entry(dst) == _graph_entry(like)
    assert [a.target for a in report.plan.assignments] == ["dense/bias", "dense/kernel"]
    assert report.plan.unused_sources == ("global_step",)
    assert report.kept == (() if how == "write" else (keys.attribute_key("save_counter"),))
    assert {p: _digest(p) for p in (src, like)} == before
    assert tf.train.latest_checkpoint(str(tmp_path / "out")) == dst

    model = _keras_model(tf)
    # `read` is `write`'s counterpart: it does not create a `save_counter` of its own.
    ckpt = tf.train.Checkpoint(model=model)
    (ckpt.restore if how == "save" else ckpt.read)(dst).assert_consumed()
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), values["dense/kernel"])
    np.testing.assert_array_equal(model.layers[0].bias.numpy(), values["dense/bias"])


@pytest.mark.keras2
def test_tf1_onto_keras_save_weights(tf, tmp_path):
    """Onto a `model.save_weights` template: `load_weights(DST)` consumes every value and gets SRC's weights."""
    src = str(tmp_path / "src" / "model.ckpt")
    values = _tf1_ckpt(tf, src)
    template = _keras_model(tf)
    like = str(tmp_path / "tpl" / "weights")
    template.save_weights(like)
    dst = est_ckpt.convert_checkpoint(src, str(tmp_path / "out" / "weights"), like=like)
    assert _layout(dst) == _layout(like)
    assert _graph_entry(dst) == _graph_entry(like)
    model = _keras_model(tf)
    model.load_weights(dst).assert_consumed()
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), values["dense/kernel"])
    np.testing.assert_array_equal(model.layers[0].bias.numpy(), values["dense/bias"])


@pytest.mark.keras2
def test_keras_onto_tf1_saver_template(tf, tmp_path):
    """The way back: an eager Keras checkpoint onto a TF1 Saver template; `Saver().restore` reads it."""
    tf1 = tf.compat.v1
    model = _keras_model(tf)
    src = tf.train.Checkpoint(model=model).write(str(tmp_path / "src" / "ckpt"))
    like = str(tmp_path / "tpl" / "model.ckpt")
    template_values = _tf1_ckpt(tf, like, step=42)
    with pytest.raises(UnmappedVariablesError, match="'global_step'"):
        est_ckpt.convert_checkpoint(src, str(tmp_path / "out" / "model.ckpt"), like=like)
    assert not os.path.exists(tmp_path / "out")

    report = onto.convert_onto(src, str(tmp_path / "out" / "model.ckpt"), like=like, keep_unmapped=True)
    assert report.kept == ("global_step",)
    assert _layout(report.prefix) == _layout(like)
    with tf.Graph().as_default():
        kernel = tf1.get_variable("dense/kernel", shape=[4, 3])
        bias = tf1.get_variable("dense/bias", shape=[3])
        gs = tf1.train.get_or_create_global_step()
        with tf1.Session() as sess:
            tf1.train.Saver().restore(sess, report.prefix)
            got = sess.run([kernel, bias, gs])
    np.testing.assert_array_equal(got[0], model.layers[0].kernel.numpy())
    np.testing.assert_array_equal(got[1], model.layers[0].bias.numpy())
    assert got[2] == template_values["global_step"] == 42


@pytest.mark.keras2
def test_assignment_map_and_rename_rules(tf, tmp_path):
    """Renamed sources map through `assignment_map` or `rename_rules`, as `map` plans them."""
    src = str(tmp_path / "src" / "model.ckpt")
    values = _tf1_ckpt(tf, src, kernel_name="old/kernel")
    like = tf.train.Checkpoint(model=_keras_model(tf)).save(str(tmp_path / "tpl" / "ckpt"))
    dst = est_ckpt.convert_checkpoint(
        src, str(tmp_path / "a" / "ckpt"), like=like, assignment_map={"old/kernel": "dense/kernel"}
    )
    model = _keras_model(tf)
    tf.train.Checkpoint(model=model).restore(dst).assert_consumed()
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), values["old/kernel"])
    dst = est_ckpt.convert_checkpoint(
        src, str(tmp_path / "b" / "ckpt"), like=like, rename_rules=[("dense/kernel", "old/kernel")]
    )
    tf.train.Checkpoint(model=model).restore(dst).assert_consumed()
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), values["old/kernel"])


@pytest.mark.keras2
def test_errors_name_the_key_and_write_nothing(tf, tmp_path):
    """Unmapped (with the closest source names), mismatched, existing DST: one error naming the key, nothing written."""
    like = tf.train.Checkpoint(model=_keras_model(tf)).save(str(tmp_path / "tpl" / "ckpt"))
    renamed = str(tmp_path / "renamed" / "model.ckpt")
    _tf1_ckpt(tf, renamed, kernel_name="dense/kernels")
    wide = str(tmp_path / "wide" / "model.ckpt")
    _tf1_ckpt(tf, wide, kernel_shape=(4, 2))
    before = {p: _digest(p) for p in (renamed, wide, like)}
    out = tmp_path / "out"
    with pytest.raises(UnmappedVariablesError, match=r"'dense/kernel'; closest in checkpoint: dense/kernels"):
        est_ckpt.convert_checkpoint(renamed, str(out / "ckpt"), like=like)
    with pytest.raises(MismatchError, match=r"'dense/kernel' \[4, 3\] float32 <- 'dense/kernel' \[4, 2\]"):
        est_ckpt.convert_checkpoint(wide, str(out / "ckpt"), like=like)
    assert not out.exists()
    with pytest.raises(MismatchError):  # keep_unmapped never hides a mismatch
        est_ckpt.convert_checkpoint(wide, str(out / "ckpt"), like=like, keep_unmapped=True)
    assert not out.exists()

    good = str(tmp_path / "good" / "model.ckpt")
    _tf1_ckpt(tf, good)
    dst = est_ckpt.convert_checkpoint(good, str(out / "ckpt"), like=like)
    written = _digest(dst)
    with pytest.raises(DestinationExistsError, match="ckpt"):
        est_ckpt.convert_checkpoint(good, str(out / "ckpt"), like=like)
    assert _digest(dst) == written
    est_ckpt.convert_checkpoint(good, str(out / "ckpt"), like=like, force=True)
    assert {p: _digest(p) for p in (renamed, wide, like)} == before


def test_to_and_like_exclude_each_other(tf, tmp_path):
    """Exactly one of `to` and `like`."""
    src = str(tmp_path / "src" / "model.ckpt")
    _tf1_ckpt(tf, src)
    with pytest.raises(est_ckpt.errors.ConversionError, match="exactly one of `to`"):
        est_ckpt.convert_checkpoint(src, str(tmp_path / "x"), to="tf2", like=src)
    with pytest.raises(est_ckpt.errors.ConversionError, match="exactly one of `to`"):
        est_ckpt.convert_checkpoint(src, str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x.index")


@pytest.mark.keras2
def test_shards_are_linked_not_copied(tf, tmp_path):
    """Index only: DST's shards are SRC's and TEMPLATE's data files by hard link, nothing copied."""
    src = str(tmp_path / "src" / "model.ckpt")
    _tf1_ckpt(tf, src)
    like = tf.train.Checkpoint(model=_keras_model(tf)).save(str(tmp_path / "tpl" / "ckpt"))
    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    assert report.copied_bytes == 0
    written = checkpoint.read_checkpoint(report.prefix).bundle
    sources = {os.stat(bundle.data_path(src, 0, 1)).st_ino, os.stat(bundle.data_path(like, 0, 1)).st_ino}
    assert {os.stat(written.data_path(i)).st_ino for i in range(written.header.num_shards)} == sources


@pytest.mark.keras2
def test_cli_like_json_is_the_map_plan(tf, tmp_path):
    """`convert --like --json` prints the plan `map --target --json` shows; `--to` with `--like` is exit 2."""
    src = str(tmp_path / "src" / "model.ckpt")
    _tf1_ckpt(tf, src, kernel_name="old/kernel")
    like = tf.train.Checkpoint(model=_keras_model(tf)).save(str(tmp_path / "tpl" / "ckpt"))
    mapping = ["--assignment_map=old/kernel=dense/kernel"]
    planned = json.loads(run_cli("map", src, "--target", like, *mapping, "--json", expect=0).stdout)
    dst = str(tmp_path / "out" / "ckpt")
    out = json.loads(run_cli("convert", src, dst, f"--like={like}", *mapping, "--json", expect=0).stdout)
    assert set(out) == {
        "prefix",
        "mapped",
        "kept",
        "unused_sources",
        "computed",
        "step_checks",
        "state_file_updated",
    }
    assert out["mapped"] == planned["mapped"] and out["unused_sources"] == planned["unused_sources"]
    assert (
        out["kept"] == ["save_counter/.ATTRIBUTES/VARIABLE_VALUE"]
        and out["prefix"] == dst
        and out["state_file_updated"] is True
    )

    both = run_cli("convert", src, str(tmp_path / "both"), "--to=tf2", f"--like={like}", expect=2)
    assert "--to or --like" in both.stderr and not os.path.exists(tmp_path / "both.index")
    again = run_cli("convert", src, dst, f"--like={like}", *mapping, expect=1)
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr
    unmapped = run_cli("convert", src, str(tmp_path / "u" / "ckpt"), f"--like={like}", expect=1)
    assert "'dense/kernel'" in unmapped.stderr and "Traceback" not in unmapped.stderr
    assert not os.path.exists(tmp_path / "u")
