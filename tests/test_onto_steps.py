"""The step count and optimizer state onto templates beyond the TF 2.11+ Keras optimizer.

- the step count carried over (`global_step` onto `iter`/`iteration`) is
  checked against TF1 Adam's `beta1_power`/`beta2_power`: a `global_step`
  that does not count the optimizer's steps is refused, naming both values;
- legacy Keras optimizers (`tf.keras.optimizers.legacy.*`, eager): TF1 slots
  onto `.../.OPTIMIZER_SLOT/optimizer/m`, hyperparameters kept;
- the way back: an eager Keras checkpoint onto a TF1 graph's `Saver`
  checkpoint, `beta1_power`/`beta2_power` derived from the Keras step count.

Each conversion is checked as TF restores it, then by one more training step
on both sides (within 1e-6).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import est_ckpt
from est_ckpt.errors import MismatchError
from est_ckpt.format import checkpoint
from est_ckpt.tools import onto
from tests.onto_models import OPTIMIZERS as _OPTIMIZERS
from tests.onto_models import graph as _graph
from tests.onto_models import keras as _keras
from tests.onto_models import keras_step as _keras_step
from tests.onto_models import train_tf1 as _train_tf1

# Legacy Keras optimizers with the TF1 optimizers' hyperparameters of `_OPTIMIZERS`.
_LEGACY = {
    "adam": lambda tf: tf.keras.optimizers.legacy.Adam(0.1, beta_1=0.8, beta_2=0.95, epsilon=1e-8),
    "adagrad": lambda tf: tf.keras.optimizers.legacy.Adagrad(
        0.1, initial_accumulator_value=0.1, epsilon=1e-10
    ),
    "ftrl": lambda tf: tf.keras.optimizers.legacy.Ftrl(
        0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01
    ),
    "rmsprop": lambda tf: tf.keras.optimizers.legacy.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-7),
}


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def _legacy(tf, make_optimizer):
    """A Keras model with a legacy optimizer whose slots exist (a zero-gradient step creates them)."""
    model = tf.keras.Sequential([tf.keras.layers.Dense(3, name="dense")])
    model.build((None, 4))
    optimizer = make_optimizer(tf)
    optimizer.apply_gradients((tf.zeros_like(v), v) for v in model.trainable_variables)
    return model, optimizer


def _reset_global_step(tf, make_optimizer, path: str, *, steps: int, step: int):
    """A TF1 graph trained `steps` steps whose saved `global_step` is `step` (reset, or counted elsewhere)."""
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        train_op = _graph(tf, make_optimizer(tf1))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for _ in range(steps):
                sess.run(train_op)
            sess.run(tf1.train.get_global_step().assign(step))
            tf1.train.Saver().save(sess, path)


def _assert_weights(model, expected: dict):
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), expected["dense/kernel"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(model.layers[0].bias.numpy(), expected["dense/bias"], atol=1e-6, rtol=0)


@pytest.mark.keras2
@pytest.mark.parametrize("name", sorted(_LEGACY))
def test_tf1_optimizer_onto_legacy_keras_optimizer(tf, tmp_path, name):
    """Slots onto `.OPTIMIZER_SLOT/optimizer/<slot>`, `global_step` onto `iter`; one more step agrees."""
    tf1_opt = _OPTIMIZERS[name][0]
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, tf1_opt, src, steps=3)
    model, optimizer = _legacy(tf, _LEGACY[name])
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))

    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    mapped = {a.target: a.source_name for a in report.plan.assignments}
    slot = "model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/"
    first = {"adam": "m", "adagrad": "accumulator", "ftrl": "accumulator", "rmsprop": "rms"}[name]
    suffix = {"adam": "Adam", "adagrad": "Adagrad", "ftrl": "Ftrl", "rmsprop": "RMSProp"}[name]
    assert mapped[slot + first] == f"dense/kernel/{suffix}"
    assert report.plan.mapping()[next(t for t in mapped if t.endswith("iter"))] == "global_step"
    # Hyperparameters are not state: the template's, listed as kept.
    assert "optimizer/learning_rate/.ATTRIBUTES/VARIABLE_VALUE" in report.kept
    if name == "adam":
        assert "optimizer/beta_1/.ATTRIBUTES/VARIABLE_VALUE" in report.kept
        assert len(report.step_checks) == 2 and all("agrees" in n for n in report.step_checks)

    model, optimizer = _legacy(tf, _LEGACY[name])
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(report.prefix).assert_consumed()
    assert int(optimizer.iterations.numpy()) == 3
    _keras_step(tf, model, optimizer)
    _assert_weights(model, _train_tf1(tf, tf1_opt, None, steps=1, restore=src))


@pytest.mark.keras2
@pytest.mark.parametrize("reset", [0, 5])
def test_global_step_that_does_not_count_adam_steps_is_refused(tf, tmp_path, reset):
    """`global_step` reset (or counted elsewhere) against `beta1_power`: an error naming keys and values."""
    tf1_opt = _OPTIMIZERS["adam"][0]
    src = str(tmp_path / "src" / "model.ckpt")
    _reset_global_step(tf, tf1_opt, src, steps=3, step=reset)
    model, optimizer = _legacy(tf, _LEGACY["adam"])
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    beta1_power = 0.8**4  # three steps taken
    with pytest.raises(MismatchError) as e:
        est_ckpt.convert_checkpoint(src, str(tmp_path / "out" / "ckpt"), like=like)
    message = str(e.value)
    assert f"'global_step' = {reset}" in message and "'beta1_power' = " in message
    assert f"{np.float32(beta1_power):.6g}"[:6] in message  # SRC's power
    assert f"{0.8 ** (reset + 1):.6g}"[:6] in message  # what the step count would give
    assert "3 steps" in message
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.keras2
def test_step_check_is_reported_when_the_template_has_no_beta(tf, tmp_path):
    """A TF 2.11+ Keras template keeps beta_1 out of its checkpoint: the check is reported as not made."""
    tf1_opt, keras_opt = _OPTIMIZERS["adam"]
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, tf1_opt, src, steps=2)
    model, optimizer = _keras(tf, keras_opt)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    assert len(report.step_checks) == 2
    assert all("not checked" in n and "does not record beta_" in n for n in report.step_checks)


def _keras_trained(tf, make_optimizer, steps: int):
    """An eager Keras model trained `steps` steps from the TF1 graph's initial weights."""
    model, optimizer = _keras(tf, make_optimizer)
    rng = np.random.RandomState(0)
    model.layers[0].kernel.assign(rng.randn(4, 3).astype(np.float32))
    model.layers[0].bias.assign(rng.randn(3).astype(np.float32))
    for _ in range(steps):
        _keras_step(tf, model, optimizer)
    return model, optimizer


@pytest.mark.keras2
@pytest.mark.parametrize("name", sorted(_OPTIMIZERS))
def test_keras_onto_tf1_graph_template(tf, tmp_path, name):
    """The way back: Saver.restore of DST plus one step equals one more Keras step (within 1e-6)."""
    tf1_opt, keras_opt = _OPTIMIZERS[name]
    like = str(tmp_path / "tpl" / "model.ckpt")
    _train_tf1(tf, tf1_opt, like, steps=0)  # first: a TF1 graph's layers invalidate Keras models made before
    model, optimizer = _keras_trained(tf, keras_opt, steps=3)
    src = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "keras" / "ckpt"))
    _keras_step(tf, model, optimizer)
    expected = {"dense/kernel": model.layers[0].kernel.numpy(), "dense/bias": model.layers[0].bias.numpy()}

    report = onto.convert_onto(src, str(tmp_path / "out" / "model.ckpt"), like=like)
    mapped = report.plan.mapping()
    assert mapped["global_step"] == "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
    if name == "adam":
        assert (
            report.plan.assignments
            and {a.target: a.source_name for a in report.plan.assignments}["dense/kernel/Adam"]
            == "m/dense/kernel"
        )
        computed = dict(report.computed)
        assert computed == {
            "beta1_power": pytest.approx(np.float32(0.8) ** 4, rel=1e-6),
            "beta2_power": pytest.approx(np.float32(0.95) ** 4, rel=1e-6),
        }
        # One small extra shard holds them; every other shard is SRC's or TEMPLATE's, by hard link.
        written = checkpoint.read_checkpoint(report.prefix).bundle
        assert written.shard_sizes[-1] == 8
        inputs = [checkpoint.read_checkpoint(p).bundle for p in (src, like)]
        inputs = [b.data_path(i) for b in inputs for i in range(len(b.shard_sizes))]
        for i in range(len(written.shard_sizes) - 1):
            assert any(os.path.samefile(written.data_path(i), p) for p in inputs)
    else:
        assert not report.computed

    reader = tf.train.load_checkpoint(report.prefix)
    template = tf.train.load_checkpoint(like)
    assert reader.get_variable_to_shape_map() == template.get_variable_to_shape_map()
    assert int(reader.get_tensor("global_step")) == 3
    after = _train_tf1(tf, tf1_opt, None, steps=1, restore=report.prefix)
    for key, value in expected.items():
        np.testing.assert_allclose(after[key], value, atol=1e-6, rtol=0)


@pytest.mark.keras2
def test_momentum_onto_legacy_sgd_with_decay_is_refused(tf, tmp_path):
    """A legacy Keras SGD whose `decay` changes the learning rate with the step: the Momentum slots are refused."""
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, lambda tf1: tf1.train.MomentumOptimizer(0.1, momentum=0.9), src, steps=2)
    model, optimizer = _legacy(tf, lambda tf: tf.keras.optimizers.legacy.SGD(0.1, momentum=0.9, decay=0.01))
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    with pytest.raises(
        est_ckpt.errors.ConversionError, match=r"'optimizer/decay/.ATTRIBUTES/VARIABLE_VALUE' = 0.01"
    ):
        est_ckpt.convert_checkpoint(src, str(tmp_path / "out" / "ckpt"), like=like)
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.keras2
def test_centered_rmsprop_onto_plain_rmsprop_is_refused(tf, tmp_path):
    """A centered TF1 RMSProp (mean gradient in `RMSProp_1`) onto a plain Keras RMSprop: an error naming it."""
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, lambda tf1: tf1.train.RMSPropOptimizer(0.01, momentum=0.5, centered=True), src, steps=2)
    model, optimizer = _keras(tf, lambda tf: tf.keras.optimizers.RMSprop(0.01, momentum=0.5))
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    with pytest.raises(MismatchError, match=r"'dense/\w+/RMSProp_1' cannot become .*centered RMSProp"):
        est_ckpt.convert_checkpoint(src, str(tmp_path / "out" / "ckpt"), like=like)


@pytest.mark.keras2
def test_centered_rmsprop_onto_centered_keras_rmsprop(tf, tmp_path):
    """Centered on both sides: the mean gradient and the momentum find their slots; one more step agrees."""
    tf1_opt = lambda tf1: tf1.train.RMSPropOptimizer(0.01, momentum=0.5, epsilon=1e-7, centered=True)  # noqa: E731
    keras_opt = lambda tf: tf.keras.optimizers.RMSprop(0.01, momentum=0.5, epsilon=1e-7, centered=True)  # noqa: E731
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, tf1_opt, src, steps=3)
    model, optimizer = _keras(tf, keras_opt)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    mapped = {a.target: a.source_name for a in report.plan.assignments}
    assert mapped["average_gradient/dense/kernel"] == "dense/kernel/RMSProp_1"
    assert mapped["momentum/dense/kernel"] == "dense/kernel/RMSProp_2"
    model, optimizer = _keras(tf, keras_opt)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(report.prefix).assert_consumed()
    _keras_step(tf, model, optimizer)
    _assert_weights(model, _train_tf1(tf, tf1_opt, None, steps=1, restore=src))


_EMB = np.arange(40, dtype=np.float32).reshape(10, 4)
_KERNEL = np.arange(8, dtype=np.float32).reshape(4, 2) + 100


def _whole_template(tf, path: str) -> str:
    module = tf.Module()
    module.emb = tf.Variable(tf.zeros([10, 4]), name="emb")
    module.kernel = tf.Variable(tf.zeros([4, 2]), name="dense/kernel")
    return tf.train.Checkpoint(model=module).write(path)


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("kind", ["tf1_slices", "tf2_parts"])
def test_partitioned_source_onto_whole_template_variable(tf, tmp_path, kind, axis):
    """TF1 slices and TF2 parts saved one by one become one partitioned entry, index only; TF restores it whole."""
    from tests import fixtures

    build = fixtures.build_partitioned_ckpt if kind == "tf1_slices" else fixtures.build_partitioned_tf2_ckpt
    src = build(str(tmp_path / "src"), axis=axis)
    like = _whole_template(tf, str(tmp_path / "tpl" / "ckpt"))
    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    written = checkpoint.read_checkpoint(report.prefix).bundle
    assert written.entries["model/emb/.ATTRIBUTES/VARIABLE_VALUE"].slices  # joined, not copied
    module = tf.Module()
    module.emb = tf.Variable(tf.zeros([10, 4]), name="emb")
    module.kernel = tf.Variable(tf.zeros([4, 2]), name="dense/kernel")
    tf.train.Checkpoint(model=module).read(report.prefix).assert_consumed()
    np.testing.assert_array_equal(module.emb.numpy(), _EMB)
    np.testing.assert_array_equal(module.kernel.numpy(), _KERNEL)


def test_whole_source_onto_template_in_parts_is_refused(tf, tmp_path):
    """Splitting a whole tensor into the template's parts would read its bytes: an error naming them."""
    from tests import fixtures

    src = _whole_template(tf, str(tmp_path / "src" / "ckpt"))
    like = fixtures.build_partitioned_tf2_ckpt(str(tmp_path / "tpl"))
    with pytest.raises(
        est_ckpt.errors.ConversionError, match=r"'emb': the template saves it in parts one by one"
    ):
        est_ckpt.convert_checkpoint(src, str(tmp_path / "out" / "ckpt"), like=like)
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.keras2
def test_cli_way_back_json_lists_the_derived_powers(tf, tmp_path):
    """`convert --like --json` onto a TF1 Adam template lists `beta1_power`/`beta2_power` under `computed`."""
    import json
    import subprocess
    import sys

    tf1_opt, keras_opt = _OPTIMIZERS["adam"]
    like = str(tmp_path / "tpl" / "model.ckpt")
    _train_tf1(tf, tf1_opt, like, steps=0)
    model, optimizer = _keras_trained(tf, keras_opt, steps=2)
    src = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "keras" / "ckpt"))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "est_ckpt",
            "convert",
            src,
            str(tmp_path / "out" / "model.ckpt"),
            f"--like={like}",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["computed"] == {
        "beta1_power": pytest.approx(0.8**3, rel=1e-6),
        "beta2_power": pytest.approx(0.95**3, rel=1e-6),
    }
    assert {"target": "global_step", "source_key": "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"} in out[
        "mapped"
    ]
    assert "beta1_power" not in out["kept"] and out["step_checks"] == []
    reader = tf.train.load_checkpoint(out["prefix"])
    assert reader.get_tensor("beta1_power") == np.float32(out["computed"]["beta1_power"])


@pytest.mark.keras2
def test_keras_sgd_momentum_onto_legacy_keras_sgd(tf, tmp_path):
    """Keras SGD's velocity means the same in the TF 2.11+ (`m/<v>`) and legacy (`.OPTIMIZER_SLOT/.../momentum`) optimizer."""
    model, optimizer = _keras_trained(tf, lambda tf: tf.keras.optimizers.SGD(0.1, momentum=0.9), steps=3)
    src = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "keras" / "ckpt"))
    _keras_step(tf, model, optimizer)
    legacy_sgd = lambda tf: tf.keras.optimizers.legacy.SGD(0.1, momentum=0.9)  # noqa: E731
    template_model, template_optimizer = _legacy(tf, legacy_sgd)
    like = tf.train.Checkpoint(model=template_model, optimizer=template_optimizer).save(
        str(tmp_path / "tpl" / "ckpt")
    )
    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    mapped = {a.target: a.source_name for a in report.plan.assignments}
    assert mapped["model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/momentum"] == "m/dense/kernel"
    restored, restored_optimizer = _legacy(tf, legacy_sgd)
    tf.train.Checkpoint(model=restored, optimizer=restored_optimizer).restore(report.prefix).assert_consumed()
    assert int(restored_optimizer.iterations.numpy()) == 3
    _keras_step(tf, restored, restored_optimizer)
    _assert_weights(
        restored, {"dense/kernel": model.layers[0].kernel.numpy(), "dense/bias": model.layers[0].bias.numpy()}
    )


@pytest.mark.keras2
def test_plain_sgd_both_ways(tf, tmp_path):
    """TF1 GradientDescent and Keras SGD have no slots: the weights and the step count carry over both ways."""
    tf1_opt = lambda tf1: tf1.train.GradientDescentOptimizer(0.1)  # noqa: E731
    keras_opt = lambda tf: tf.keras.optimizers.SGD(0.1)  # noqa: E731
    tf1_dir = str(tmp_path / "tf1" / "model.ckpt")
    _train_tf1(tf, tf1_opt, tf1_dir, steps=2)
    model, optimizer = _keras(tf, keras_opt)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    # Keras SGD has its `m` variables even without momentum: nothing in SRC feeds them, so keep them.
    report = onto.convert_onto(tf1_dir, str(tmp_path / "keras" / "ckpt"), like=like, keep_unmapped=True)
    assert {a.target: a.source_name for a in report.plan.assignments}["iteration"] == "global_step"
    assert "optimizer/_variables/1/.ATTRIBUTES/VARIABLE_VALUE" in report.kept
    back = onto.convert_onto(report.prefix, str(tmp_path / "back" / "model.ckpt"), like=tf1_dir)
    source, round_trip = tf.train.load_checkpoint(tf1_dir), tf.train.load_checkpoint(back.prefix)
    for key in ("dense/kernel", "dense/bias", "global_step"):
        np.testing.assert_array_equal(round_trip.get_tensor(key), source.get_tensor(key))


@pytest.mark.keras2
def test_way_back_without_a_step_keeps_the_template_powers(tf, tmp_path):
    """A Keras model checkpoint without an optimizer onto a TF1 Adam template: keep_unmapped keeps its powers."""
    like = str(tmp_path / "tpl" / "model.ckpt")
    _train_tf1(tf, _OPTIMIZERS["adam"][0], like, steps=1)
    model, _ = _keras_trained(tf, _OPTIMIZERS["adam"][1], steps=0)
    src = tf.train.Checkpoint(model=model).save(str(tmp_path / "keras" / "ckpt"))
    with pytest.raises(est_ckpt.errors.UnmappedVariablesError, match="dense/kernel/Adam"):
        onto.convert_onto(src, str(tmp_path / "out" / "model.ckpt"), like=like)
    report = onto.convert_onto(src, str(tmp_path / "out" / "model.ckpt"), like=like, keep_unmapped=True)
    assert not report.computed and {"beta1_power", "beta2_power", "global_step"} <= set(report.kept)
    out, template = tf.train.load_checkpoint(report.prefix), tf.train.load_checkpoint(like)
    assert out.get_tensor("beta1_power") == template.get_tensor("beta1_power")


@pytest.mark.keras2
def test_step_check_tolerates_float32_rounding_over_many_steps(tf, tmp_path):
    """300 Adam steps: beta ** 301 in float32, rounded 300 times, still agrees with `global_step`."""
    tf1_opt = lambda tf1: tf1.train.AdamOptimizer(0.001, beta1=0.9, beta2=0.999)  # noqa: E731
    src = str(tmp_path / "src" / "model.ckpt")
    _train_tf1(tf, tf1_opt, src, steps=300)
    legacy = lambda tf: tf.keras.optimizers.legacy.Adam(0.001, beta_1=0.9, beta_2=0.999)  # noqa: E731
    model, optimizer = _legacy(tf, legacy)
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    report = onto.convert_onto(src, str(tmp_path / "out" / "ckpt"), like=like)
    assert [n.split(" agrees ")[0] for n in report.step_checks] == ["'global_step' = 300"] * 2


@pytest.mark.keras2
def test_cli_step_mismatch_is_one_line_and_exit_1(tf, tmp_path):
    """`est-ckpt convert --like` on a reset `global_step`: one line naming both keys on stderr, exit 1, no DST."""
    import subprocess
    import sys

    src = str(tmp_path / "src" / "model.ckpt")
    _reset_global_step(tf, _OPTIMIZERS["adam"][0], src, steps=2, step=0)
    model, optimizer = _legacy(tf, _LEGACY["adam"])
    like = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "tpl" / "ckpt"))
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-m", "est_ckpt", "convert", src, str(tmp_path / "out" / "ckpt"), f"--like={like}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "'global_step' = 0" in proc.stderr and "'beta1_power' = 0.512" in proc.stderr
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.keras2
def test_legacy_keras_adam_onto_tf1_graph_template(tf, tmp_path):
    """The way back from a legacy Keras optimizer: `.OPTIMIZER_SLOT` m, v onto `Adam`, `Adam_1`; powers derived."""
    tf1_opt = _OPTIMIZERS["adam"][0]
    like = str(tmp_path / "tpl" / "model.ckpt")
    _train_tf1(tf, tf1_opt, like, steps=0)
    model, optimizer = _legacy(tf, _LEGACY["adam"])  # one zero-gradient step: iter = 1
    rng = np.random.RandomState(0)
    model.layers[0].kernel.assign(rng.randn(4, 3).astype(np.float32))
    model.layers[0].bias.assign(rng.randn(3).astype(np.float32))
    for _ in range(2):
        _keras_step(tf, model, optimizer)
    src = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "keras" / "ckpt"))
    _keras_step(tf, model, optimizer)
    expected = {"dense/kernel": model.layers[0].kernel.numpy(), "dense/bias": model.layers[0].bias.numpy()}

    report = onto.convert_onto(src, str(tmp_path / "out" / "model.ckpt"), like=like)
    mapped = {a.target: a.source_name for a in report.plan.assignments}
    assert mapped["dense/kernel/Adam_1"] == "model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/v"
    assert dict(report.computed) == {
        "beta1_power": pytest.approx(0.8**4, rel=1e-6),
        "beta2_power": pytest.approx(0.95**4, rel=1e-6),
    }
    after = _train_tf1(tf, tf1_opt, None, steps=1, restore=report.prefix)
    for key, value in expected.items():
        np.testing.assert_allclose(after[key], value, atol=1e-6, rtol=0)
