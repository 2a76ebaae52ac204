"""Tests of `make_tf2_scaffold` / `make_tf1_scaffold` with real TensorFlow and Estimator.

Models are tiny and train 1-4 steps: what is checked is which checkpoint each
run writes and restores, keys AND values, read back with TF's own reader.
"""

from __future__ import annotations

import os
import shutil
import types

import numpy as np
import pytest

from tests.fixtures import VV

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

import est_ckpt  # noqa: E402
from est_ckpt.errors import MismatchError, UnmappedVariablesError  # noqa: E402
from tests import fixtures  # noqa: E402

GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
SAVE_COUNTER = "save_counter" + VV
QUIET = {"save_summary_steps": 10**9, "log_step_count_steps": None}


@pytest.fixture(autouse=True, scope="module")
def _quiet_tf():
    tf.get_logger().setLevel("ERROR")


def _values(path):
    """Every tensor of the checkpoint at `path` but the object graph, read by TF."""
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k != GRAPH}


def _tf2_values(path):
    """`_values` of an object-based checkpoint of the scaffold, without its save_counter (checked: 1 or more)."""
    values = _values(path)
    assert values.pop(SAVE_COUNTER) >= 1
    return values


def _copy_dir(src, tmp_path, name):
    dst = str(tmp_path / name)
    shutil.copytree(src, dst)
    return dst


# -- the guide's one-variable model ---------------------------------------------------------


def _var_input_fn():
    return tf.data.Dataset.from_tensors(({"x": [1.0]}, [1.0])).repeat(3)


def _var_spec(features, mode, make_scaffold):
    """The guide's model (adds 2 to `var` and 1 to the step), with the scaffold `make_scaffold()` returns."""
    step = tf1.train.get_or_create_global_step()
    v = tf1.get_variable("var", shape=[], initializer=tf1.constant_initializer(0))
    return tf.estimator.EstimatorSpec(
        mode,
        predictions={"var": features["x"] * 0 + v},
        train_op=tf.group(v.assign_add(2), step.assign_add(1)),
        loss=tf.constant(1.0),
        scaffold=make_scaffold(),
    )


def _var_model_fn(make_scaffold):
    """The guide's model_fn, with the given scaffold."""

    def model_fn(features, labels, mode):
        return _var_spec(features, mode, make_scaffold)

    return model_fn


def _var_estimator(make_scaffold, model_dir, **config):
    run_config = tf.estimator.RunConfig(**{**QUIET, **config})
    return tf.estimator.Estimator(_var_model_fn(make_scaffold), model_dir, config=run_config)


# -- a dense model trained with Adam ----------------------------------------------------------


def _dense_input_fn():
    return tf.data.Dataset.from_tensors(({"x": [[1.0, 2.0]]}, [[1.0]])).repeat()


def _dense_model_fn(features, labels, mode):
    kernel = tf1.get_variable("dense/kernel", shape=[2, 1], initializer=tf1.constant_initializer(0.5))
    bias = tf1.get_variable("dense/bias", shape=[1], initializer=tf1.zeros_initializer())
    out = tf.matmul(features["x"], kernel) + bias
    step = tf1.train.get_or_create_global_step()
    if mode == tf.estimator.ModeKeys.PREDICT:
        return tf.estimator.EstimatorSpec(
            mode, predictions={"y": out, "bias": out * 0 + bias}, scaffold=est_ckpt.make_tf2_scaffold()
        )
    loss = tf.reduce_mean(tf.square(out - labels))
    train_op = tf1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
    return tf.estimator.EstimatorSpec(
        mode, loss=loss, train_op=train_op, scaffold=est_ckpt.make_tf2_scaffold()
    )


@pytest.mark.estimator
def test_two_way_estimator_eager_estimator(tmp_path):
    """Estimator saves the guide's layout, eager tf.train.Checkpoint restores and re-saves it, Estimator predicts from it."""
    model_dir = str(tmp_path / "model")
    est = tf.estimator.Estimator(_dense_model_fn, model_dir, config=tf.estimator.RunConfig(**QUIET))
    est.train(_dense_input_fn, steps=2)
    saved = _values(model_dir)
    names = ["dense/kernel", "dense/bias", "beta1_power", "beta2_power"]
    names += [f"dense/{v}/{slot}" for v in ("kernel", "bias") for slot in ("Adam", "Adam_1")]
    assert set(saved) == {f"var_list/{est_ckpt.format.keys.escape(n)}{VV}" for n in names} | {
        "step" + VV,
        SAVE_COUNTER,
    }
    assert saved["step" + VV] == 2

    # Eager TF2, no Estimator: the variables are found by the names the model gave them.
    variables = {
        n: tf.Variable(tf.zeros_like(saved[f"var_list/{est_ckpt.format.keys.escape(n)}{VV}"])) for n in names
    }
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(var_list=variables, step=step)
    # restore (not read, which leaves save_counter alone): as for what tf.train.Checkpoint.save writes.
    ckpt.restore(tf.train.latest_checkpoint(model_dir)).assert_consumed()
    for n in names:
        np.testing.assert_array_equal(
            variables[n].numpy(), saved[f"var_list/{est_ckpt.format.keys.escape(n)}{VV}"]
        )
    assert step.numpy() == 2
    variables["dense/bias"].assign([7.0])
    step.assign(10)
    prefix = ckpt.write(os.path.join(model_dir, "model.ckpt-10"))
    tf1.train.update_checkpoint_state(model_dir, prefix)

    prediction = next(est.predict(lambda: tf.data.Dataset.from_tensors({"x": [[1.0, 2.0]]})))
    np.testing.assert_allclose(prediction["bias"], [7.0])
    np.testing.assert_allclose(
        prediction["y"], np.array([1.0, 2.0]) @ saved["var_list/dense.Skernel" + VV] + 7.0, rtol=1e-6
    )
    est.train(_dense_input_fn, steps=1)
    assert _values(model_dir)["step" + VV] == 11


@pytest.mark.estimator
def test_legacy_model_dir_continues_object_based(ckpts, tmp_path):
    """A model dir trained name-based continues with make_tf2_scaffold: step and values go on, saves are object-based."""
    model_dir = _copy_dir(ckpts("estimator_tf1"), tmp_path, "legacy")  # var = 2, global_step = 1
    legacy_prefix = tf.train.latest_checkpoint(model_dir)
    # What TF does today: the guide's Scaffold(saver=tf.train.Checkpoint(...)) cannot read the model dir.
    with pytest.raises(tf.errors.NotFoundError):
        tf.estimator.Estimator(fixtures._model_fn_tf2_ckpt, model_dir).train(_var_input_fn, steps=1)
    assert tf.train.latest_checkpoint(model_dir) == legacy_prefix

    est = _var_estimator(est_ckpt.make_tf2_scaffold, model_dir)
    est.train(_var_input_fn, steps=2)
    latest = tf.train.latest_checkpoint(model_dir)
    assert latest.endswith("model.ckpt-3")
    assert est_ckpt.read_checkpoint(latest).format == "tf2"
    assert _tf2_values(latest) == {"var_list/var" + VV: 6.0, "step" + VV: 3}
    # evaluate's checkpoint_path may still name the legacy checkpoint.
    assert est.evaluate(_var_input_fn, steps=1, checkpoint_path=legacy_prefix)["global_step"] == 1
    assert est.evaluate(_var_input_fn, steps=1)["global_step"] == 3


@pytest.mark.estimator
def test_tf1_scaffold_on_object_based_model_dir(ckpts, tmp_path):
    """make_tf1_scaffold restores an object-based model dir by its recorded names and saves name-based."""
    model_dir = _copy_dir(ckpts("estimator_tf2"), tmp_path, "objects")  # var_list/var = 4, step = 1
    # What TF does today: a plain TF1 model_fn falls back to building a Saver in a finalized graph.
    with pytest.raises(RuntimeError, match="Graph is finalized"):
        tf.estimator.Estimator(fixtures._model_fn_tf1_ckpt, model_dir).train(_var_input_fn, steps=1)

    est = _var_estimator(est_ckpt.make_tf1_scaffold, model_dir)
    est.train(_var_input_fn, steps=1)
    latest = tf.train.latest_checkpoint(model_dir)
    assert est_ckpt.read_checkpoint(latest).format == "tf1"
    assert _values(latest) == {"var": 6.0, "global_step": 2}


@pytest.mark.estimator
def test_dual_save_feeds_a_tf1_consumer(tmp_path):
    """also_save_tf1 keeps a name-based copy per save in model_dir/tf1, state file and keep_checkpoint_max included."""
    model_dir = str(tmp_path / "dual")
    est = _var_estimator(
        lambda: est_ckpt.make_tf2_scaffold(also_save_tf1=True),
        model_dir,
        save_checkpoints_steps=1,
        keep_checkpoint_max=2,
    )

    def tf1_consumer():
        with tf.Graph().as_default():
            v = tf1.get_variable("var", shape=[])
            step = tf1.train.get_or_create_global_step()
            with tf1.Session() as sess:
                tf1.train.Saver().restore(sess, tf.train.latest_checkpoint(os.path.join(model_dir, "tf1")))
                return sess.run([v, step])

    est.train(_var_input_fn, steps=2)
    assert tf1_consumer() == [4.0, 2]
    est.train(_var_input_fn, steps=2)
    assert tf1_consumer() == [8.0, 4]

    tf1_dir = os.path.join(model_dir, "tf1")
    kept = ["model.ckpt-3", "model.ckpt-4"]
    state = tf1.train.get_checkpoint_state(tf1_dir)
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == kept
    assert sorted(n for n in os.listdir(tf1_dir) if n.endswith(".index")) == [k + ".index" for k in kept]
    assert sorted(n for n in os.listdir(model_dir) if n.endswith(".index")) == [k + ".index" for k in kept]
    for k in kept:
        assert est_ckpt.read_checkpoint(os.path.join(model_dir, k)).format == "tf2"
        assert _values(os.path.join(tf1_dir, k)) == {"var": 2.0 * int(k[-1]), "global_step": int(k[-1])}
    # The copy shares the tensor bytes of the object-based checkpoint (hard link), it does not write them again.
    data = "model.ckpt-4.data-00000-of-00002"
    tf1_data = [n for n in os.listdir(tf1_dir) if n.startswith("model.ckpt-4.data")]
    assert len(tf1_data) == 1
    assert os.stat(os.path.join(tf1_dir, tf1_data[0])).st_ino == os.stat(os.path.join(model_dir, data)).st_ino


@pytest.mark.estimator
def test_keep_checkpoint_every_n_hours_is_honoured(tmp_path):
    """RunConfig's keep_checkpoint_every_n_hours reaches the scaffold's saver (a tiny period keeps every checkpoint)."""
    kept = {}
    for hours in (10000, 1e-9):
        model_dir = str(tmp_path / f"every-{hours}")
        est = _var_estimator(
            est_ckpt.make_tf2_scaffold,
            model_dir,
            save_checkpoints_steps=1,
            keep_checkpoint_max=1,
            keep_checkpoint_every_n_hours=hours,
        )
        est.train(_var_input_fn, steps=3)
        kept[hours] = sorted(n for n in os.listdir(model_dir) if n.endswith(".index"))
    assert kept[10000] == ["model.ckpt-3.index"]
    assert kept[1e-9] == [f"model.ckpt-{step}.index" for step in range(4)]


def _config_model_fn(make_scaffold):
    """The guide's model_fn, taking Estimator's `config` and handing it to `make_scaffold(config)`."""

    def model_fn(features, labels, mode, config):
        return _var_spec(features, mode, lambda: make_scaffold(config))

    return model_fn


def _indexes(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".index"))


@pytest.mark.parametrize(
    "make",
    [
        est_ckpt.make_tf2_scaffold,
        est_ckpt.make_tf1_scaffold,
        lambda **kwargs: est_ckpt.make_tf2_scaffold(also_save_tf1=True, **kwargs),
    ],
    ids=["tf2", "tf1", "tf2+tf1_copy"],
)
@pytest.mark.estimator
def test_config_given_to_the_scaffold_sets_retention_and_wins(tmp_path, make):
    """`config=` (the RunConfig model_fn receives) sets retention; a config other than the Estimator's wins;
    without `config=` the Estimator's RunConfig is still found (on the call stack)."""
    scaffolds = {
        "own": lambda config: make(config=config),
        "other": lambda config: make(config=config.replace(keep_checkpoint_max=2)),
        "none": lambda config: make(),
    }
    kept = {}
    for name, make_scaffold in scaffolds.items():
        model_dir = str(tmp_path / name)
        run_config = tf.estimator.RunConfig(save_checkpoints_steps=1, keep_checkpoint_max=1, **QUIET)
        est = tf.estimator.Estimator(_config_model_fn(make_scaffold), model_dir, config=run_config)
        est.train(_var_input_fn, steps=3)  # saves at steps 0, 1, 2, 3
        kept[name] = _indexes(model_dir)
        if os.path.isdir(os.path.join(model_dir, "tf1")):
            assert _indexes(os.path.join(model_dir, "tf1")) == kept[name]
    assert kept["own"] == kept["none"] == ["model.ckpt-3.index"]
    assert kept["other"] == ["model.ckpt-2.index", "model.ckpt-3.index"]


def test_config_sets_retention_where_no_estimator_is_found(tmp_path):
    """Under a bare MonitoredTrainingSession only `config=` sets retention (else TF's Saver keeps 5).

    Without Estimator (TF 2.16+) any object with the two retention fields is the config.
    """
    kept = {}
    configs = {
        "none": {},
        "config": {"config": types.SimpleNamespace(keep_checkpoint_max=1, keep_checkpoint_every_n_hours=1e4)},
    }
    if fixtures.HAS_ESTIMATOR:
        configs["run_config"] = {"config": tf.estimator.RunConfig(keep_checkpoint_max=1)}
    for name, kwargs in configs.items():
        checkpoint_dir = str(tmp_path / name)
        with tf.Graph().as_default():
            v = tf1.get_variable("var", shape=[], initializer=tf1.zeros_initializer())
            step = tf1.train.get_or_create_global_step()
            train_op = tf.group(v.assign_add(2), step.assign_add(1))
            with tf1.train.MonitoredTrainingSession(
                checkpoint_dir=checkpoint_dir,
                scaffold=est_ckpt.make_tf2_scaffold(**kwargs),
                save_checkpoint_steps=1,
                save_summaries_steps=None,
                log_step_count_steps=None,
            ) as sess:
                for _ in range(3):
                    sess.run(train_op)
        kept[name] = _indexes(checkpoint_dir)
    assert kept["none"] == [f"model.ckpt-{i}.index" for i in range(4)]
    assert kept["config"] == kept.get("run_config", kept["config"]) == ["model.ckpt-3.index"]


@pytest.mark.estimator
def test_dual_save_to_named_directory(tmp_path):
    """also_save_tf1='<dir>' writes the name-based copies there."""
    model_dir, tf1_dir = str(tmp_path / "m"), str(tmp_path / "serving")
    est = _var_estimator(lambda: est_ckpt.make_tf2_scaffold(also_save_tf1=tf1_dir), model_dir)
    est.train(_var_input_fn, steps=1)
    assert _values(tf1_dir) == {"var": 2.0, "global_step": 1}
    assert os.path.basename(tf.train.latest_checkpoint(tf1_dir)) == "model.ckpt-1"


@pytest.mark.estimator
def test_warm_start_through_scaffold_only_on_a_fresh_model_dir(ckpts, tmp_path):
    """warm_start_from loads the source in init_fn; once the model dir has a checkpoint, it is not applied again."""
    source = ckpts("estimator_tf1")  # var = 2
    model_dir = str(tmp_path / "warm")
    est = _var_estimator(lambda: est_ckpt.make_tf2_scaffold(warm_start_from=source), model_dir)
    est.train(_var_input_fn, steps=1)
    assert _tf2_values(model_dir) == {"var_list/var" + VV: 4.0, "step" + VV: 1}
    est.train(_var_input_fn, steps=1)
    assert _tf2_values(model_dir) == {"var_list/var" + VV: 6.0, "step" + VV: 2}


@pytest.mark.estimator
def test_train_and_evaluate_then_export_saved_model(tmp_path):
    """train_and_evaluate and export_saved_model work with the scaffold; the SavedModel serves the trained value."""
    model_dir = str(tmp_path / "tae")
    est = _var_estimator(est_ckpt.make_tf2_scaffold, model_dir)
    metrics, _ = tf.estimator.train_and_evaluate(
        est,
        tf.estimator.TrainSpec(_var_input_fn, max_steps=2),
        tf.estimator.EvalSpec(_var_input_fn, steps=1, throttle_secs=0, start_delay_secs=0),
    )
    assert metrics["global_step"] == 2
    assert _tf2_values(model_dir) == {"var_list/var" + VV: 4.0, "step" + VV: 2}

    def receiver():
        x = tf1.placeholder(tf.float32, shape=[None], name="x")
        return tf.estimator.export.ServingInputReceiver({"x": x}, {"x": x})

    export_dir = est.export_saved_model(str(tmp_path / "export"), receiver).decode()
    served = tf.saved_model.load(export_dir).signatures["serving_default"](x=tf.constant([5.0]))
    np.testing.assert_allclose(served["var"].numpy(), [4.0])


# -- MonitoredTrainingSession -------------------------------------------------------------------


def _embedding_graph(initial=0.0):
    """A 3-way partitioned `emb` [10, 4] and `dense/kernel` [4, 2] trained with Adam; returns the train op."""
    emb = tf1.get_variable(
        "emb",
        shape=[10, 4],
        partitioner=tf1.fixed_size_partitioner(3),
        initializer=tf1.constant_initializer(initial),
    )
    kernel = tf1.get_variable("dense/kernel", shape=[4, 2], initializer=tf1.constant_initializer(0.5))
    loss = tf.reduce_sum(tf.matmul(tf.nn.embedding_lookup(emb, [1, 5, 9]), kernel))
    step = tf1.train.get_or_create_global_step()
    return tf1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)


def _train_mts(checkpoint_dir, make_scaffold, steps):
    with tf.Graph().as_default():
        train_op = _embedding_graph()
        with tf1.train.MonitoredTrainingSession(
            checkpoint_dir=checkpoint_dir,
            scaffold=make_scaffold(),
            save_summaries_steps=None,
            log_step_count_steps=None,
        ) as sess:
            for _ in range(steps):
                sess.run(train_op)


def _read_all_variables(make_scaffold, checkpoint_path):
    """Restores `checkpoint_path` into a fresh `_embedding_graph` with the scaffold; returns {name: value}."""
    with tf.Graph().as_default():
        _embedding_graph(initial=-1.0)
        variables = {v.op.name: v for v in tf1.global_variables()}
        creator = tf1.train.ChiefSessionCreator(
            scaffold=make_scaffold(), checkpoint_filename_with_path=checkpoint_path
        )
        with tf1.train.MonitoredSession(session_creator=creator) as sess:
            return sess.run(variables)


def test_partitioned_and_adam_round_trip_with_monitored_training_session(tmp_path):
    """Partitioned parts, Adam slots and power accumulators save object-based and restore with both scaffolds."""
    checkpoint_dir = str(tmp_path / "mts")
    _train_mts(checkpoint_dir, lambda: est_ckpt.make_tf2_scaffold(also_save_tf1=True), steps=2)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    saved = _values(latest)
    copy = _values(os.path.join(checkpoint_dir, "tf1"))
    parts = [saved[f"var_list/emb.Spart_{i}{VV}"] for i in range(3)]
    np.testing.assert_array_equal(copy["emb"], np.concatenate(parts))
    np.testing.assert_array_equal(
        copy["emb/Adam_1"], np.concatenate([saved[f"var_list/emb.Spart_{i}.SAdam_1{VV}"] for i in range(3)])
    )
    assert copy["global_step"] == 2
    assert saved["step" + VV] == 2
    assert "var_list/emb.Spart_0" + VV in saved and "var_list/emb.Spart_2.SAdam_1" + VV in saved
    assert "var_list/beta1_power" + VV in saved and "var_list/beta2_power" + VV in saved
    assert not any(k.startswith("var_list/emb/") for k in saved)
    # The parts and their slots (`emb/part_0/Adam_1`, recorded `emb/Adam_1`) join by name: the copy is an
    # index rewrite sharing the tensor bytes, not a second name-based save.
    copy_prefix = tf.train.latest_checkpoint(os.path.join(checkpoint_dir, "tf1"))
    copy_bundle, saved_bundle = (
        est_ckpt.read_checkpoint(copy_prefix).bundle,
        est_ckpt.read_checkpoint(latest).bundle,
    )
    inodes = {os.stat(saved_bundle.data_path(i)).st_ino for i in range(saved_bundle.header.num_shards)}
    assert {os.stat(copy_bundle.data_path(i)).st_ino for i in range(copy_bundle.header.num_shards)} <= inodes
    assert copy_bundle.entries["emb"].slices and copy_bundle.entries["emb/Adam_1"].slices

    by_tf2 = _read_all_variables(est_ckpt.make_tf2_scaffold, latest)
    by_tf1 = _read_all_variables(est_ckpt.make_tf1_scaffold, latest)
    assert by_tf2["global_step"] == by_tf1["global_step"] == 2
    for name, value in by_tf2.items():
        if name != "global_step":
            np.testing.assert_array_equal(value, saved[f"var_list/{est_ckpt.format.keys.escape(name)}{VV}"])
        np.testing.assert_array_equal(by_tf1[name], value)

    # Resuming training picks up where it stopped.
    _train_mts(checkpoint_dir, est_ckpt.make_tf2_scaffold, steps=1)
    assert _values(checkpoint_dir)["step" + VV] == 3

    # The name-based copy of the same values restores as well (legacy path, sliced entries).
    legacy = str(tmp_path / "legacy" / "model.ckpt-2")
    with tf.Graph().as_default():
        _embedding_graph()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for v in tf1.global_variables():
                v.load(by_tf2[v.op.name], sess)
            tf1.train.Saver().save(sess, legacy)
    assert "emb" in _values(legacy)  # one sliced entry, as TF1 writes it
    by_legacy = _read_all_variables(est_ckpt.make_tf2_scaffold, legacy)
    for name, value in by_tf2.items():
        np.testing.assert_array_equal(by_legacy[name], value)


def test_partitioned_parts_read_in_eager(tmp_path):
    """Each part of a partitioned variable is a plain tensor an eager tf.train.Checkpoint restores by the part's name."""
    checkpoint_dir = str(tmp_path / "mts")
    _train_mts(checkpoint_dir, est_ckpt.make_tf2_scaffold, steps=1)
    saved = _values(checkpoint_dir)
    part = tf.Variable(tf.zeros([4, 4]))
    tf.train.Checkpoint(var_list={"emb/part_0": part}).read(
        tf.train.latest_checkpoint(checkpoint_dir)
    ).expect_partial()
    np.testing.assert_array_equal(part.numpy(), saved["var_list/emb.Spart_0" + VV])


def test_fixture_checkpoints_restore_by_name(ckpts):
    """The name-based partitioned fixture restores into a partitioned graph through make_tf2_scaffold."""
    prefix = ckpts("partitioned")  # emb = arange(40).reshape(10, 4), dense/kernel = arange(8) + 100
    with tf.Graph().as_default():
        emb = tf1.get_variable("emb", shape=[10, 4], partitioner=tf1.fixed_size_partitioner(3))
        kernel = tf1.get_variable("dense/kernel", shape=[4, 2])
        tf1.train.get_or_create_global_step()
        scaffold = est_ckpt.make_tf2_scaffold(restore_legacy=True)
        # The fixture has no global step: leave it to its initializer with ready_op checks intact.
        creator = tf1.train.ChiefSessionCreator(scaffold=scaffold, checkpoint_filename_with_path=prefix)
        with pytest.raises(UnmappedVariablesError, match="'global_step'"):
            with tf1.train.MonitoredSession(session_creator=creator):
                pass
    with tf.Graph().as_default():
        emb = tf1.get_variable("emb", shape=[10, 4], partitioner=tf1.fixed_size_partitioner(3))
        kernel = tf1.get_variable("dense/kernel", shape=[4, 2])
        creator = tf1.train.ChiefSessionCreator(
            scaffold=est_ckpt.make_tf2_scaffold(), checkpoint_filename_with_path=prefix
        )
        whole_emb = emb.as_tensor()
        with tf1.train.MonitoredSession(session_creator=creator) as sess:
            got_emb, got_kernel = sess.run([whole_emb, kernel])
    np.testing.assert_array_equal(got_emb, np.arange(40, dtype=np.float32).reshape(10, 4))
    np.testing.assert_array_equal(got_kernel, np.arange(8, dtype=np.float32).reshape(4, 2) + 100)


# -- errors and arguments -----------------------------------------------------------------------


def _save_kernel_only(checkpoint_dir):
    with tf.Graph().as_default():
        tf1.get_variable("dense/kernel", shape=[2], initializer=tf1.ones_initializer())
        tf1.train.get_or_create_global_step()
        with tf1.train.MonitoredTrainingSession(
            checkpoint_dir=checkpoint_dir, scaffold=est_ckpt.make_tf2_scaffold(), save_summaries_steps=None
        ):
            pass
    return tf.train.latest_checkpoint(checkpoint_dir)


def test_missing_variable_is_one_error_naming_it(tmp_path):
    """A checkpoint lacking a model variable raises one error naming it, the closest names and the path."""
    prefix = _save_kernel_only(str(tmp_path / "ckpt"))
    with tf.Graph().as_default():
        tf1.get_variable("dense/kernel", shape=[2])
        tf1.get_variable("dense/kernels", shape=[2])
        tf1.get_variable("head/bias", shape=[2])
        tf1.train.get_or_create_global_step()
        creator = tf1.train.ChiefSessionCreator(
            scaffold=est_ckpt.make_tf2_scaffold(), checkpoint_filename_with_path=prefix
        )
        with pytest.raises(UnmappedVariablesError) as raised:
            tf1.train.MonitoredSession(session_creator=creator)
    assert str(raised.value) == (
        f"Checkpoint '{prefix}' (object-based) has no value for 2 variable(s) of the model: "
        "'dense/kernels' (closest in the checkpoint: 'dense/kernel'); 'head/bias' (no close name in the checkpoint). "
        "Restore a checkpoint of this model, or start from a fresh model_dir and warm-start from this checkpoint "
        "with a var_name_to_prev_var_name mapping."
    )


@pytest.mark.estimator
def test_restore_legacy_false_refuses_name_based(ckpts):
    """restore_legacy=False does not restore a name-based checkpoint, and says so."""
    prefix = ckpts.prefix("estimator_tf1")
    with tf.Graph().as_default():
        tf1.get_variable("var", shape=[])
        tf1.train.get_or_create_global_step()
        creator = tf1.train.ChiefSessionCreator(
            scaffold=est_ckpt.make_tf2_scaffold(restore_legacy=False), checkpoint_filename_with_path=prefix
        )
        with pytest.raises(UnmappedVariablesError, match="it is name-based and restore_legacy=False"):
            tf1.train.MonitoredSession(session_creator=creator)


@pytest.mark.estimator
def test_shape_change_is_one_error_naming_both_sides(ckpts):
    """A legacy checkpoint whose variable changed shape raises one MismatchError naming the variable and both shapes."""
    prefix = ckpts.prefix("estimator_tf1")  # var: float32 scalar
    with tf.Graph().as_default():
        tf1.get_variable("var", shape=[2])
        tf1.train.get_or_create_global_step()
        creator = tf1.train.ChiefSessionCreator(
            scaffold=est_ckpt.make_tf2_scaffold(), checkpoint_filename_with_path=prefix
        )
        with pytest.raises(MismatchError) as raised:
            tf1.train.MonitoredSession(session_creator=creator)
    assert str(raised.value).startswith(
        f"Checkpoint '{prefix}' does not fit the model: 'var' is float32 [2] in the model, "
        "'var' is float32 [] in the checkpoint. "
    )


@pytest.mark.parametrize(
    "fixture, make_scaffold, key",
    [
        ("estimator_tf2", est_ckpt.make_tf2_scaffold, "var_list/var" + VV),
        ("estimator_tf1", est_ckpt.make_tf1_scaffold, "var"),
    ],
)
@pytest.mark.estimator
def test_shape_change_in_a_checkpoint_of_the_same_format_is_one_error(ckpts, fixture, make_scaffold, key):
    """A checkpoint in the scaffold's own format whose variable changed shape is one MismatchError, not TF's."""
    prefix = ckpts.prefix(fixture)  # var: float32 scalar
    with tf.Graph().as_default():
        tf1.get_variable("var", shape=[2])
        tf1.train.get_or_create_global_step()
        creator = tf1.train.ChiefSessionCreator(
            scaffold=make_scaffold(), checkpoint_filename_with_path=prefix
        )
        with pytest.raises(MismatchError) as raised:
            tf1.train.MonitoredSession(session_creator=creator)
    assert str(raised.value).startswith(
        f"Checkpoint '{prefix}' does not fit the model: 'var' is float32 [2] in the model, "
        f"'{key}' is float32 [] in the checkpoint. "
    )


def test_saver_argument_is_a_type_error():
    """Passing saver= is refused with the reason, and a config that is not a RunConfig too."""
    with pytest.raises(TypeError, match="the scaffold's saver is what make_tf2_scaffold provides"):
        est_ckpt.make_tf2_scaffold(saver=object())
    with pytest.raises(TypeError, match="make_tf1_scaffold"):
        est_ckpt.make_tf1_scaffold(saver=object())
    with pytest.raises(TypeError, match="'config' must be the tf.estimator.RunConfig .* \\(got dict\\)"):
        est_ckpt.make_tf2_scaffold(config={"keep_checkpoint_max": 1})
    with pytest.raises(TypeError, match="make_tf1_scaffold\\(\\): 'config'"):
        est_ckpt.make_tf1_scaffold(config=object())


def test_objects_layout_and_unreachable_warning(tmp_path):
    """objects= saves Checkpoint(**objects, step=...) and warns once naming the global variables left out."""
    checkpoint_dir = str(tmp_path / "objects")
    with tf.Graph().as_default():
        module = tf.Module()
        module.w = tf1.get_variable("w", shape=[2], initializer=tf1.constant_initializer(3.0))
        tf1.get_variable("stray", shape=[], initializer=tf1.zeros_initializer())
        tf1.train.get_or_create_global_step()
        scaffold = est_ckpt.make_tf2_scaffold({"model": module})
        with pytest.warns(
            UserWarning,
            match=r"1 global variable\(s\) are reachable from none of the objects \['model'\].*'stray'",
        ):
            with tf1.train.MonitoredTrainingSession(
                checkpoint_dir=checkpoint_dir, scaffold=scaffold, save_summaries_steps=None
            ):
                pass
    saved = _values(checkpoint_dir)
    assert set(saved) == {"model/w" + VV, "step" + VV, SAVE_COUNTER}
    np.testing.assert_array_equal(saved["model/w" + VV], [3.0, 3.0])


def _restore_partitioned(path, make_scaffold, partitioner):
    """Restores `path` into a graph of a partitioned `emb` [10, 4] and `dense/kernel`; returns both values."""
    with tf.Graph().as_default():
        emb = tf1.get_variable("emb", shape=[10, 4], partitioner=partitioner)
        kernel = tf1.get_variable("dense/kernel", shape=[4, 2])
        whole = emb.as_tensor()
        creator = tf1.train.ChiefSessionCreator(scaffold=make_scaffold(), checkpoint_filename_with_path=path)
        with tf1.train.MonitoredSession(session_creator=creator) as sess:
            return sess.run([whole, kernel])


def test_whole_sliced_entry_restores_into_parts_with_both_scaffolds(ckpts, tmp_path):
    """A partitioned variable stored as one sliced entry (est-ckpt convert --to tf2) restores into parts with both scaffolds."""
    converted = est_ckpt.convert_checkpoint(ckpts("partitioned"), str(tmp_path / "tf2" / "ckpt-1"), to="tf2")
    assert est_ckpt.read_checkpoint(converted).format == "tf2"
    for make in (est_ckpt.make_tf2_scaffold, est_ckpt.make_tf1_scaffold):
        got_emb, got_kernel = _restore_partitioned(converted, make, tf1.fixed_size_partitioner(2))
        np.testing.assert_array_equal(got_emb, np.arange(40, dtype=np.float32).reshape(10, 4))
        np.testing.assert_array_equal(got_kernel, np.arange(8, dtype=np.float32).reshape(4, 2) + 100)


def test_parts_split_along_axis_1_restore_by_name(ckpts, tmp_path):
    """Parts saved one by one along axis 1, and their conversion to one sliced entry, restore into the same
    axis-1 partitioned graph by name: each part from the part of its number, or sliced out of the whole."""
    parts = ckpts("partitioned_tf2", axis=1)
    converted = est_ckpt.convert_checkpoint(parts, str(tmp_path / "tf1" / "ckpt-1"), to="tf1")
    runs = [
        (parts, est_ckpt.make_tf1_scaffold),
        (converted, est_ckpt.make_tf1_scaffold),
        (converted, est_ckpt.make_tf2_scaffold),
    ]
    for path, make in runs:
        got_emb, got_kernel = _restore_partitioned(path, make, tf1.fixed_size_partitioner(3, axis=1))
        np.testing.assert_array_equal(got_emb, np.arange(40, dtype=np.float32).reshape(10, 4))
        np.testing.assert_array_equal(got_kernel, np.arange(8, dtype=np.float32).reshape(4, 2) + 100)


def test_other_object_layout_restores_by_recorded_names(tmp_path):
    """make_tf2_scaffold restores an object-based checkpoint of another layout by the full_names it records."""
    checkpoint_dir = str(tmp_path / "objects")
    with tf.Graph().as_default():
        module = tf.Module()
        module.w = tf1.get_variable("w", shape=[2], initializer=tf1.constant_initializer(3.0))
        tf1.train.get_or_create_global_step()
        with tf1.train.MonitoredTrainingSession(
            checkpoint_dir=checkpoint_dir,
            scaffold=est_ckpt.make_tf2_scaffold({"model": module}),
            save_summaries_steps=None,
        ):
            pass
    with tf.Graph().as_default():
        w = tf1.get_variable("w", shape=[2])
        step = tf1.train.get_or_create_global_step()
        creator = tf1.train.ChiefSessionCreator(
            scaffold=est_ckpt.make_tf2_scaffold(), checkpoint_dir=checkpoint_dir
        )
        with tf1.train.MonitoredSession(session_creator=creator) as sess:
            got_w, got_step = sess.run([w, step])
    np.testing.assert_array_equal(got_w, [3.0, 3.0])
    assert got_step == 0


def _keras_model_fn(features, labels, mode):
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, kernel_initializer="ones")])
    out = model(features["x"])
    step = tf1.train.get_or_create_global_step()
    opt = tf.keras.optimizers.legacy.Adam(0.1)
    loss = tf.reduce_mean(tf.square(out - labels))
    grads = tf.gradients(loss, model.trainable_variables)
    train_op = tf.group(opt.apply_gradients(zip(grads, model.trainable_variables)), step.assign_add(1))
    scaffold = est_ckpt.make_tf2_scaffold({"model": model, "optimizer": opt}, also_save_tf1=True)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op, scaffold=scaffold)


@pytest.mark.estimator
def test_keras_objects_two_way(tmp_path):
    """objects={'model': keras_model, 'optimizer': opt} saves Keras' own layout, which eager Keras restores; training resumes."""
    model_dir = str(tmp_path / "keras")
    est = tf.estimator.Estimator(_keras_model_fn, model_dir, config=tf.estimator.RunConfig(**QUIET))
    est.train(_dense_input_fn, steps=2)
    saved = _values(model_dir)
    kernel_key = "model/layer_with_weights-0/kernel" + VV
    assert kernel_key in saved and saved["step" + VV] == 2
    assert "model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m" + VV in saved

    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    model.build([None, 2])
    opt = tf.keras.optimizers.legacy.Adam(0.1)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, step=tf.Variable(0, dtype=tf.int64))
    ckpt.read(tf.train.latest_checkpoint(model_dir)).assert_existing_objects_matched()
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), saved[kernel_key])

    copy = _values(os.path.join(model_dir, "tf1"))
    np.testing.assert_array_equal(copy["sequential/dense/kernel"], saved[kernel_key])
    assert copy["global_step"] == 2
    est.train(_dense_input_fn, steps=1)
    assert _values(model_dir)["step" + VV] == 3
