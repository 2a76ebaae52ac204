"""Tests of `est_ckpt.warm_start`, `warm_start_settings` and `build_warm_start_op` with real TensorFlow.

Several tests first reproduce what TensorFlow 2.15 does wrong (issue 4), then check ours.
"""

from __future__ import annotations

import copy
import logging
import os
import pickle

import numpy as np
import pytest

from tests.fixtures import VV

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

import est_ckpt  # noqa: E402
from est_ckpt.errors import AmbiguousNameError, MismatchError, UnusedMappingError  # noqa: E402
from est_ckpt.tf.warm_starting import build_warm_start_op  # noqa: E402

EMB = np.arange(40, dtype=np.float32).reshape(10, 4)
KERNEL = np.arange(8, dtype=np.float32).reshape(4, 2) + 100


class _Records(logging.Handler):
    """Collects TF's log records from `start()` on.

    Start after building checkpoint fixtures: their builders quiet TF's logger.
    """

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self._logger = tf.get_logger()
        self._level = self._logger.level

    def start(self):
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def stop(self):
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def emit(self, record):
        self.records.append(record)

    def messages(self, level, contains=""):
        return [r.getMessage() for r in self.records if r.levelno == level and contains in r.getMessage()]


@pytest.fixture
def tf_log():
    recorder = _Records()
    yield recorder
    recorder.stop()


def _scalar(name, dtype=tf.float32):
    return tf1.get_variable(name, shape=[], dtype=dtype, initializer=tf1.zeros_initializer())


def _init_and_read(*variables):
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        return sess.run(list(variables))


@pytest.mark.estimator
def test_rename_from_object_based_checkpoint(ckpts):
    """TF's rename from an object-based checkpoint raises 'not found'; an assignment_map entry loads the value."""
    source = ckpts("estimator_tf2")  # var_list/var = 4.0, recorded full_name 'var'
    with tf.Graph().as_default():
        _scalar("new/var")
        with pytest.raises(ValueError, match="not found"):
            tf1.train.warm_start(source, var_name_to_prev_var_name={"new/var": "var"})
    with tf.Graph().as_default():
        v = _scalar("new/var")
        plan = est_ckpt.warm_start(source, assignment_map={"var": "new/var"})
        assert plan.mapping() == {"new/var": f"var_list/var{VV}"}
        assert _init_and_read(v) == [4.0]


def test_duplicate_variable_names_refused_then_resolved_by_object_path(ckpts):
    """TF silently loads b's value into 'Variable'; we refuse listing both keys, and 'vars/0' loads a's value."""
    source = ckpts("duplicate_names")  # vars/0 = 1.0, vars/1 = 2.0, both named 'Variable'
    with tf.Graph().as_default():
        v = _scalar("Variable")
        tf1.train.warm_start(source)
        assert _init_and_read(v) == [2.0]  # TF's silent wrong value
    with tf.Graph().as_default():
        _scalar("Variable")
        with pytest.raises(AmbiguousNameError) as e:
            est_ckpt.warm_start(source)
        assert f"vars/0{VV}, vars/1{VV}" in str(e.value)
    with tf.Graph().as_default():
        v = _scalar("Variable")
        est_ckpt.warm_start(source, assignment_map={"vars/0": "Variable"})
        assert _init_and_read(v) == [1.0]


@pytest.mark.parametrize(
    "amap, names, values",
    [
        ({"/": "new/"}, ["new/a", "new/b", "new/scoped/c"], [1.0, 2.0, 3.0]),
        ({"scoped/": "other/", "a": "x"}, ["x", "b", "other/c"], [1.0, 2.0, 3.0]),
    ],
)
def test_scope_maps(ckpts, amap, names, values):
    """Scope maps TF's WarmStartSettings cannot express load the right values from a tf1 checkpoint."""
    with tf.Graph().as_default():
        variables = [_scalar(n) for n in names]
        est_ckpt.warm_start(ckpts("tf1"), assignment_map=amap)
        assert _init_and_read(*variables) == values


def test_scope_map_and_rules_from_object_based(ckpts):
    """Full names of a session-saved object-based checkpoint map through a scope entry and a rename rule."""
    with tf.Graph().as_default():
        a, b, c = _scalar("m/a"), _scalar("bb"), _scalar("m/scoped/c")
        plan = est_ckpt.warm_start(
            ckpts("session_var_list"), assignment_map={"/": "m/"}, rename_rules=[(r"(b)b", r"\1")]
        )
        assert [x.via for x in plan.assignments] == ["scope", "rule", "scope"]
        assert plan.mapping()["m/scoped/c"] == f"var_list/scoped.Sc{VV}"
        assert _init_and_read(a, b, c) == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("source", ["partitioned", "partitioned_tf2"])
@pytest.mark.parametrize("num_parts", [None, 2])
def test_partitioned_variables_on_either_side(ckpts, source, num_parts):
    """Sliced tf1 entries and tf2 parts saved one by one load into whole or differently partitioned variables."""
    with tf.Graph().as_default():
        partitioner = tf1.fixed_size_partitioner(num_parts) if num_parts else None
        emb = tf1.get_variable(
            "emb", shape=[10, 4], partitioner=partitioner, initializer=tf1.zeros_initializer()
        )
        kernel = tf1.get_variable("new/kernel", shape=[4, 2], initializer=tf1.zeros_initializer())
        est_ckpt.warm_start(ckpts(source), assignment_map={"dense/": "new/"})
        emb_value, kernel_value = _init_and_read(tf.convert_to_tensor(emb) if num_parts else emb, kernel)
        np.testing.assert_array_equal(emb_value, EMB)
        np.testing.assert_array_equal(kernel_value, KERNEL)


def test_one_batched_restore_for_all_variables(ckpts):
    """Warm-starting 200 variables adds exactly one RestoreV2 op to the graph."""
    with tf.Graph().as_default() as graph:
        variables = [_vector(f"layer_{i // 10}/var_{i}") for i in range(200)]
        est_ckpt.warm_start(ckpts("many_vars"))
        assert [op.type for op in graph.get_operations()].count("RestoreV2") == 1
        values = _init_and_read(*variables)
    for i in (0, 7, 199):
        np.testing.assert_array_equal(values[i], np.full([4], i, np.float32))


def _vector(name):
    return tf1.get_variable(name, shape=[4], initializer=tf1.zeros_initializer())


@pytest.mark.estimator
def test_build_warm_start_op_leaves_initializers_alone(ckpts):
    """The engine's op loads values only when run, and takes TF's WarmStartSettings renames (one source, two targets)."""
    settings = tf.estimator.WarmStartSettings(
        ckpts("tf2"), var_name_to_prev_var_name={"x": "scoped/c", "y": "scoped/c"}
    )
    with tf.Graph().as_default() as graph:
        x, y, other = _scalar("x"), _scalar("y"), _scalar("other")
        op, plan = build_warm_start_op(settings, var_list=[x, y])
        assert plan.mapping() == {"x": f"variables/2{VV}", "y": f"variables/2{VV}"}
        assert [o.type for o in graph.get_operations()].count("RestoreV2") == 1
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            assert sess.run([x, y]) == [0.0, 0.0]
            sess.run(op)
            assert sess.run([x, y, other]) == [7.0, 7.0, 0.0]


@pytest.mark.estimator
def test_vocabulary_remapping_is_kept(ckpts, tmp_path):
    """`var_name_to_vocab_info` remaps rows by vocabulary through TF, after our rename."""
    old_vocab, new_vocab = tmp_path / "old.txt", tmp_path / "new.txt"
    old_vocab.write_text("w0\nw1\nw2\nw3\n")
    new_vocab.write_text("w2\nw0\nfresh\n")
    info = tf.estimator.VocabInfo(str(new_vocab), 3, 1, str(old_vocab))
    with tf.Graph().as_default():
        v = tf1.get_variable("emb_new", shape=[4, 2], initializer=tf1.zeros_initializer())
        est_ckpt.warm_start(
            ckpts("partitioned"),
            assignment_map={"dense/kernel": "emb_new"},
            var_name_to_vocab_info={"emb_new": info},
        )
        (value,) = _init_and_read(v)
    np.testing.assert_array_equal(value, [KERNEL[2], KERNEL[0], [0, 0], [0, 0]])
    with tf.Graph().as_default():
        _scalar("a")
        with pytest.raises(UnusedMappingError, match="var_name_to_vocab_info names variables"):
            est_ckpt.warm_start(ckpts("tf1"), var_name_to_vocab_info={"typo": info})


def test_dtype_mismatch_is_reported(ckpts):
    """An int32 variable fed from a float32 key raises MismatchError naming both dtypes and the key."""
    with tf.Graph().as_default():
        _scalar("a", tf.int32)
        with pytest.raises(MismatchError, match=r"'a' \[\] int32 <- 'a' \[\] float32"):
            est_ckpt.warm_start(ckpts("tf1"), ["a"])


def test_vars_to_warm_start_semantics(ckpts):
    """A list of scopes selects global (non-trainable too) variables; the default regex only trainable ones."""
    with tf.Graph().as_default():
        a = tf1.get_variable("a", shape=[], trainable=False, initializer=tf1.zeros_initializer())
        b = _scalar("b")
        plan = est_ckpt.warm_start(ckpts("tf1"), ["a"])
        assert plan.mapping() == {"a": "a"}
        assert _init_and_read(a, b) == [1.0, 0.0]
    with tf.Graph().as_default():
        a = tf1.get_variable("a", shape=[], trainable=False, initializer=tf1.zeros_initializer())
        assert est_ckpt.warm_start(ckpts("tf1")).mapping() == {}


def test_logging_counts_and_per_variable(ckpts, tf_log):
    """One INFO line with counts and the checkpoint, and one DEBUG line per variable."""
    source = ckpts("tf1")
    tf_log.start()
    with tf.Graph().as_default():
        _scalar("a")
        _scalar("b")
        est_ckpt.warm_start(source)
    assert tf_log.messages(logging.INFO, "est_ckpt") == [
        f"est_ckpt warm-started 2 variable(s) from tf1 checkpoint {source}; 0 skipped by "
        "rename rules; 1 checkpoint key(s) unused"
    ]
    assert tf_log.messages(logging.DEBUG, "est_ckpt") == [
        "est_ckpt warm-start: a <- a (name)",
        "est_ckpt warm-start: b <- b (name)",
    ]


@pytest.mark.estimator
def test_settings_are_genuine_and_copy_safely(ckpts):
    """The settings are a tf.estimator.WarmStartSettings; copying or pickling them builds nothing."""
    settings = est_ckpt.warm_start_settings(
        ckpts("tf1"), assignment_map={"/": "n/"}, rename_rules=[("a", "b")]
    )
    assert isinstance(settings, tf.estimator.WarmStartSettings)
    with tf.Graph().as_default() as graph:
        for clone in (copy.deepcopy(settings), pickle.loads(pickle.dumps(settings)), settings._replace()):
            assert clone.assignment_map == {"/": "n/"} and clone.rename_rules == (("a", "b"),)
            assert clone.ckpt_to_initialize_from == settings.ckpt_to_initialize_from
        assert graph.get_operations() == []
    assert settings._asdict()["var_name_to_prev_var_name"] == {}
    assert repr(settings).endswith(", assignment_map={'/': 'n/'}, rename_rules=(('a', 'b'),))")


def test_package_attribute_stays_callable_after_module_import(ckpts):
    """`est_ckpt.warm_start(...)` stays the function after its module (`warm_starting`) is imported."""
    import est_ckpt.tf.warm_starting  # noqa: F401 - importing a submodule sets a package attribute

    with tf.Graph().as_default():
        v = _scalar("a")
        assert est_ckpt.warm_start(ckpts("tf1"), ["a"]).mapping() == {"a": "a"}
        assert _init_and_read(v) == [1.0]


def test_saved_model_dir_is_accepted_like_estimator_does(tmp_path):
    """A SavedModel directory warm-starts from its `variables/variables` checkpoint, as Estimator allows."""
    module = tf.Module()
    module.v = tf.Variable(3.0, name="a")
    tf.saved_model.save(module, str(tmp_path / "sm"))
    with tf.Graph().as_default():
        v = _scalar("a")
        plan = est_ckpt.warm_start(str(tmp_path / "sm"))
        assert plan.checkpoint == str(tmp_path / "sm" / "variables" / "variables")
        assert _init_and_read(v) == [3.0]


def test_eager_mode_is_refused_by_the_op_builder(ckpts):
    """`build_warm_start_op` builds an op to run later, so eager mode raises a RuntimeError saying so.

    (`warm_start` itself works in eager mode as TF's does: tests/test_warm_start_compat.py.)
    """
    with pytest.raises(RuntimeError, match="graph"):
        build_warm_start_op(ckpts("tf1"))


def _model_fn(features, labels, mode):
    step = tf1.train.get_or_create_global_step()
    with tf1.variable_scope("new_scope"):
        v = tf1.get_variable("var", shape=[], initializer=tf1.zeros_initializer())
    return tf.estimator.EstimatorSpec(
        mode, predictions=tf.identity(v), loss=tf.constant(1.0), train_op=step.assign_add(1)
    )


def _input_fn():
    return tf.data.Dataset.from_tensor_slices(([1.0], [2.0]))


@pytest.mark.estimator
@pytest.mark.parametrize("kind, value", [("tf1", 2.0), ("tf2", 4.0)])
def test_estimator_warm_start_from_model_dir_with_scope_map(ckpts, tmp_path, tf_log, kind, value):
    """Estimator predicts and trains warm-started from a tf1 or tf2 model dir through a scope map, then WARNs when it skips."""
    tf2_dir = ckpts("estimator_tf2")
    source = tf2_dir if kind == "tf2" else os.path.join(os.path.dirname(tf2_dir), "est-tf1")
    settings = est_ckpt.warm_start_settings(source, assignment_map={"/": "new_scope/"})
    tf_log.start()
    fresh = tf.estimator.Estimator(_model_fn, str(tmp_path / "predict"), warm_start_from=settings)
    assert next(fresh.predict(_input_fn, yield_single_examples=False)) == value  # no checkpoint: warm-started
    model_dir = str(tmp_path / "model")
    est = tf.estimator.Estimator(_model_fn, model_dir, warm_start_from=settings)
    est.train(_input_fn, steps=1)
    assert est.get_variable_value("new_scope/var") == value
    assert not tf_log.messages(logging.WARNING, "NOT warm-starting")
    est.train(_input_fn, steps=1)
    warnings = tf_log.messages(logging.WARNING, "NOT warm-starting")
    assert len(warnings) == 1 and model_dir in warnings[0]
    assert est.get_variable_value("new_scope/var") == value


_MIRRORED_SCRIPT = """
import sys
import tensorflow as tf
tf1 = tf.compat.v1
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import est_ckpt

def model_fn(features, labels, mode):
    step = tf1.train.get_or_create_global_step()
    with tf1.variable_scope("new_scope"):
        v = tf1.get_variable("var", shape=[], initializer=tf1.zeros_initializer())
    loss = tf.reduce_mean(features) * 0.0 + v * 0.0
    train_op = tf1.train.GradientDescentOptimizer(0.1).minimize(loss, step)
    return tf.estimator.EstimatorSpec(mode, predictions=tf.identity(v), loss=loss, train_op=train_op)

config = tf.estimator.RunConfig(
    train_distribute=tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    session_config=tf1.ConfigProto(device_count={"CPU": 2}),
)
settings = est_ckpt.warm_start_settings(sys.argv[1], assignment_map={"/": "new_scope/"})
est = tf.estimator.Estimator(model_fn, sys.argv[2], config=config, warm_start_from=settings)
est.train(lambda: tf.data.Dataset.from_tensor_slices(([1.0, 2.0], [2.0, 3.0])).batch(2).repeat(), steps=1)
print("VALUE", est.get_variable_value("new_scope/var"))
"""


@pytest.mark.estimator
def test_estimator_with_mirrored_strategy(ckpts, tmp_path):
    """Under `train_distribute=MirroredStrategy` every replica of a variable gets the warm-start value."""
    import subprocess
    import sys

    source = os.path.join(os.path.dirname(ckpts("estimator_tf2")), "est-tf1")
    # Two logical CPUs must be configured before TensorFlow initialises: a fresh process.
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, source, str(tmp_path / "model")],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "VALUE 2.0" in result.stdout.splitlines()
