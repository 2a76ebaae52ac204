"""A v1 canned Estimator's checkpoint onto its v2 variant's: `train()` continues with the Keras optimizer.

`tf.compat.v1.estimator.DNNClassifier` (TF1 optimizers: slots
`dnn/hiddenlayer_0/kernel/t_0/Adagrad`, `dnn/head/beta1_power`) is converted
onto the first checkpoint of `tf.estimator.DNNClassifier` with the same
columns and hidden units (a Keras optimizer in graph mode: slots
`training/Adagrad/dnn/hiddenlayer_0/kernel/accumulator`, hyperparameters
`training/Adam/beta_1` ...). The v2 Estimator then trains on from DST: its
step continues, its weights start at the source's values, and one more step
agrees with one more step of the v1 Estimator (within 1e-6).
"""

from __future__ import annotations

import numpy as np
import pytest

import est_ckpt
from est_ckpt.tools import onto

pytestmark = pytest.mark.estimator


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def _input_fn():
    import tensorflow as tf

    x = np.random.RandomState(0).randn(16, 4).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return tf.data.Dataset.from_tensors(({"x": x}, y)).repeat()


# v1 takes the optimizer's name (its default learning rate, 0.05), v2 a Keras optimizer with the same
# hyperparameters (v2's own default learning rate is Keras', 0.001; hyperparameters are never converted).
_KERAS = {
    "Adagrad": lambda tf: tf.keras.optimizers.legacy.Adagrad(0.05, epsilon=1e-10),
    "Adam": lambda tf: tf.keras.optimizers.legacy.Adam(0.05, epsilon=1e-8),
}


def _estimators(tf, optimizer: str, v1_dir: str, v2_dir: str):
    columns = [tf.feature_column.numeric_column("x", shape=(4,))]
    common = dict(hidden_units=[5, 3], feature_columns=columns)
    v1 = tf.compat.v1.estimator.DNNClassifier(model_dir=v1_dir, optimizer=optimizer, **common)
    # v1 sums the loss over the batch, v2 averages it by default: the same loss for the same steps.
    v2 = tf.estimator.DNNClassifier(
        model_dir=v2_dir,
        optimizer=lambda: _KERAS[optimizer](tf),
        loss_reduction=tf.keras.losses.Reduction.SUM,
        **common,
    )
    return v1, v2


_WEIGHTS = [f"dnn/hiddenlayer_{i}/{w}" for i in (0, 1) for w in ("kernel", "bias")] + [
    "dnn/logits/kernel",
    "dnn/logits/bias",
]


@pytest.mark.parametrize("optimizer", ["Adagrad", "Adam"])
def test_v1_canned_dnn_onto_v2_then_train_continues(tf, tmp_path, optimizer):
    v1, template_estimator = _estimators(tf, optimizer, str(tmp_path / "v1"), str(tmp_path / "template"))
    v1.train(_input_fn, steps=3)
    template_estimator.train(_input_fn, steps=1)
    src = tf.train.latest_checkpoint(str(tmp_path / "v1"))
    like = tf.train.latest_checkpoint(str(tmp_path / "template"))

    report = onto.convert_onto(src, str(tmp_path / "v2") + "/", like=like)
    mapped = {a.target: a.source_name for a in report.plan.assignments}
    if optimizer == "Adagrad":
        slot = "training/Adagrad/dnn/hiddenlayer_0/kernel/accumulator"
        assert mapped[slot] == "dnn/hiddenlayer_0/kernel/t_0/Adagrad"
        assert set(report.kept) == {"training/Adagrad/decay", "training/Adagrad/learning_rate"}
    else:
        assert mapped["training/Adam/dnn/logits/bias/v"] == "dnn/logits/bias/t_0/Adam_1"
        assert "training/Adam/beta_1" in report.kept
        assert [n.split(" agrees ")[0] for n in report.step_checks] == ["'global_step' = 3"] * 2
    dst, source, template = (tf.train.load_checkpoint(p) for p in (report.prefix, src, like))
    assert dst.get_variable_to_shape_map() == template.get_variable_to_shape_map()
    for target, source_name in mapped.items():
        np.testing.assert_array_equal(dst.get_tensor(target), source.get_tensor(source_name))

    # The v2 Estimator trains on from DST; the v1 one from SRC: the same step, the same weights.
    v1_more, v2 = _estimators(tf, optimizer, str(tmp_path / "v1"), str(tmp_path / "v2"))
    assert tf.train.latest_checkpoint(str(tmp_path / "v2")) == report.prefix
    v2.train(_input_fn, steps=1)
    v1_more.train(_input_fn, steps=1)
    after_v1 = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "v1")))
    after_v2 = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "v2")))
    assert int(after_v2.get_tensor("global_step")) == int(after_v1.get_tensor("global_step")) == 4
    for name in _WEIGHTS:
        assert not np.array_equal(after_v2.get_tensor(name), source.get_tensor(name))
        np.testing.assert_allclose(after_v2.get_tensor(name), after_v1.get_tensor(name), atol=1e-6, rtol=0)


def test_v1_canned_adam_with_reset_global_step_is_refused(tf, tmp_path):
    """A v1 checkpoint whose `global_step` no longer counts Adam's steps: refused, naming the scoped power."""
    v1, template_estimator = _estimators(tf, "Adam", str(tmp_path / "v1"), str(tmp_path / "template"))
    v1.train(_input_fn, steps=2)
    template_estimator.train(_input_fn, steps=1)
    src = tf.train.latest_checkpoint(str(tmp_path / "v1"))
    reset = str(tmp_path / "reset" / "model.ckpt")
    reader = tf.train.load_checkpoint(src)
    with tf.Graph().as_default():
        variables = [
            tf.compat.v1.Variable(np.int64(0) if k == "global_step" else reader.get_tensor(k), name=k)
            for k in reader.get_variable_to_shape_map()
        ]
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.train.Saver(variables).save(sess, reset)
    with pytest.raises(est_ckpt.errors.MismatchError, match=r"'global_step' = 0 .*'dnn/head/beta1_power' = "):
        est_ckpt.convert_checkpoint(
            reset, str(tmp_path / "v2") + "/", like=tf.train.latest_checkpoint(str(tmp_path / "template"))
        )


def test_v2_canned_adam_back_onto_v1(tf, tmp_path):
    """The way back: v2 `training/Adam/<v>/m` onto v1 `<v>/t_0/Adam`, `dnn/head/beta1_power` derived; in step."""
    v1_template, v2 = _estimators(tf, "Adam", str(tmp_path / "template"), str(tmp_path / "v2"))
    v2.train(_input_fn, steps=3)
    v1_template.train(_input_fn, steps=1)
    src = tf.train.latest_checkpoint(str(tmp_path / "v2"))
    like = tf.train.latest_checkpoint(str(tmp_path / "template"))
    report = onto.convert_onto(src, str(tmp_path / "v1") + "/", like=like)
    mapped = {a.target: a.source_name for a in report.plan.assignments}
    assert mapped["dnn/logits/kernel/t_0/Adam"] == "training/Adam/dnn/logits/kernel/m"
    computed = dict(report.computed)
    assert computed == {
        "dnn/head/beta1_power": pytest.approx(0.9**4, rel=1e-6),
        "dnn/head/beta2_power": pytest.approx(0.999**4, rel=1e-6),
    }

    v1, v2_more = _estimators(tf, "Adam", str(tmp_path / "v1"), str(tmp_path / "v2"))
    v1.train(_input_fn, steps=1)
    v2_more.train(_input_fn, steps=1)
    after_v1 = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "v1")))
    after_v2 = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "v2")))
    assert int(after_v1.get_tensor("global_step")) == 4
    for name in _WEIGHTS:
        np.testing.assert_allclose(after_v1.get_tensor(name), after_v2.get_tensor(name), atol=1e-6, rtol=0)
