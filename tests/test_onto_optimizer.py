"""Optimizer state onto a Keras model+optimizer template: TF1 slots and `global_step` become the Keras optimizer's.

A TF1 graph trained a few steps with a TF1 optimizer is converted onto an
eager Keras model's `tf.train.Checkpoint(model=m, optimizer=opt)`; the Keras
side restores everything (`assert_consumed`) and one more training step on
each side gives the same weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import est_ckpt
from est_ckpt.tools import onto
from tests.onto_models import OPTIMIZERS as _OPTIMIZERS
from tests.onto_models import X as _X
from tests.onto_models import Y as _Y
from tests.onto_models import keras as _keras
from tests.onto_models import keras_step as _keras_step
from tests.onto_models import train_tf1 as _train_tf1


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


@pytest.mark.keras2
@pytest.mark.parametrize("name", sorted(_OPTIMIZERS))
def test_tf1_optimizer_onto_keras_optimizer(tf, tmp_path, name):
    """Slots and step count carry over: assert_consumed, and one more step agrees within 1e-6."""
    tf1_opt, keras_opt = _OPTIMIZERS[name]
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, tf1_opt, src, steps=3)
    model, optimizer = _keras(tf, keras_opt)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))

    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    mapped = {a.target: a.source_name for a in report.plan.assignments}
    if name == "adam":
        assert (
            mapped["m/dense/kernel"] == "dense/kernel/Adam" and mapped["v/dense/bias"] == "dense/bias/Adam_1"
        )
        assert mapped["iteration"] == "global_step"
    elif name == "adagrad":
        assert mapped["accumulator/dense/kernel"] == "dense/kernel/Adagrad"
    elif name == "ftrl":
        assert mapped["accumulator/dense/kernel"] == "dense/kernel/Ftrl"
        assert mapped["linear/dense/bias"] == "dense/bias/Ftrl_1"
    else:
        assert mapped["velocity/dense/kernel"] == "dense/kernel/RMSProp"
        assert mapped["momentum/dense/bias"] == "dense/bias/RMSProp_1"
    # Hyperparameters are not state: the template's, listed as kept.
    assert "optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE" in report.kept

    model, optimizer = _keras(tf, keras_opt)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(report.prefix).assert_consumed()
    _keras_step(tf, model, optimizer)
    expected = _train_tf1(tf, tf1_opt, None, steps=1, restore=src)
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), expected["dense/kernel"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(model.layers[0].bias.numpy(), expected["dense/bias"], atol=1e-6, rtol=0)


@pytest.mark.keras2
def test_map_optimizer_state_shows_the_plan_convert_applies(tf, tmp_path):
    """`map --target TEMPLATE --optimizer_state --json` lists exactly what `convert --like --json` maps."""
    tf1_opt, keras_opt = _OPTIMIZERS["adam"]
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, tf1_opt, src, steps=1)
    model, optimizer = _keras(tf, keras_opt)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def cli(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "est_ckpt", *args], capture_output=True, text=True, env=env
        )
        return proc.returncode, proc.stdout

    rc, out = cli("map", src, "--target", like, "--optimizer_state", "--json")
    planned = json.loads(out)
    assert {"target": "m/dense/kernel", "source_key": "dense/kernel/Adam"} in planned["mapped"]
    # Hyperparameters keep the template's values: `map --optimizer_state` plans as convert does (exit 0).
    assert planned["unmapped"] == [] and rc == 0
    rc, out = cli("convert", src, str(tmp_path / "out" / "ckpt"), f"--like={like}", "--json")
    converted = json.loads(out)
    assert rc == 0 and converted["mapped"] == planned["mapped"]
    assert converted["unused_sources"] == planned["unused_sources"] == ["beta1_power", "beta2_power"]
    assert "optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE" in converted["kept"] == planned["kept"]


@pytest.mark.estimator
def test_estimator_model_fn_onto_keras_then_train_on(tf, tmp_path):
    """A TF1 `model_fn` trained by an Estimator with Adam, onto Keras: one more step each agrees within 1e-6."""
    tf1_opt, keras_opt = _OPTIMIZERS["adam"]

    def model_fn(features, labels, mode):
        rng = np.random.RandomState(0)
        out = tf.compat.v1.layers.dense(
            features,
            3,
            name="dense",
            kernel_initializer=tf.compat.v1.constant_initializer(rng.randn(4, 3)),
            bias_initializer=tf.compat.v1.constant_initializer(rng.randn(3)),
        )
        loss = tf.reduce_mean(tf.square(out - labels))
        gs = tf.compat.v1.train.get_or_create_global_step()
        return tf.estimator.EstimatorSpec(
            mode, loss=loss, train_op=tf1_opt(tf.compat.v1).minimize(loss, global_step=gs)
        )

    def input_fn():
        return tf.data.Dataset.from_tensors((_X, _Y)).repeat()

    model_dir = str(tmp_path / "estimator")
    estimator = tf.estimator.Estimator(model_fn, model_dir)
    estimator.train(input_fn, steps=3)
    src = tf.train.latest_checkpoint(model_dir)
    model, optimizer = _keras(tf, keras_opt)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    dst = est_ckpt.convert_checkpoint(model_dir, str(tmp_path / "keras") + "/", like=like)
    assert tf.train.latest_checkpoint(str(tmp_path / "keras")) == dst

    model, optimizer = _keras(tf, keras_opt)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(dst).assert_consumed()
    assert int(optimizer.iterations.numpy()) == 3
    _keras_step(tf, model, optimizer)
    estimator.train(input_fn, steps=1)
    after = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
    assert tf.train.latest_checkpoint(model_dir) != src
    for var, name in ((model.layers[0].kernel, "dense/kernel"), (model.layers[0].bias, "dense/bias")):
        np.testing.assert_allclose(var.numpy(), after.get_tensor(name), atol=1e-6, rtol=0)
