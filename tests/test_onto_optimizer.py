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
from est_ckpt.errors import MismatchError
from est_ckpt.tools import onto

_X = np.random.RandomState(1).randn(8, 4).astype(np.float32)
_Y = np.random.RandomState(2).randn(8, 3).astype(np.float32)

# (TF1 optimizer, Keras optimizer with the same hyperparameters)
_OPTIMIZERS = {
    "adam": (
        lambda tf1: tf1.train.AdamOptimizer(0.1, beta1=0.8, beta2=0.95, epsilon=1e-8),
        lambda tf: tf.keras.optimizers.Adam(0.1, beta_1=0.8, beta_2=0.95, epsilon=1e-8),
    ),
    "adagrad": (
        lambda tf1: tf1.train.AdagradOptimizer(0.1, initial_accumulator_value=0.1),
        lambda tf: tf.keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-10),
    ),
    "ftrl": (
        lambda tf1: tf1.train.FtrlOptimizer(
            0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01
        ),
        lambda tf: tf.keras.optimizers.Ftrl(
            0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01
        ),
    ),
    "rmsprop": (
        lambda tf1: tf1.train.RMSPropOptimizer(0.01, decay=0.9, momentum=0.5, epsilon=1e-7),
        lambda tf: tf.keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-7),
    ),
}


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def _graph(tf, optimizer):
    tf1 = tf.compat.v1
    x = tf1.constant(_X)
    rng = np.random.RandomState(0)
    out = tf1.layers.dense(
        x,
        3,
        name="dense",
        kernel_initializer=tf1.constant_initializer(rng.randn(4, 3)),
        bias_initializer=tf1.constant_initializer(rng.randn(3)),
    )
    loss = tf1.reduce_mean(tf1.square(out - _Y))
    gs = tf1.train.get_or_create_global_step()
    return optimizer.minimize(loss, global_step=gs)


def _train_tf1(tf, make_optimizer, path: str, *, steps: int, restore: str = None) -> dict:
    """Trains the TF1 graph `steps` steps (from `restore` if given), saves to `path`; returns the weights."""
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        train_op = _graph(tf, make_optimizer(tf1))
        saver = tf1.train.Saver()
        with tf1.Session() as sess:
            if restore:
                saver.restore(sess, restore)
            else:
                sess.run(tf1.global_variables_initializer())
            for _ in range(steps):
                sess.run(train_op)
            if path:
                saver.save(sess, path)
            return {v.op.name: sess.run(v) for v in tf1.trainable_variables()}


def _keras(tf, make_optimizer):
    model = tf.keras.Sequential([tf.keras.layers.Dense(3, name="dense")])
    model.build((None, 4))
    optimizer = make_optimizer(tf)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _keras_step(tf, model, optimizer):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(_X) - _Y))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))


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


def test_momentum_onto_keras_sgd_is_refused(tf, tmp_path):
    """TF1 Momentum's slot means something else than Keras SGD's `m`: an error naming it, nothing written."""
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, lambda tf1: tf1.train.MomentumOptimizer(0.1, momentum=0.9), src, steps=2)
    model, optimizer = _keras(tf, lambda tf: tf.keras.optimizers.SGD(0.1, momentum=0.9))
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    for keep in (False, True):
        with pytest.raises(MismatchError, match=r"'dense/kernel/Momentum' cannot become 'm/dense/kernel'"):
            est_ckpt.convert_checkpoint(src, str(tmp_path / "out" / "ckpt"), like=like, keep_unmapped=keep)
    assert not os.path.exists(tmp_path / "out")


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
    assert planned["unmapped"] == ["learning_rate"] and rc == 1  # a warm start would not set hyperparameters
    rc, out = cli("convert", src, str(tmp_path / "out" / "ckpt"), f"--like={like}", "--json")
    converted = json.loads(out)
    assert rc == 0 and converted["mapped"] == planned["mapped"]
    assert converted["unused_sources"] == planned["unused_sources"] == ["beta1_power", "beta2_power"]
    assert "optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE" in converted["kept"]


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
