"""Keras 3's own files (`.weights.h5`, `.keras`) as sources and templates, with every Keras 3 optimizer.

Each test trains a real Keras 3 model (TF 2.16+), writes what Keras writes, converts with
est_ckpt (no Keras, no TensorFlow in the conversion), loads the result with Keras's own
`load_weights` / `load_model` / `tf.train.Checkpoint`, and takes one more training step on
both models: weights and optimizer state must agree.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from tests.cli import run_cli

pytestmark = pytest.mark.keras3
tf = pytest.importorskip("tensorflow")
h5py = pytest.importorskip("h5py")

X = np.random.RandomState(0).randn(8, 3).astype(np.float32)
Y = np.random.RandomState(1).randn(8, 2).astype(np.float32)

OPTIMIZERS = {
    "adam": lambda k: k.optimizers.Adam(0.01),
    "adam_amsgrad": lambda k: k.optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda k: k.optimizers.AdamW(0.01),
    "adamax": lambda k: k.optimizers.Adamax(0.01),
    "nadam": lambda k: k.optimizers.Nadam(0.01),
    "rmsprop": lambda k: k.optimizers.RMSprop(0.01),
    "rmsprop_momentum": lambda k: k.optimizers.RMSprop(0.01, momentum=0.5),
    "rmsprop_centered": lambda k: k.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "sgd_momentum": lambda k: k.optimizers.SGD(0.1, momentum=0.9),
    "sgd_nesterov": lambda k: k.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda k: k.optimizers.Adagrad(0.1),
    "adadelta": lambda k: k.optimizers.Adadelta(1.0),
    "ftrl": lambda k: k.optimizers.Ftrl(0.1),
    "lion": lambda k: k.optimizers.Lion(0.001),
}


def _model(optimizer: str, *, functional: bool = False):
    """A small model with fixed names (so two instances share them), compiled and built."""
    keras = tf.keras
    if functional:
        inp = keras.Input((3,))
        hidden = keras.layers.Dense(4, name="hidden", activation="tanh")(inp)
        norm = keras.layers.LayerNormalization(name="norm")(hidden)
        out = keras.layers.Dense(2, name="out", use_bias=False)(norm)
        model = keras.Model(inp, out, name="net")
    else:
        model = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(4, name="hidden", activation="tanh"),
                keras.layers.Dense(2, name="out"),
            ],
            name="net",
        )
    model.compile(OPTIMIZERS[optimizer](keras), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _trained(optimizer: str, **kwargs):
    model = _model(optimizer, **kwargs)
    for _ in range(3):
        model.train_on_batch(X, Y)
    return model


def _state(model) -> list:
    return [v.numpy() for v in model.weights] + [v.numpy() for v in model.optimizer.variables]


def _assert_continues_alike(trained, restored):
    """Restored holds trained's state, and one more step keeps them equal (weights and optimizer)."""
    for a, b in zip(_state(trained), _state(restored)):
        np.testing.assert_array_equal(a, b)
    trained.train_on_batch(X, Y)
    restored.train_on_batch(X, Y)
    for a, b in zip(_state(trained), _state(restored)):
        np.testing.assert_allclose(a, b, atol=1e-6)


# RMSprop with momentum writes as many slots as a centered one without: only a `.keras` config tells them apart.
@pytest.mark.parametrize("optimizer", sorted(set(OPTIMIZERS) - {"rmsprop_momentum"}))
def test_keras3_checkpoint_onto_weights_h5_and_back(optimizer, tmp_path):
    """TF checkpoint -> `.weights.h5` that `load_weights` takes, and `.weights.h5` -> TF checkpoint, optimizer included."""
    trained = _trained(optimizer)
    src = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).write(
        str(tmp_path / "src" / "ckpt")
    )
    fresh = _model(optimizer)
    fresh.save_weights(str(tmp_path / "tpl.weights.h5"))
    out = tmp_path / "out.weights.h5"
    proc = run_cli("convert", src, out, f"--like={tmp_path / 'tpl.weights.h5'}", expect=0)
    assert "state file" not in proc.stdout
    fresh.load_weights(str(out))
    _assert_continues_alike(_copy_of(trained, optimizer, tmp_path), fresh)

    # Back: the trained model's own .weights.h5 onto a TF checkpoint template of a fresh model.
    trained = _trained(optimizer)
    trained.save_weights(str(tmp_path / "trained.weights.h5"))
    other = _model(optimizer)
    like = tf.train.Checkpoint(model=other, optimizer=other.optimizer).write(str(tmp_path / "tpl" / "ckpt"))
    run_cli("convert", tmp_path / "trained.weights.h5", f"{tmp_path / 'back'}/", f"--like={like}", expect=0)
    status = tf.train.Checkpoint(model=other, optimizer=other.optimizer).read(
        tf.train.latest_checkpoint(str(tmp_path / "back"))
    )
    status.assert_consumed()
    _assert_continues_alike(trained, other)


def _copy_of(model, optimizer, tmp_path):
    """Another instance holding `model`'s state (through Keras's own files), to step beside the converted one."""
    path = str(tmp_path / "reference.weights.h5")
    model.save_weights(path)
    twin = _model(optimizer)
    twin.load_weights(path)
    return twin


def test_converting_the_same_state_writes_what_keras_writes(tmp_path):
    """A `.weights.h5` written from a TF checkpoint holds, dataset by dataset, what `save_weights` writes."""
    trained = _trained("adam", functional=True)
    src = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).write(str(tmp_path / "ckpt"))
    trained.save_weights(str(tmp_path / "keras.weights.h5"))
    tpl = _model("adam", functional=True)
    tpl.save_weights(str(tmp_path / "tpl.weights.h5"))
    run_cli("convert", src, tmp_path / "out.weights.h5", f"--like={tmp_path / 'tpl.weights.h5'}", expect=0)
    with h5py.File(tmp_path / "out.weights.h5") as out, h5py.File(tmp_path / "keras.weights.h5") as keras:
        found = []
        out.visititems(lambda k, v: found.append(k) if isinstance(v, h5py.Dataset) else None)
        assert len(found) == 5 + 2 + 2 * 5  # hidden (2), norm (2), out (no bias), step, rate, 2 slots each
        for key in found:
            np.testing.assert_array_equal(out[key][()], keras[key][()], err_msg=key)


def test_keras_archive_as_template_loads_with_load_model(tmp_path):
    """`--like=TPL.keras` writes a `.keras` archive (TEMPLATE's config) that `load_model` restores, optimizer included."""
    trained = _trained("adam", functional=True)
    src = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).write(str(tmp_path / "ckpt"))
    _model("adam", functional=True).save(str(tmp_path / "tpl.keras"))
    run_cli("convert", src, tmp_path / "out.keras", f"--like={tmp_path / 'tpl.keras'}", expect=0)
    with zipfile.ZipFile(tmp_path / "out.keras") as z, zipfile.ZipFile(tmp_path / "tpl.keras") as t:
        assert z.read("config.json") == t.read("config.json")
    loaded = tf.keras.models.load_model(str(tmp_path / "out.keras"))
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), trained.predict(X, verbose=0))
    _assert_continues_alike(trained, loaded)


def test_rmsprop_with_momentum_needs_the_keras_archive(tmp_path):
    """Its `.weights.h5` cannot tell momentum from a centered mean gradient: the error says so; a `.keras` can."""
    trained = _trained("rmsprop_momentum")
    src = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).write(
        str(tmp_path / "src" / "ckpt")
    )
    fresh = _model("rmsprop_momentum")
    fresh.save_weights(str(tmp_path / "tpl.weights.h5"))
    proc = run_cli(
        "convert", src, tmp_path / "o.weights.h5", f"--like={tmp_path / 'tpl.weights.h5'}", expect=1
    )
    assert "which variable each slot belongs to is not known" in proc.stderr and ".keras" in proc.stderr
    fresh.save(str(tmp_path / "tpl.keras"))
    run_cli("convert", src, tmp_path / "out.keras", f"--like={tmp_path / 'tpl.keras'}", expect=0)
    loaded = tf.keras.models.load_model(str(tmp_path / "out.keras"))
    _assert_continues_alike(_copy_of(trained, "rmsprop_momentum", tmp_path), loaded)


def test_inspect_diff_and_map_read_keras_files(tmp_path):
    """inspect lists Keras's names, diff compares values, map pairs a TF checkpoint with a `.weights.h5`."""
    trained = _trained("rmsprop_centered", functional=True)
    trained.save_weights(str(tmp_path / "a.weights.h5"))
    src = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).write(str(tmp_path / "ckpt"))
    listed = json.loads(run_cli("inspect", tmp_path / "a.weights.h5", "--json", expect=0).stdout)
    text = json.dumps(listed)
    for name in ('"hidden/kernel', '"norm/gamma', "/hidden_kernel_average_gradient", "/iteration"):
        assert name in text, name
    assert run_cli("diff", src, tmp_path / "a.weights.h5").returncode == 0
    planned = json.loads(
        run_cli(
            "map", src, "--target", tmp_path / "a.weights.h5", "--optimizer_state", "--json", expect=0
        ).stdout
    )
    assert planned["unmapped"] == [] and planned["mismatched"] == []


def test_a_slot_of_another_meaning_is_refused(tmp_path):
    """Adam's second moment is not Adamax's infinity norm: the conversion names the slot it cannot fill."""
    trained = _trained("adam")
    trained.save_weights(str(tmp_path / "adam.weights.h5"))
    _model("adamax").save_weights(str(tmp_path / "adamax.weights.h5"))
    proc = run_cli(
        "convert", tmp_path / "adam.weights.h5", tmp_path / "out.weights.h5",
        f"--like={tmp_path / 'adamax.weights.h5'}", expect=1,
    )  # fmt: skip
    assert "net_hidden_kernel_norm' (adamax_u)" in proc.stderr and "_velocity' (adam_v)" in proc.stderr
    proc = run_cli(
        "convert", tmp_path / "adam.weights.h5", tmp_path / "out.weights.h5",
        f"--like={tmp_path / 'adamax.weights.h5'}", "--keep_unmapped", expect=1,
    )  # fmt: skip
    assert "goes unused" in proc.stderr
    assert not (tmp_path / "out.weights.h5").exists()


def test_custom_layer_variables_go_by_their_keys(tmp_path):
    """A layer whose variable names Keras's file does not tell keeps its keys, and map says so."""
    keras = tf.keras

    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    model = keras.Sequential(
        [keras.Input((3,)), Scale(name="scale"), keras.layers.Dense(1, name="d")], name="net"
    )
    model.save_weights(str(tmp_path / "m.weights.h5"))
    proc = run_cli(
        "map", tmp_path / "m.weights.h5", "--target", tmp_path / "m.weights.h5", "--json", expect=0
    )
    planned = json.loads(proc.stdout)
    targets = {m["target"] for m in planned["mapped"]}
    assert "layers/scale/vars/0" in targets and "net/d/kernel" in targets
    assert any("layers/scale" in note for note in planned.get("notes", [])), planned


def test_a_weights_file_that_is_not_keras_is_one_error(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    proc = run_cli("inspect", bad, expect=1)
    assert "not a Keras 3 weights file" in proc.stderr and "Traceback" not in proc.stderr
