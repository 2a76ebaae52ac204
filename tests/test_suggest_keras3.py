"""`map --suggest` from Keras 2 onto Keras 3: a tf.keras 2.15 checkpoint onto a Keras 3 `.weights.h5` of the same model.

The names differ (Keras 3 writes the model's name above its layers, and a model
built twice numbers its layers on: `dense_3`); the Estimator environment's
Python trains the Keras 2 model (`tests/keras2_job.py`, as `make test` names it
in `EST_CKPT_ESTIMATOR_PYTHON`). Every weight is paired with the one of its place,
the written rules make `convert --like` exit 0, and one more Keras 3 step equals
Keras 2's within 1e-6. With a layer added on the Keras 3 side, nothing is paired
wrongly and the new layer is reported.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from est_ckpt.mapping.suggest import suggest_mapping
from tests.cli import run_cli, run_estimator_job

pytestmark = pytest.mark.keras3
tf = pytest.importorskip("tensorflow")
pytest.importorskip("h5py")
X = np.random.RandomState(0).randn(16, 4).astype(np.float32)
Y = np.random.RandomState(1).randn(16, 1).astype(np.float32)


@pytest.fixture(scope="module")
def keras2(tmp_path_factory):
    """The workdir of the trained Keras 2 model (`keras2/ckpt`, `next.npz`)."""
    workdir = tmp_path_factory.mktemp("keras2")
    np.savez(workdir / "data.npz", x=X, y=Y)
    run_estimator_job("keras2_job.py", workdir)
    return workdir


def _keras3(extra: bool = False):
    import keras

    layers = [keras.layers.Dense(8, activation="relu"), keras.layers.LayerNormalization()]
    layers += [keras.layers.Dense(8, activation="relu")]
    layers += [keras.layers.Dense(16, activation="relu")] if extra else []
    model = keras.Sequential([keras.Input((4,)), *layers, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_keras2_onto_keras3_is_paired_and_training_continues(keras2, tmp_path):
    _keras3()  # built once before: this model's layers are numbered on (`dense_3`)
    model = _keras3()
    template = tmp_path / "tpl.weights.h5"
    model.save_weights(str(template))
    src = str(keras2 / "keras2" / "ckpt")
    suggestion = suggest_mapping(src, str(template))
    assert not suggestion.ambiguous and not suggestion.unmatched
    assert len(suggestion.pairs) == 8
    rules = tmp_path / "rules.json"
    proc = run_cli(
        "map",
        src,
        f"--target={template}",
        "--optimizer_state",
        "--suggest",
        f"--write_rules={rules}",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    mapped = json.loads(proc.stdout)["mapped"]
    assert len([m for m in mapped if m["evidence"] != ["follows its variable"]]) == 8
    assert len(mapped) == 8 * 3 + 1  # Adam's two slots of each weight, and the step
    out = tmp_path / "model.weights.h5"
    run_cli("convert", src, out, f"--like={template}", f"--rules={rules}", expect=0)
    model.load_weights(str(out))
    assert int(model.optimizer.iterations.numpy()) == 3
    model.train_on_batch(X, Y)
    expected = np.load(keras2 / "next.npz")
    for i, v in enumerate(model.trainable_weights):  # the same place in the model: the same layer
        np.testing.assert_allclose(v.numpy(), expected[f"w{i}"], atol=1e-6, err_msg=v.path)


def test_keras2_onto_keras3_with_a_layer_added(keras2, tmp_path):
    """A Dense(16) added before the head: its weights and the head's kernel (now [16, 1]) are reported; the
    rest (7 of the 7 weights with a counterpart) paired with the weights of their place."""
    model = _keras3(extra=True)
    template = tmp_path / "tpl.weights.h5"
    model.save_weights(str(template))
    suggestion = suggest_mapping(str(keras2 / "keras2" / "ckpt"), str(template))
    order = [v.path.split("/", 1)[1] for v in model.trainable_weights]  # Keras 3's names, without the model's
    got = {p.target.split("/", 1)[1]: p.source for p in suggestion.pairs}
    keras2_names = ["dense/kernel", "dense/bias", "layer_normalization/gamma", "layer_normalization/beta"]
    keras2_names += ["dense_1/kernel", "dense_1/bias"]
    expected = dict(zip(order[:6], keras2_names))
    expected[order[-1]] = "dense_2/bias"
    assert got == expected
    assert len(suggestion.unmatched) + len(suggestion.ambiguous) == 3
