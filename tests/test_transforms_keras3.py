"""The `lstm` preset onto Keras 3 (TF 2.16+), whose variables carry the model's name (`sequential/lstm/...`).

TF 2.16+ has no TF1 `LSTMCell` to build the old graph with, so the name-based
checkpoint is written by TensorFlow's `SaveV2` under `LSTMCell`'s names and
layout, and the reference is TF1 `LSTMCell`'s arithmetic written out in numpy
(gates `i, j, f, o`, `forget_bias` added at run time).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.cli import run_cli

pytestmark = pytest.mark.keras3
tf = pytest.importorskip("tensorflow")

T, IN, UNITS = 5, 3, 4
X = np.random.RandomState(0).randn(2, T, IN).astype(np.float32)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _tf1_lstm(kernel, bias, forget_bias):
    """TF1 `LSTMCell.call` over X: `i, j, f, o = split(concat([x, h]) @ kernel + bias, 4)`."""
    c = h = np.zeros((X.shape[0], UNITS), np.float32)
    for t in range(T):
        i, j, f, o = np.split(np.concatenate([X[:, t], h], axis=1) @ kernel + bias, 4, axis=1)
        c = _sigmoid(f + forget_bias) * c + _sigmoid(i) * np.tanh(j)
        h = _sigmoid(o) * np.tanh(c)
    return h


@pytest.mark.parametrize("forget_bias", [1.0, 0.25])
def test_tf1_lstm_checkpoint_onto_a_keras3_lstm(tmp_path, forget_bias):
    """`--rules=lstm --rule_param keras=sequential/lstm/lstm_cell`: Keras 3's LSTM computes TF1's outputs."""
    rng = np.random.RandomState(1)
    kernel = rng.randn(IN + UNITS, 4 * UNITS).astype(np.float32) * 0.5
    bias = rng.randn(4 * UNITS).astype(np.float32) * 0.5
    src = str(tmp_path / "tf1" / "model.ckpt")
    tf.raw_ops.SaveV2(
        prefix=src,
        tensor_names=["rnn/lstm_cell/kernel", "rnn/lstm_cell/bias"],
        shape_and_slices=["", ""],
        tensors=[tf.constant(kernel), tf.constant(bias)],
    )
    model = tf.keras.Sequential([tf.keras.Input((T, IN)), tf.keras.layers.LSTM(UNITS)])
    template = tf.train.Checkpoint(model=model).write(str(tmp_path / "tpl" / "ckpt"))
    dst = str(tmp_path / "out" / "ckpt")
    proc = run_cli(
        "convert", src, dst, f"--like={template}", "--rules=lstm", "--rule_param",
        f"keras={model.layers[0].cell.kernel.path.rpartition('/')[0]}", "--rule_param", f"forget_bias={forget_bias}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tf.train.Checkpoint(model=model).read(dst).assert_consumed()
    np.testing.assert_allclose(model(X).numpy(), _tf1_lstm(kernel, bias, forget_bias), atol=1e-5)
