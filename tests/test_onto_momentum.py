"""TF1 `MomentumOptimizer` onto Keras SGD(momentum) and back: the slots computed as `-lr * accum`, `-v / lr`.

Each way is checked as TF restores it (`assert_consumed`, `Saver.restore`)
and by one more training step on both sides (within 1e-6), for the TF 2.11+
Keras SGD and the legacy one, with and without Nesterov.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import est_ckpt
from est_ckpt.format import checkpoint
from est_ckpt.tools import onto
from tests.cli import outcome
from tests.onto_models import keras as _keras
from tests.onto_models import keras_step as _keras_step
from tests.onto_models import train_tf1 as _train_tf1

pytestmark = pytest.mark.keras2

_LR, _MOMENTUM = 0.1, 0.9


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def _tf1(nesterov: bool):
    return lambda tf1: tf1.train.MomentumOptimizer(_LR, momentum=_MOMENTUM, use_nesterov=nesterov)


def _sgd(legacy: bool, nesterov: bool):
    if legacy:
        return lambda tf: tf.keras.optimizers.legacy.SGD(_LR, momentum=_MOMENTUM, nesterov=nesterov)
    return lambda tf: tf.keras.optimizers.SGD(_LR, momentum=_MOMENTUM, nesterov=nesterov)


def _model(tf, make_optimizer, legacy: bool):
    """A Keras model whose optimizer's slots exist (a legacy one creates them on a zero-gradient step)."""
    if not legacy:
        return _keras(tf, make_optimizer)
    model = tf.keras.Sequential([tf.keras.layers.Dense(3, name="dense")])
    model.build((None, 4))
    optimizer = make_optimizer(tf)
    optimizer.apply_gradients((tf.zeros_like(v), v) for v in model.trainable_variables)
    return model, optimizer


def _weights(model) -> dict:
    return {"dense/kernel": model.layers[0].kernel.numpy(), "dense/bias": model.layers[0].bias.numpy()}


def _assert_close(got: dict, expected: dict):
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, atol=1e-6, rtol=0)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("legacy", [False, True])
def test_tf1_momentum_onto_keras_sgd(tf, tmp_path, legacy, nesterov):
    """`velocity = -lr * accum`: assert_consumed, and one more step agrees with one more TF1 step."""
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, _tf1(nesterov), src, steps=3)
    model, optimizer = _model(tf, _sgd(legacy, nesterov), legacy)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))

    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    computed = dict(report.computed)
    slot = (
        "model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/momentum/.ATTRIBUTES/VARIABLE_VALUE"
        if legacy
        else "optimizer/_variables/1/.ATTRIBUTES/VARIABLE_VALUE"
    )
    assert computed[slot] == "-0.1 * 'dense/kernel/Momentum'"
    assert len(computed) == 2 and not any("Momentum" in a.source_key for a in report.plan.assignments)
    assert any("saves neither its momentum nor use_nesterov" in n for n in report.step_checks)
    reader, source = tf.train.load_checkpoint(report.prefix), tf.train.load_checkpoint(src)
    np.testing.assert_array_equal(
        reader.get_tensor(slot), -np.float32(_LR) * source.get_tensor("dense/kernel/Momentum")
    )
    # Only the two slots are written (4 * 3 + 3 float32); every other shard is linked.
    assert checkpoint.read_checkpoint(report.prefix).bundle.shard_sizes[-1] == 15 * 4

    model, optimizer = _model(tf, _sgd(legacy, nesterov), legacy)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(report.prefix).assert_consumed()
    assert int(optimizer.iterations.numpy()) == 3
    _keras_step(tf, model, optimizer)
    _assert_close(_weights(model), _train_tf1(tf, _tf1(nesterov), None, steps=1, restore=src))


@pytest.mark.parametrize("legacy", [False, True])
def test_keras_sgd_onto_tf1_momentum_template(tf, tmp_path, legacy):
    """The way back: `accum = -velocity / lr`; Saver.restore plus one TF1 step equals one more Keras step."""
    like = str(tmp_path / "tpl" / "model.ckpt")
    _train_tf1(
        tf, _tf1(False), like, steps=0
    )  # first: a TF1 graph's layers invalidate Keras models made before
    model, optimizer = _model(tf, _sgd(legacy, False), legacy)
    rng = np.random.RandomState(0)
    model.layers[0].kernel.assign(rng.randn(4, 3).astype(np.float32))
    model.layers[0].bias.assign(rng.randn(3).astype(np.float32))
    for _ in range(3):
        _keras_step(tf, model, optimizer)
    src = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "keras" / "ckpt"))
    _keras_step(tf, model, optimizer)

    report = onto.convert_onto(src, str(tmp_path / "out" / "model.ckpt"), like=like)
    lr_key = "optimizer/learning_rate" if legacy else "optimizer/_learning_rate"
    assert any(f"'{lr_key}/.ATTRIBUTES/VARIABLE_VALUE' of {src}" in n for n in report.step_checks)
    assert set(dict(report.computed)) == {"dense/kernel/Momentum", "dense/bias/Momentum"}
    _assert_close(_train_tf1(tf, _tf1(False), None, steps=1, restore=report.prefix), _weights(model))


def test_learning_rate_not_recorded_is_refused(tf, tmp_path):
    """A Keras SGD with a learning-rate schedule records no learning rate: an error naming the slot, no DST."""
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, _tf1(False), src, steps=1)
    schedule = tf.keras.optimizers.schedules.ExponentialDecay(_LR, decay_steps=10, decay_rate=0.5)
    model, optimizer = _keras(tf, lambda tf: tf.keras.optimizers.SGD(schedule, momentum=_MOMENTUM))
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    with pytest.raises(est_ckpt.errors.ConversionError, match=r"'optimizer/_variables/\d+/.*neither it nor"):
        est_ckpt.convert_checkpoint(src, str(tmp_path / "out" / "ckpt"), like=like)
    rc, out, err = outcome("map", src, "--target", like, "--optimizer_state", "--json")
    assert rc == 1 and out == "" and "neither it nor" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "out")


def _plan_part(converted: dict) -> dict:
    return {k: v for k, v in converted.items() if k not in ("prefix", "state_file_updated")}


@pytest.mark.parametrize("kind", ["adam", "momentum", "adam_back"])
def test_map_optimizer_state_is_the_plan_convert_like_executes(tf, tmp_path, kind):
    """`map --optimizer_state --json` equals the plan part of `convert --like --json`, exit codes too."""
    if kind == "adam_back":
        like = str(tmp_path / "tpl" / "model.ckpt")
        _train_tf1(tf, lambda tf1: tf1.train.AdamOptimizer(0.1), like, steps=0)
        model, optimizer = _keras(tf, lambda tf: tf.keras.optimizers.Adam(0.1))
        _keras_step(tf, model, optimizer)
        src = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "keras" / "ckpt"))
    else:
        src = str(tmp_path / "src" / "model.ckpt")
        tf1_opt = _tf1(False) if kind == "momentum" else (lambda tf1: tf1.train.AdamOptimizer(0.1))
        _train_tf1(tf, tf1_opt, src, steps=2)
        keras_opt = _sgd(False, False) if kind == "momentum" else (lambda tf: tf.keras.optimizers.Adam(0.1))
        model, optimizer = _keras(tf, keras_opt)
        like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))

    rc_map, out, _ = outcome("map", src, "--target", like, "--optimizer_state", "--json")
    planned = json.loads(out)
    rc_convert, out, err = outcome("convert", src, str(tmp_path / "out" / "ckpt"), f"--like={like}", "--json")
    assert rc_map == rc_convert == 0, err
    converted = _plan_part(json.loads(out))
    assert planned["unmapped"] == [] and planned["mismatched"] == []
    assert {k: planned[k] for k in converted} == converted
    assert bool(planned["computed"]) == (kind != "adam")
    # A TF1 template records no hyperparameter to keep, and a Keras source no Adam power to check.
    assert bool(planned["kept"]) == bool(planned["step_checks"]) == (kind != "adam_back")
    rc, text, _ = outcome("map", src, "--target", like, "--optimizer_state")
    assert rc == 0 and text.rstrip().endswith(": ok")
    assert all(f"computed: {key}" in text for key in planned["computed"])


def test_map_step_mismatch_exits_1_as_convert(tf, tmp_path):
    """A `global_step` that does not count Adam's steps: `map --optimizer_state` refuses it as convert does."""
    tf1 = tf.compat.v1
    src = str(tmp_path / "src" / "model.ckpt")
    from tests.onto_models import graph

    with tf.Graph().as_default():
        train_op = graph(tf, tf1.train.AdamOptimizer(0.1, beta1=0.8))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(train_op)
            sess.run(tf1.train.get_global_step().assign(5))
            tf1.train.Saver().save(sess, src)
    model = tf.keras.Sequential([tf.keras.layers.Dense(3, name="dense")])
    model.build((None, 4))
    optimizer = tf.keras.optimizers.legacy.Adam(0.1, beta_1=0.8)
    optimizer.apply_gradients((tf.zeros_like(v), v) for v in model.trainable_variables)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    results = [
        outcome("map", src, "--target", like, "--optimizer_state", "--json"),
        outcome("convert", src, str(tmp_path / "out" / "ckpt"), f"--like={like}", "--json"),
    ]
    for rc, out, err in results:
        assert rc == 1 and out == "" and "'global_step' = 5 does not count" in err
    assert results[0][2] == results[1][2]


def test_map_optimizer_state_refuses_what_convert_refuses(tf, tmp_path):
    """A template variable SRC has no source for: `map --optimizer_state` lists it and exits 1, as convert does
    (and with `--keep_unmapped` both keep it)."""
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, _tf1(False), src, steps=1)
    model, optimizer = _keras(tf, _sgd(False, False))
    extra = tf.Variable(tf.zeros([2]), name="extra")
    like = tf.train.Checkpoint(model=model, optimizer=optimizer, extra=extra).save(
        str(tmp_path / "tpl" / "ckpt")
    )
    rc_map, out, _ = outcome("map", src, "--target", like, "--optimizer_state", "--json")
    planned = json.loads(out)
    rc_convert, out, err = outcome("convert", src, str(tmp_path / "out" / "ckpt"), f"--like={like}")
    assert rc_map == rc_convert == 1 and out == "" and "extra" in err
    assert "keep_unmapped=True" not in err  # the CLI names flags, not arguments (issue 20.8)
    assert planned["unmapped"] == ["extra"] and planned["computed"] == {}
    # What has no source is unmapped, not also kept (issue 20.10).
    assert "extra/.ATTRIBUTES/VARIABLE_VALUE" not in planned["kept"]
    rc, text, _ = outcome("map", src, "--target", like, "--optimizer_state")
    assert (
        rc == 1 and "unmapped: extra" in text and text.rstrip().endswith("convert --like would refuse this")
    )
    assert not os.path.exists(tmp_path / "out")
    # With --keep_unmapped both accept it, and map plans what convert then does: `extra` is kept.
    rc_map, out, _ = outcome("map", src, "--target", like, "--optimizer_state", "--keep_unmapped", "--json")
    planned = json.loads(out)
    rc_convert, out, err = outcome(
        "convert", src, str(tmp_path / "out" / "ckpt"), f"--like={like}", "--keep_unmapped", "--json"
    )
    assert rc_map == rc_convert == 0, err
    converted = _plan_part(json.loads(out))
    assert "extra/.ATTRIBUTES/VARIABLE_VALUE" in planned["kept"]
    assert planned["unmapped"] == [] and {k: planned[k] for k in converted} == converted
    rc, _, err = outcome("map", src, "--target", like, "--keep_unmapped")
    assert rc == 2 and "--keep_unmapped applies to --optimizer_state" in err


def test_map_lists_slots_without_a_source_as_unmapped_only(tf, tmp_path):
    """Plain SGD (no slots) onto Keras SGD with momentum: its velocities are unmapped, never also kept."""
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, lambda tf1: tf1.train.GradientDescentOptimizer(_LR), src, steps=1)
    model, optimizer = _keras(tf, _sgd(False, False))
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    rc, out, _ = outcome("map", src, "--target", like, "--optimizer_state", "--json")
    planned = json.loads(out)
    assert rc == 1 and len(planned["unmapped"]) == len(model.trainable_variables)
    template = checkpoint.read_checkpoint(like)
    slot_keys = {
        k for u in planned["unmapped"] for k in [u, *template.keys_for_name(u)] if k in template.tensors
    }
    assert slot_keys and not slot_keys & set(planned["kept"]), (slot_keys, planned["kept"])
