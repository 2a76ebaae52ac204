"""`with_tf2_checkpoints` / `with_tf1_checkpoints` on every canned Estimator, with real TensorFlow.

Each canned Estimator trains 2 steps name-based in a model dir (the plain
Estimator, as before the switch), continues through the wrapper, evaluates,
predicts, exports, restarts, and goes back. Values
are compared by variable name against the plain Estimator's own checkpoints,
read with TF's reader; tf2 checkpoints are matched to names through the object
graph (`est_ckpt.read_checkpoint`). Key sets of tf2 checkpoints are not asserted.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

import est_ckpt  # noqa: E402
from est_ckpt.tf import flags as ckpt_flags  # noqa: E402

pytestmark = pytest.mark.estimator

CONFIG = dict(tf_random_seed=7, save_summary_steps=10**9, log_step_count_steps=None)
X = [[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [-1.0, 2.0]]
COLS = [tf.feature_column.numeric_column("x", shape=[2])]


@pytest.fixture(autouse=True, scope="module")
def _quiet_tf():
    tf.get_logger().setLevel("ERROR")


def _input_fn(regressor):
    labels = [[1.5], [-0.5], [1.0], [0.0]] if regressor else [[1], [0], [1], [0]]

    def input_fn():
        # One constant batch, repeated: every train() call sees the same data, so a restarted
        # run and one that never stopped take identical steps.
        return tf.data.Dataset.from_tensors(({"x": tf.constant(X)}, tf.constant(labels))).repeat()

    return input_fn


def _predict_input_fn():
    # Batches of unknown size: the baselines, which read no feature, take the batch size from the
    # input at run time, so predict ends when the input does.
    return tf.data.Dataset.from_tensor_slices({"x": tf.constant(X)}).batch(2)


def _canned(ns, kind):
    linear = dict(feature_columns=COLS)
    dnn = dict(feature_columns=COLS, hidden_units=[3])
    combined = dict(linear_feature_columns=COLS, dnn_feature_columns=COLS, dnn_hidden_units=[3])
    return {
        "LinearClassifier": (ns.LinearClassifier, linear),
        "LinearRegressor": (ns.LinearRegressor, linear),
        "DNNClassifier": (ns.DNNClassifier, dnn),
        "DNNRegressor": (ns.DNNRegressor, dnn),
        "DNNLinearCombinedClassifier": (ns.DNNLinearCombinedClassifier, combined),
        "DNNLinearCombinedRegressor": (ns.DNNLinearCombinedRegressor, combined),
        "BaselineClassifier": (ns.BaselineClassifier, {}),
        "BaselineRegressor": (ns.BaselineRegressor, {}),
    }[kind]


KINDS = [
    "LinearClassifier",
    "LinearRegressor",
    "DNNClassifier",
    "DNNRegressor",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "BaselineClassifier",
    "BaselineRegressor",
]


def _make(version, kind, model_dir, **kwargs):
    ns = tf.estimator if version == "v2" else tf1.estimator
    cls, args = _canned(ns, kind)
    return cls(model_dir=model_dir, config=tf.estimator.RunConfig(**CONFIG), **args, **kwargs)


def _by_name(path):
    """{variable name: value} of the checkpoint at `path` (either format), values read by TF."""
    info = est_ckpt.read_checkpoint(path)
    reader = tf.train.load_checkpoint(info.prefix)
    return {t.name: reader.get_tensor(k) for k, t in info.variables.items() if t.name}


def _latest(model_dir):
    return est_ckpt.read_checkpoint(model_dir)


def _assert_same(expected, actual, where):
    missing = sorted(set(expected) - set(actual))
    assert not missing, f"{where}: missing {missing}"
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=0, atol=1e-6, err_msg=f"{where}: {name}")


def _predictions(est, **kwargs):
    return [
        {k: v for k, v in p.items() if v.dtype != object} for p in est.predict(_predict_input_fn, **kwargs)
    ]


def _assert_same_predictions(expected, actual):
    assert len(expected) == len(actual) == len(X)
    for e, a in zip(expected, actual):
        assert e.keys() == a.keys()
        for k in e:
            np.testing.assert_allclose(a[k], e[k], rtol=0, atol=1e-6, err_msg=k)


def _continue_through_the_wrapper(version, kind, tmp_path):
    """Legacy 2 steps, then 2 through `with_tf2_checkpoints(also_save_tf1=True)`; checks what was written."""
    regressor = kind.endswith("Regressor")
    input_fn = _input_fn(regressor)
    model_dir = str(tmp_path / "model")
    plain = _make(version, kind, model_dir)
    plain.train(input_fn, steps=2)
    assert _latest(model_dir).format == "tf1"
    reference = str(tmp_path / "reference")
    shutil.copytree(model_dir, reference)

    wrapped = est_ckpt.with_tf2_checkpoints(plain, also_save_tf1=True)
    assert isinstance(wrapped, tf.estimator.Estimator if version == "v2" else tf1.estimator.Estimator)
    assert (wrapped.model_dir, wrapped.params) == (plain.model_dir, plain.params)
    assert (wrapped.config.tf_random_seed, wrapped.config.model_dir) == (7, model_dir)
    wrapped.train(input_fn, steps=2)

    latest = _latest(model_dir)
    assert latest.format == "tf2" and latest.prefix.endswith("model.ckpt-4")
    values = _by_name(model_dir)
    assert values["global_step"] == 4
    copy = _latest(os.path.join(model_dir, "tf1"))
    assert copy.format == "tf1" and copy.prefix.endswith("model.ckpt-4")
    tf1_values = _by_name(copy.prefix)
    assert set(values) >= set(tf1_values) >= set(_by_name(reference))
    _assert_same(tf1_values, values, "tf2 checkpoint vs its tf1 copy")

    # evaluate and predict restore the object-based checkpoint: same as the plain Estimator on the tf1 copy.
    metrics = wrapped.evaluate(input_fn, steps=1)
    expected = plain.evaluate(input_fn, steps=1, checkpoint_path=copy.prefix)
    assert metrics["global_step"] == expected["global_step"] == 4
    np.testing.assert_allclose(metrics["loss"], expected["loss"], rtol=0, atol=1e-6)
    _assert_same_predictions(_predictions(plain, checkpoint_path=copy.prefix), _predictions(wrapped))
    return plain, wrapped, input_fn, model_dir, reference, tf1_values


def _export(wrapped, values, tmp_path):
    """export_saved_model restores the object-based checkpoint: the SavedModel holds its values."""
    receiver = tf.estimator.export.build_parsing_serving_input_receiver_fn(
        tf.feature_column.make_parse_example_spec(COLS)
    )
    export_dir = wrapped.export_saved_model(str(tmp_path / "export"), receiver).decode()
    exported = _by_name(os.path.join(export_dir, "variables", "variables"))
    assert any(k.endswith(("kernel", "weights", "bias")) for k in exported)
    _assert_same({k: v for k, v in values.items() if k in exported}, exported, "SavedModel variables")


def _back_through_tf1(plain, wrapped, input_fn, model_dir, step):
    back = est_ckpt.with_tf1_checkpoints(wrapped)
    back.train(input_fn, steps=1)
    latest = _latest(model_dir)
    assert latest.format == "tf1" and latest.prefix.endswith(f"model.ckpt-{step + 1}")
    # The plain canned Estimator reads it (its own Saver, by name).
    assert plain.get_variable_value("global_step") == step + 1
    assert len(_predictions(plain)) == len(X)


def _restart(plain, version, kind, input_fn, model_dir, reference):
    """Interrupted after step 4 and restarted (a new wrapper, a new graph): 2 more steps give the
    weights of the plain Estimator that trained 4 steps from the same legacy checkpoint in one go."""
    est_ckpt.with_tf2_checkpoints(plain, also_save_tf1=True).train(input_fn, steps=2)
    _make(version, kind, reference).train(input_fn, steps=4)
    restarted = _by_name(model_dir)
    assert restarted["global_step"] == 6
    _assert_same(_by_name(reference), restarted, "restarted vs never stopped")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("version", ["v2", "v1"])
def test_every_canned_estimator_full_path(version, kind, tmp_path):
    """tf.estimator.* and tf.compat.v1.estimator.*: legacy → wrapper (object-based, tf1/ copy) → evaluate →
    predict → export → restart → way back."""
    plain, wrapped, input_fn, model_dir, reference, values = _continue_through_the_wrapper(
        version, kind, tmp_path
    )
    _export(wrapped, values, tmp_path)
    _restart(plain, version, kind, input_fn, model_dir, reference)
    _back_through_tf1(plain, wrapped, input_fn, model_dir, 6)


# -- the wrapper itself: the spec's scaffold, warm-starting, errors, flags ---------------------


def _custom_estimator(model_dir, scaffold_kwargs, **kwargs):
    """A one-variable Estimator (`w` += 1 per step) whose spec carries a scaffold built by `scaffold_kwargs()`."""

    def model_fn(features, labels, mode, params):
        step = tf1.train.get_or_create_global_step()
        w = tf1.get_variable("w", shape=[], initializer=tf1.constant_initializer(params["start"]))
        return tf.estimator.EstimatorSpec(
            mode,
            predictions={"w": features["x"][:, 0] * 0 + w},
            loss=tf.identity(w),
            train_op=tf.group(w.assign_add(1.0), step.assign_add(1)),
            scaffold=tf1.train.Scaffold(**scaffold_kwargs()),
        )

    config = tf.estimator.RunConfig(**CONFIG)
    return tf.estimator.Estimator(
        model_fn, model_dir=model_dir, config=config, params={"start": 3.0}, **kwargs
    )


def test_the_specs_own_scaffold_pieces_are_kept(tmp_path):
    """init_fn, local_init_op and summary_op of the spec's scaffold still run; params still reach model_fn."""
    calls = []

    def pieces():
        marker = tf1.get_variable(
            "marker",
            shape=[],
            initializer=tf1.zeros_initializer(),
            collections=[tf1.GraphKeys.LOCAL_VARIABLES],
        )
        with tf.control_dependencies([marker.initializer]):  # ordered: tf.group alone has no order
            set_marker = tf1.assign(marker, 42.0)
        return {
            "init_fn": lambda scaffold, session: calls.append(type(scaffold.saver).__name__),
            "local_init_op": set_marker,
            # In no collection: only the spec's summary_op writes it.
            "summary_op": tf1.summary.scalar("marker_value", marker, collections=[]),
        }

    model_dir = str(tmp_path / "model")
    wrapped = est_ckpt.with_tf2_checkpoints(_custom_estimator(model_dir, pieces))
    assert wrapped.params == {"start": 3.0}
    wrapped.train(_input_fn(True), steps=2)
    # Fresh dir: init_fn ran once, handed the merged scaffold (whose saver is est_ckpt's).
    assert calls == ["ScaffoldSaver"]
    assert _latest(model_dir).format == "tf2"
    assert _by_name(model_dir)["w"] == 5.0
    # The summary op is the spec's (the Estimator's default merges collections: no `marker_value`),
    # and it reads 42: the spec's local_init_op ran.
    written = [
        v.simple_value
        for f in tf.io.gfile.glob(os.path.join(model_dir, "events.out.tfevents.*"))
        for e in tf1.train.summary_iterator(f)
        for v in e.summary.value
        if v.tag == "marker_value"
    ]
    assert written and set(written) == {42.0}


def test_a_spec_scaffold_with_its_own_saver_is_refused(tmp_path):
    """A spec whose scaffold has a saver cannot take est_ckpt's: TypeError naming it, nothing written."""
    model_dir = str(tmp_path / "model")
    wrapped = est_ckpt.with_tf2_checkpoints(
        _custom_estimator(model_dir, lambda: {"saver": tf1.train.Saver(sharded=True)})
    )
    with pytest.raises(TypeError, match=r"with_tf2_checkpoints\(\).*own saver \(Saver\)"):
        wrapped.train(_input_fn(True), steps=1)
    assert tf.train.latest_checkpoint(model_dir) is None


def test_not_an_estimator_is_a_type_error():
    with pytest.raises(
        TypeError, match=r"with_tf1_checkpoints\(\): 'estimator' must be a tf.estimator.Estimator"
    ):
        est_ckpt.with_tf1_checkpoints(object())


@pytest.mark.parametrize("bad", [1, ""])
def test_bad_also_save_tf1_is_refused_before_training(tmp_path, bad):
    """The scaffold's own rule, checked when wrapping; None (like False) means no copy, as for the scaffold."""
    plain = _make("v2", "LinearRegressor", str(tmp_path / "model"))
    with pytest.raises(
        TypeError,
        match=rf"with_tf2_checkpoints\(\): 'also_save_tf1' must be a bool or a directory path \(got {bad!r}\)",
    ):
        est_ckpt.with_tf2_checkpoints(plain, also_save_tf1=bad)
    assert est_ckpt.with_tf2_checkpoints(plain, also_save_tf1=None).model_dir == plain.model_dir


def test_the_estimators_warm_start_settings_keep_working(tmp_path):
    """`LinearRegressor(warm_start_from=WarmStartSettings)` through the wrapper warm-starts as TF does."""
    source = str(tmp_path / "source")
    _make("v2", "LinearRegressor", source).train(_input_fn(True), steps=3)
    expected = _by_name(source)
    settings = tf.estimator.WarmStartSettings(source, vars_to_warm_start="linear/linear_model/.*")
    model_dir = str(tmp_path / "model")
    plain = _make("v2", "LinearRegressor", model_dir, warm_start_from=settings)
    est_ckpt.with_tf2_checkpoints(plain).train(_input_fn(True), steps=1)
    reference = str(tmp_path / "reference")
    _make("v2", "LinearRegressor", reference, warm_start_from=settings).train(_input_fn(True), steps=1)
    assert _latest(model_dir).format == "tf2"
    got, want = _by_name(model_dir), _by_name(reference)
    _assert_same({k: v for k, v in want.items() if k.startswith("linear/")}, got, "warm-started")
    assert expected["global_step"] == 3 and got["global_step"] == 1
    with pytest.raises(ValueError, match="already warm-starts from .*source.*give one"):
        est_ckpt.with_tf2_checkpoints(plain, warm_start_from=source)


def test_wrapping_a_wrapped_estimator_wraps_the_original(tmp_path):
    """with_tf1_checkpoints(with_tf2_checkpoints(est)) is the way back, not two scaffolds."""
    model_dir = str(tmp_path / "model")
    plain = _make("v2", "LinearRegressor", model_dir)
    there = est_ckpt.with_tf2_checkpoints(plain)
    there.train(_input_fn(True), steps=1)
    est_ckpt.with_tf1_checkpoints(there).train(_input_fn(True), steps=1)
    assert _latest(model_dir).format == "tf1"
    assert plain.get_variable_value("global_step") == 2


def _flag_values(*args):
    from absl import flags

    fv = flags.FlagValues()
    ckpt_flags.define_flags(fv)
    fv(["prog", *args])
    return fv


@pytest.mark.parametrize(
    "args,layout,tf1_copy",
    [((), "tf2", False), (("--ckpt_format=both",), "tf2", True), (("--ckpt_format=tf1",), "tf1", False)],
)
def test_estimator_from_flags(args, layout, tf1_copy, tmp_path):
    """--ckpt_format applies to a canned Estimator continuing a legacy dir, through one call."""
    model_dir = str(tmp_path / "model")
    plain = _make("v2", "LinearRegressor", model_dir)
    plain.train(_input_fn(True), steps=1)
    est = ckpt_flags.estimator_from_flags(plain, _flag_values(*args))
    est.train(_input_fn(True), steps=1)
    latest = _latest(model_dir)
    assert latest.format == layout and _by_name(model_dir)["global_step"] == 2
    assert os.path.isdir(os.path.join(model_dir, "tf1")) == tf1_copy


def test_estimator_from_flags_warm_starts(tmp_path):
    """--warm_start_from reaches the wrapper: a fresh dir starts from the source, as TF's own warm start does."""
    source = str(tmp_path / "source")
    _make("v2", "LinearRegressor", source).train(_input_fn(True), steps=2)
    fresh = str(tmp_path / "fresh")
    est = ckpt_flags.estimator_from_flags(
        _make("v2", "LinearRegressor", fresh), _flag_values(f"--warm_start_from={source}")
    )
    est.train(_input_fn(True), steps=1)
    reference = str(tmp_path / "reference")
    _make("v2", "LinearRegressor", reference, warm_start_from=source).train(_input_fn(True), steps=1)
    want = _by_name(reference)
    assert _latest(fresh).format == "tf2"
    _assert_same({k: v for k, v in want.items() if k.startswith("linear/")}, _by_name(fresh), "warm-started")
    assert _by_name(fresh)["global_step"] == 1


@pytest.mark.parametrize("async_save", [False, True], ids=["sync", "async"])
def test_mirrored_strategy_continues_a_legacy_dir(tmp_path, async_save):
    """Under MirroredStrategy over two CPUs the wrapper continues a legacy dir object-based, in step with TF
    (with `async_save`, written in the background)."""
    # Built in a graph: in eager, MirroredStrategy probes its devices and there is one logical CPU.
    with tf.Graph().as_default():
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    config = tf.estimator.RunConfig(
        train_distribute=strategy, session_config=tf1.ConfigProto(device_count={"CPU": 2}), **CONFIG
    )
    input_fn = _input_fn(True)

    def make(model_dir):
        return tf.estimator.LinearRegressor(COLS, model_dir=model_dir, config=config)

    model_dir, reference = str(tmp_path / "model"), str(tmp_path / "reference")
    make(model_dir).train(input_fn, steps=2)
    shutil.copytree(model_dir, reference)
    wrapped = est_ckpt.with_tf2_checkpoints(make(model_dir), also_save_tf1=True, async_save=async_save)
    wrapped.train(input_fn, steps=2)
    make(reference).train(input_fn, steps=2)
    assert _latest(model_dir).format == "tf2" and _latest(reference).format == "tf1"
    values = _by_name(model_dir)
    assert values["global_step"] == 4
    _assert_same(_by_name(reference), values, "mirrored: wrapper vs plain")
