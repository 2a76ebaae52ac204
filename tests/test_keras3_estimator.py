"""A v1 canned `DNNClassifier` continues under Keras 3, and its weights predict alike on Keras 3's PyTorch backend.

Estimator (TF <= 2.15) and Keras 3 (TF 2.16+) never share an environment: the
Estimator environment's Python (`EST_CKPT_ESTIMATOR_PYTHON`, which `make test` sets)
trains the canned model (`tests/estimator_job.py`) and takes TF1's next step; this
environment converts its model dir with est_ckpt onto the Keras model it becomes
(a `.weights.h5` and a TF checkpoint), takes Keras 3's next step, and compares.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.cli import run_cli, run_estimator_job

pytestmark = pytest.mark.keras3
tf = pytest.importorskip("tensorflow")
pytest.importorskip("h5py")

X = np.random.RandomState(0).randn(16, 3).astype(np.float32)
Y = (np.random.RandomState(1).rand(16, 1) > 0.5).astype(np.int64)
# Keras 3's optimizer as TF1's: the same learning rate and epsilon (Adagrad's TF1 form has none).
KERAS_OPTIMIZERS = {
    "Adagrad": "keras.optimizers.Adagrad(0.05, epsilon=1e-12)",
    "Adam": "keras.optimizers.Adam(0.01, epsilon=1e-8)",
}
# The Keras model a team writes for `DNNClassifier(hidden_units=[8])`, its layers named as the canned
# graph's scopes so that every name maps as it is; the v1 head sums the loss over the batch.
MODEL = """
model = keras.Sequential(
    [keras.Input((3,)), keras.layers.Dense(8, "relu", name="hiddenlayer_0"), keras.layers.Dense(1, name="logits")],
    name="dnn",
)
model.compile({optimizer}, keras.losses.BinaryCrossentropy(from_logits=True, reduction="sum"))
model.optimizer.build(model.trainable_variables)
"""


@pytest.fixture(scope="module", params=sorted(KERAS_OPTIMIZERS))
def canned(request, tmp_path_factory):
    """`(optimizer, workdir)`: the canned model trained 5 steps, its logits and TF1's 6th step."""
    workdir = tmp_path_factory.mktemp(f"canned_{request.param}")
    np.savez(workdir / "data.npz", x=X, y=Y)
    run_estimator_job("estimator_job.py", workdir, request.param)
    return request.param, workdir


def _run(argv, **kwargs) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _keras_model(optimizer: str):
    import keras

    scope = {"keras": keras}
    exec(MODEL.format(optimizer=KERAS_OPTIMIZERS[optimizer]), scope)
    return scope["model"]


def _slots(optimizer: str, model) -> dict:
    """TF1 slot name -> Keras 3 slot, by the optimizer's own edges to its variables."""
    opt, out = model.optimizer, {}
    for i, v in enumerate(model.trainable_variables):
        name = v.path  # 'dnn/hiddenlayer_0/kernel': the canned graph's name
        if optimizer == "Adam":
            out[f"{name}/t_0/Adam"], out[f"{name}/t_0/Adam_1"] = opt._momentums[i], opt._velocities[i]
        else:
            out[f"{name}/t_0/Adagrad"] = opt._accumulators[i]
    return out


@pytest.mark.parametrize("route", ["weights.h5", "tf_checkpoint"])
def test_canned_dnn_classifier_takes_tf1s_next_step_under_keras3(canned, route, tmp_path):
    optimizer, workdir = canned
    model = _keras_model(optimizer)
    if route == "weights.h5":
        model.save_weights(str(tmp_path / "tpl.weights.h5"))
        out = tmp_path / "model.weights.h5"
        run_cli("convert", workdir / "model_dir", out, f"--like={tmp_path / 'tpl.weights.h5'}", expect=0)
        model = _keras_model(optimizer)
        model.load_weights(str(out))
    else:
        like = tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(
            str(tmp_path / "tpl" / "ckpt")
        )
        run_cli("convert", workdir / "model_dir", f"{tmp_path / 'out'}/", f"--like={like}", expect=0)
        model = _keras_model(optimizer)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        checkpoint.read(tf.train.latest_checkpoint(str(tmp_path / "out"))).assert_consumed()
    assert int(model.optimizer.iterations.numpy()) == 5
    model.train_on_batch(X, Y.astype(np.float32))
    expected = np.load(workdir / "next.npz")
    assert int(model.optimizer.iterations.numpy()) == int(expected["global_step"]) == 6
    got = {v.path: v for v in model.trainable_variables}
    got.update(_slots(optimizer, model))
    # Every variable and slot of TF1's step; Adam's beta powers are Keras's step count.
    assert set(got) == {k for k in expected.files if k != "global_step" and not k.endswith("_power")}
    # Within 1e-6, relative for the optimizer's sums (an Adagrad accumulator near 60 has a float32 step of 4e-6;
    # TF1 and Keras 3 sum a gradient's squares in their own order).
    for name, variable in got.items():
        np.testing.assert_allclose(variable.numpy(), expected[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_weights_h5_from_estimator_predicts_alike_on_the_pytorch_backend(canned, tmp_path):
    """The converted `.weights.h5`, loaded by Keras 3 on PyTorch (no TensorFlow in that process's model), gives
    the canned Estimator's own logits."""
    pytest.importorskip("torch")
    optimizer, workdir = canned
    _keras_model(optimizer).save_weights(str(tmp_path / "tpl.weights.h5"))
    out = tmp_path / "model.weights.h5"
    run_cli("convert", workdir / "model_dir", out, f"--like={tmp_path / 'tpl.weights.h5'}", expect=0)
    script = "\n".join(
        [
            "import sys",
            "import numpy as np",
            "import keras",
            'assert keras.backend.backend() == "torch", keras.backend.backend()',
            MODEL.format(optimizer=KERAS_OPTIMIZERS[optimizer]),
            "model.load_weights(sys.argv[1])",
            "np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), verbose=0)))",
        ]
    )
    np.save(tmp_path / "x.npy", X)
    _run(
        [sys.executable, "-c", script, str(out), str(tmp_path / "x.npy"), str(tmp_path / "logits.npy")],
        env={**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=tmp_path,
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "logits.npy"), np.load(workdir / "logits.npy"), rtol=0, atol=1e-5
    )
