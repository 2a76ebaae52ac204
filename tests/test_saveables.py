"""State outside variables (issue 10, parts 1 and 2), with real TensorFlow and Estimator.

Each model keeps a counter outside variables: a MutableHashTable, a
DenseHashTable, or a resource saved only through its own SaveableObject in
`GraphKeys.SAVEABLE_OBJECTS` (as BoostedTrees' tree ensemble is), updated by
1001 every step; or a StaticHashTable from a vocabulary file (no state). What
is checked is the counter after each run, and every checkpoint's keys and
values read back with TF's own reader.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.fixtures import VV

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

from tensorflow.python.ops import gen_lookup_ops, resources  # noqa: E402
from tensorflow.python.training.saving import saveable_object  # noqa: E402

import est_ckpt  # noqa: E402
from est_ckpt.errors import UnmappedVariablesError, UnsavedStateError  # noqa: E402
from est_ckpt.tools.convert import convert_checkpoint  # noqa: E402
from est_ckpt.tools.verify import verify_checkpoint  # noqa: E402

GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
QUIET = {"save_summary_steps": 10**9, "log_step_count_steps": None}
KEY = 7


@pytest.fixture(autouse=True, scope="module")
def _quiet_tf():
    tf.get_logger().setLevel("ERROR")


def _values(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k != GRAPH}


class EnsembleSaveable(saveable_object.SaveableObject):
    """Like BoostedTrees' TreeEnsemble: a stamp and a serialized state; restore is the only way back."""

    def __init__(self, var, name, op=None):
        self._var = var
        specs = [
            saveable_object.SaveSpec(var.read_value(), "", name + "_stamp"),
            saveable_object.SaveSpec(tf.io.serialize_tensor(var.read_value()), "", name + "_serialized"),
        ]
        # TF documents `op` as "the 'producer' object that this saveable wraps": a variable, its handle,
        # a name. Whatever it is, the specs are what a name-based Saver saves.
        super().__init__(var.handle if op is None else op, specs, name)

    def restore(self, restored_tensors, restored_shapes):
        del restored_shapes
        return self._var.assign(tf.io.parse_tensor(restored_tensors[1], tf.int64), read_value=False)


# The `op` of the custom SaveableObject: the variable's handle, the variable itself, its name.
CUSTOM_OPS = {
    "custom": lambda var: var.handle,
    "custom_variable_op": lambda var: var,
    "custom_name_op": lambda var: var.op.name,
}


def _ensemble(kind="custom"):
    var = tf1.Variable(
        0, dtype=tf.int64, trainable=False, collections=[], name="ensemble_state", use_resource=True
    )
    resources.register_resource(var.handle, var.initializer, var.is_initialized())
    tf1.add_to_collection(
        tf1.GraphKeys.SAVEABLE_OBJECTS, EnsembleSaveable(var, "ensemble", CUSTOM_OPS[kind](var))
    )
    return var


def _state(kind, vocab):
    """`(update op, counter tensor)` of the model's state of `kind`."""
    k = tf.constant([KEY], tf.int64)
    if kind == "mutable":
        table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0, name="counts")
        return table.insert(k, table.lookup(k) + 1001), table.lookup(k)[0]
    if kind == "dense":
        table = tf.lookup.experimental.DenseHashTable(
            tf.int64, tf.int64, 0, empty_key=-1, deleted_key=-2, initial_num_buckets=8, name="dense"
        )
        return table.insert(k, table.lookup(k) + 1001), table.lookup(k)[0]
    if kind in CUSTOM_OPS:
        var = _ensemble(kind)
        return var.assign_add(1001, read_value=False), var.read_value()
    table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            vocab,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        -1,
    )
    return tf.no_op(), table.lookup(tf.constant("c"))


def _model_fn(kind, vocab, make_scaffold):
    def model_fn(features, labels, mode):
        del labels
        w = tf1.get_variable("w", [1], initializer=tf1.ones_initializer())
        update, counter = _state(kind, vocab)
        step = tf1.train.get_or_create_global_step()
        with tf.control_dependencies([update]):
            train_op = step.assign_add(1)
        preds = {"c": tf.fill(tf.shape(features["x"])[:1], counter)}
        return tf.estimator.EstimatorSpec(
            mode,
            loss=tf.reduce_sum(w * w),
            train_op=train_op,
            predictions=preds,
            scaffold=make_scaffold() if make_scaffold else None,
        )

    return model_fn


def _input_fn():
    return tf.data.Dataset.from_tensors(({"x": [[1.0]]}, [[1.0]])).repeat()


def _train(kind, vocab, model_dir, make_scaffold, steps):
    est = tf.estimator.Estimator(
        _model_fn(kind, vocab, make_scaffold), model_dir, config=tf.estimator.RunConfig(**QUIET)
    )
    est.train(_input_fn, steps=steps)
    return int(next(est.predict(_input_fn))["c"])


def _expected(kind, steps):
    return 2 if kind == "static" else 1001 * steps


@pytest.fixture
def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\nc\n")
    return str(path)


STATE_KEYS = {
    "mutable": {"counts-keys", "counts-values"},
    "dense": {"dense-keys", "dense-values"},
    "custom": {"ensemble_stamp", "ensemble_serialized"},
    "static": set(),
}
STATE_KEYS.update({kind: STATE_KEYS["custom"] for kind in CUSTOM_OPS})
TF2_KEYS = {
    "mutable": {"var_list/counts/.ATTRIBUTES/table-keys", "var_list/counts/.ATTRIBUTES/table-values"},
    "dense": {"var_list/dense/.ATTRIBUTES/table-keys", "var_list/dense/.ATTRIBUTES/table-values"},
    "custom": {
        "var_list/ensemble/.ATTRIBUTES/ensemble_stamp",
        "var_list/ensemble/.ATTRIBUTES/ensemble_serialized",
    },
    "static": set(),
}
TF2_KEYS.update({kind: TF2_KEYS["custom"] for kind in CUSTOM_OPS})


@pytest.mark.estimator
@pytest.mark.parametrize("kind", ["mutable", "dense", *CUSTOM_OPS, "static"])
def test_state_through_fresh_legacy_tf1_copy_and_convert(kind, vocab, tmp_path):
    """Every layout saves and restores the state TF's default Saver does, under TF1's keys where name-based."""
    legacy = str(tmp_path / "legacy")
    assert _train(kind, vocab, legacy, None, 2) == _expected(kind, 2)
    assert _train(kind, vocab, legacy, None, 1) == _expected(kind, 3)
    tf1_saved = _values(legacy)
    assert set(tf1_saved) == {"w", "global_step"} | STATE_KEYS[kind]

    # Fresh dir, with the tf1/ copy: the state survives a restart, and the copy holds exactly TF1's keys.
    fresh = str(tmp_path / "fresh")
    make = lambda: est_ckpt.make_tf2_scaffold(also_save_tf1=True)  # noqa: E731
    assert _train(kind, vocab, fresh, make, 2) == _expected(kind, 2)
    assert _train(kind, vocab, fresh, make, 1) == _expected(kind, 3)
    saved = _values(fresh)
    assert set(saved) == {"var_list/w" + VV, "step" + VV, "save_counter" + VV} | TF2_KEYS[kind]
    info = est_ckpt.read_checkpoint(fresh)
    assert {info.tensors[k].name for k in TF2_KEYS[kind]} == STATE_KEYS[kind]
    copy = _values(f"{fresh}/tf1")
    assert set(copy) == set(tf1_saved)
    for key in STATE_KEYS[kind] - {"ensemble_serialized"}:
        np.testing.assert_array_equal(copy[key], tf1_saved[key])
    assert verify_checkpoint(fresh).ok

    # A legacy dir continues object-based, by name; and goes back name-based with make_tf1_scaffold.
    continued = str(tmp_path / "continued")
    shutil.copytree(legacy, continued)
    assert _train(kind, vocab, continued, est_ckpt.make_tf2_scaffold, 1) == _expected(kind, 4)
    assert set(_values(continued)) == set(saved)
    assert _train(kind, vocab, continued, est_ckpt.make_tf1_scaffold, 1) == _expected(kind, 5)
    assert set(_values(continued)) == set(tf1_saved)

    # convert --to tf2 gives the scaffold's layout, restored as is; --to tf1 back gives TF1's keys and values.
    converted = str(tmp_path / "converted")
    tf2_prefix = convert_checkpoint(legacy, converted + "/", to="tf2")
    if kind in CUSTOM_OPS:
        # Nothing in a name-based checkpoint says which tensors one SaveableObject saved: each is keyed alone.
        keyed_alone = {f"var_list/{k}{VV}" for k in STATE_KEYS[kind]}
        assert set(_values(tf2_prefix)) == set(saved) - TF2_KEYS[kind] | keyed_alone
    else:
        assert set(_values(tf2_prefix)) == set(saved)
    assert _values(tf2_prefix)["save_counter" + VV] == 1
    assert verify_checkpoint(tf2_prefix).ok
    back = convert_checkpoint(tf2_prefix, str(tmp_path / "back" / "model.ckpt-3"), to="tf1")
    back_values = _values(back)
    assert set(back_values) == set(tf1_saved)
    for key, value in tf1_saved.items():
        np.testing.assert_array_equal(back_values[key], value)
    assert _train(kind, vocab, converted, est_ckpt.make_tf2_scaffold, 1) == _expected(kind, 4)


@pytest.mark.estimator
def test_restore_idioms_on_the_scaffold_and_convert_output(tmp_path):
    """tf.train.Checkpoint(<same objects>) matches (and consumes) a scaffold's checkpoint and convert's."""
    fresh = str(tmp_path / "fresh")
    _train("mutable", None, fresh, est_ckpt.make_tf2_scaffold, 2)
    legacy = str(tmp_path / "legacy")
    _train("mutable", None, legacy, None, 2)
    converted = convert_checkpoint(legacy, str(tmp_path / "converted") + "/", to="tf2")
    for path in (tf.train.latest_checkpoint(fresh), converted):
        w, step = tf.Variable([0.0]), tf.Variable(0, dtype=tf.int64)
        table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0)
        ckpt = tf.train.Checkpoint(var_list={"w": w, "counts": table}, step=step)
        status = ckpt.restore(path)
        status.assert_existing_objects_matched()
        status.assert_consumed()
        assert int(table.lookup(tf.constant([KEY], tf.int64))[0]) == 2002
        assert int(step.numpy()) == 2
        np.testing.assert_array_equal(w.numpy(), _values(path)["var_list/w" + VV])
        assert int(ckpt.save_counter.numpy()) == _values(path)["save_counter" + VV] >= 1
        # The same in a graph, as a TF1 program restores it.
        with tf.Graph().as_default():
            w = tf1.get_variable("w", [1])
            step = tf1.train.get_or_create_global_step()
            table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0, name="counts")
            status = tf.train.Checkpoint(var_list={"w": w, "counts": table}, step=step).restore(path)
            status.assert_existing_objects_matched()
            status.assert_consumed()
            counter = table.lookup(tf.constant([KEY], tf.int64))
            with tf1.Session() as sess:
                status.initialize_or_restore(sess)
                assert sess.run(counter).tolist() == [2002] and sess.run(step) == 2


def _keras_model_fn(features, labels, mode):
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, kernel_initializer="ones")])
    table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0, name="counts")
    k = tf.constant([KEY], tf.int64)
    loss = tf.reduce_mean(tf.square(model(features["x"]) - labels))
    step = tf1.train.get_or_create_global_step()
    opt = tf1.train.GradientDescentOptimizer(0.1)
    train_op = tf.group(opt.minimize(loss, var_list=model.trainable_variables), step.assign_add(1))
    train_op = tf.group(train_op, table.insert(k, table.lookup(k) + 1001))
    scaffold = est_ckpt.make_tf2_scaffold({"model": model, "table": table})
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op, scaffold=scaffold)


def _dense_input_fn():
    return tf.data.Dataset.from_tensors(({"x": [[1.0, 2.0]]}, [[1.0]])).repeat()


@pytest.mark.estimator
def test_objects_layout_matches_checkpoint_and_keras_load_weights(tmp_path):
    """objects={'model': keras_model, ...}: assert_consumed with every object given, and Keras load_weights."""
    model_dir = str(tmp_path / "keras")
    est = tf.estimator.Estimator(_keras_model_fn, model_dir, config=tf.estimator.RunConfig(**QUIET))
    est.train(_dense_input_fn, steps=2)
    saved = _values(model_dir)
    kernel = "model/layer_with_weights-0/kernel" + VV
    assert set(saved) == {
        kernel,
        "model/layer_with_weights-0/bias" + VV,
        "table/.ATTRIBUTES/table-keys",
        "table/.ATTRIBUTES/table-values",
        "step" + VV,
        "save_counter" + VV,
    }
    path = tf.train.latest_checkpoint(model_dir)

    model = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    model.build([None, 2])
    table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0)
    status = tf.train.Checkpoint(model=model, table=table, step=tf.Variable(0, dtype=tf.int64)).restore(path)
    status.assert_existing_objects_matched()
    status.assert_consumed()
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), saved[kernel])
    assert int(table.lookup(tf.constant([KEY], tf.int64))[0]) == 2002

    loaded = tf.keras.Sequential([tf.keras.layers.Dense(1)])
    loaded.build([None, 2])
    loaded.load_weights(path)
    np.testing.assert_array_equal(loaded.layers[0].kernel.numpy(), saved[kernel])
    # est_ckpt's reader keeps the paths through the model, though the root also lists its children.
    assert est_ckpt.read_checkpoint(path).tensors[kernel].object_path == "model/layer_with_weights-0/kernel"
    est.train(_dense_input_fn, steps=1)
    assert _values(model_dir)["step" + VV] == 3


def _old_scaffold_dir(model_dir):
    """A model dir as make_tf2_scaffold wrote it before it saved state: variables only, no save_counter."""
    os.makedirs(model_dir)
    with tf.Graph().as_default():
        w = tf1.get_variable("w", [1], initializer=tf1.constant_initializer(5.0))
        step = tf1.train.get_or_create_global_step()
        root = tf.train.Checkpoint(var_list={"w": w}, step=step)
        from tensorflow.python.checkpoint import graph_view

        saver = tf1.train.Saver(graph_view.ObjectGraphView(root).frozen_saveable_objects(), sharded=True)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(step.assign(2))
            saver.save(sess, f"{model_dir}/model.ckpt", global_step=2)
    assert "save_counter" + VV not in _values(model_dir)


@pytest.mark.estimator
def test_checkpoint_without_save_counter_still_restores(tmp_path):
    model_dir = str(tmp_path / "old")
    _old_scaffold_dir(model_dir)
    assert _train("static", _vocab(tmp_path), model_dir, est_ckpt.make_tf2_scaffold, 1) == 2
    saved = _values(model_dir)
    assert saved["step" + VV] == 3 and saved["save_counter" + VV] >= 1
    np.testing.assert_array_equal(saved["var_list/w" + VV], [5.0])


def _vocab(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("a\nb\nc\n")
    return str(path)


@pytest.mark.estimator
def test_old_scaffold_dir_of_a_model_with_tables_names_the_unsaved_state(tmp_path):
    """Deliberate: the old scaffold never saved the tables; restarting says so instead of starting them empty."""
    model_dir = str(tmp_path / "old")
    _old_scaffold_dir(model_dir)
    with pytest.raises(UnmappedVariablesError) as e:
        _train("mutable", None, model_dir, est_ckpt.make_tf2_scaffold, 1)
    message = str(e.value)
    assert "'counts-keys'" in message and "'counts-values'" in message
    assert "GraphKeys.SAVEABLE_OBJECTS" in message and "never saved" in message


def _finalize(build, **kwargs):
    with tf.Graph().as_default():
        objects = build()
        tf1.train.get_or_create_global_step()
        est_ckpt.make_tf2_scaffold(objects, **kwargs).finalize()


def test_unsavable_state_is_an_error_at_finalize():
    def unreachable():
        w = tf1.get_variable("w", [1])
        tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0, name="lost")
        return {"holder": tf.train.Checkpoint(w=w)}

    with pytest.raises(UnsavedStateError, match="'lost'"):
        _finalize(unreachable)

    def clash():
        tf1.get_variable("same", [1])
        tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0, name="same")
        return None

    with pytest.raises(UnsavedStateError, match="'same'"):
        _finalize(clash)

    def not_saveable():
        tf1.get_variable("w", [1])
        tf1.add_to_collection(tf1.GraphKeys.SAVEABLE_OBJECTS, tf.constant(1.0, name="stray"))
        return None

    def twice():
        tf1.get_variable("w", [1])
        tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0, name="twice")
        tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0, name="twice")
        return None

    with pytest.raises(UnsavedStateError, match="share the name.*'twice'"):
        _finalize(twice)

    with pytest.raises(UnsavedStateError, match="stray"):
        _finalize(not_saveable)


class TableBehindOwnSpecs(saveable_object.SaveableObject):
    """A SaveableObject whose `op` is a table but whose specs are its own (`odd_k`, `odd_v`)."""

    def __init__(self, table, name):
        self._table = table
        keys_, values_ = table.export()
        specs = [
            saveable_object.SaveSpec(keys_, "", name + "_k"),
            saveable_object.SaveSpec(values_, "", name + "_v"),
        ]
        super().__init__(table, specs, name)

    def restore(self, restored_tensors, restored_shapes):
        del restored_shapes
        return gen_lookup_ops.lookup_table_import_v2(self._table.resource_handle, *restored_tensors)


def test_a_table_behind_its_own_specs_saves_those_specs(tmp_path):
    """`op` a table, specs not `<name>-keys`/`-values`: the specs are saved, as TF's Saver saves them."""
    with tf.Graph().as_default():
        tf1.get_variable("w", [1])
        table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0, name="odd", checkpoint=False)
        insert = table.insert(tf.constant([KEY], tf.int64), tf.constant([5], tf.int64))
        tf1.add_to_collection(tf1.GraphKeys.SAVEABLE_OBJECTS, TableBehindOwnSpecs(table, "odd"))
        step = tf1.train.get_or_create_global_step()
        scaffold = est_ckpt.make_tf2_scaffold()
        scaffold.finalize()
        with tf1.Session() as session:
            session.run(scaffold.init_op)
            session.run([scaffold.local_init_op, insert])
            prefix = scaffold.saver.save(session, str(tmp_path / "model.ckpt"), global_step=step)
    saved = _values(prefix)
    assert {k for k in saved if "odd" in k} == {
        "var_list/odd/.ATTRIBUTES/odd_k",
        "var_list/odd/.ATTRIBUTES/odd_v",
    }
    assert saved["var_list/odd/.ATTRIBUTES/odd_v"].tolist() == [5]
    assert {t.name for t in est_ckpt.read_checkpoint(prefix).tensors.values()} >= {"odd_k", "odd_v"}


def test_verify_accepts_a_table_tf_saved_eagerly(tmp_path):
    """TF's eager tables record one attribute `table` for table-keys and table-values: sound, per verify."""
    table = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0)
    table.insert(tf.constant([1, 2], tf.int64), tf.constant([10, 20], tf.int64))
    path = tf.train.Checkpoint(t=table).save(str(tmp_path / "eager"))
    assert {"t/.ATTRIBUTES/table-keys", "t/.ATTRIBUTES/table-values"} <= set(_values(path))
    report = verify_checkpoint(path)
    assert report.ok, report.problems


def test_objects_may_hold_a_saveable_object(tmp_path):
    """A SaveableObject given in objects= is saved there, by its own restore op."""
    with tf.Graph().as_default():
        var = _ensemble()
        saveable = tf1.get_collection(tf1.GraphKeys.SAVEABLE_OBJECTS)[0]
        step = tf1.train.get_or_create_global_step()
        train_op = tf.group(var.assign_add(1001), step.assign_add(1))
        scaffold = est_ckpt.make_tf2_scaffold({"trees": saveable})
        with tf1.train.MonitoredTrainingSession(
            checkpoint_dir=str(tmp_path), scaffold=scaffold, save_checkpoint_steps=1
        ) as sess:
            sess.run(train_op)
    saved = _values(str(tmp_path))
    assert {"trees/.ATTRIBUTES/ensemble_stamp", "trees/.ATTRIBUTES/ensemble_serialized"} <= set(saved)
    assert saved["trees/.ATTRIBUTES/ensemble_stamp"] == 1001
    with tf.Graph().as_default():
        var = _ensemble()
        saveable = tf1.get_collection(tf1.GraphKeys.SAVEABLE_OBJECTS)[0]
        tf1.train.get_or_create_global_step()
        scaffold = est_ckpt.make_tf2_scaffold({"trees": saveable})
        with tf1.train.MonitoredTrainingSession(checkpoint_dir=str(tmp_path), scaffold=scaffold) as sess:
            assert sess.run(var) == 1001


@pytest.mark.estimator
def test_evaluate_and_export_saved_model_carry_the_table(tmp_path):
    """evaluate restores the object-based checkpoint; the exported SavedModel serves the trained table."""
    model_dir = str(tmp_path / "export")
    est = tf.estimator.Estimator(
        _model_fn("mutable", None, est_ckpt.make_tf2_scaffold),
        model_dir,
        config=tf.estimator.RunConfig(**QUIET),
    )
    est.train(_input_fn, steps=2)
    assert est.evaluate(_input_fn, steps=1)["global_step"] == 2

    def receiver():
        x = tf1.placeholder(tf.float32, shape=[None, 1], name="x")
        return tf.estimator.export.ServingInputReceiver({"x": x}, {"x": x})

    export_dir = est.export_saved_model(str(tmp_path / "saved"), receiver).decode()
    served = tf.saved_model.load(export_dir).signatures["serving_default"](x=tf.constant([[1.0]]))
    assert served["c"].numpy().tolist() == [2002]


EST_CKPT = os.path.join(os.path.dirname(sys.executable), "est-ckpt")


@pytest.mark.estimator
@pytest.mark.parametrize("kind", ["dense", "custom"])
def test_cli_reads_the_state(kind, tmp_path):
    """inspect, verify, diff, map and convert (both ways) read checkpoints that hold tables and SaveableObjects."""
    fresh, legacy = str(tmp_path / "fresh"), str(tmp_path / "legacy")
    _train(kind, None, fresh, lambda: est_ckpt.make_tf2_scaffold(also_save_tf1=True), 2)
    _train(kind, None, legacy, None, 2)

    def cli(*args):
        done = subprocess.run([EST_CKPT, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = cli("inspect", fresh)
    for key in TF2_KEYS[kind]:
        info = est_ckpt.read_checkpoint(fresh).tensors[key]
        assert key in shown and info.name in shown
    assert "OK" in cli("verify", fresh)
    assert cli("diff", f"{fresh}/tf1", fresh).strip().endswith("equal")
    assert "0 unmapped" in cli("map", legacy, "--target", fresh)
    cli("convert", legacy, str(tmp_path / "c2" / "model.ckpt-2"), "--to=tf2")
    cli("convert", str(tmp_path / "c2"), str(tmp_path / "c1" / "model.ckpt-2"), "--to=tf1")
    assert cli("diff", legacy, str(tmp_path / "c2")).strip().endswith("equal")
    assert cli("diff", legacy, str(tmp_path / "c1")).strip().endswith("equal")
    assert "OK" in cli("verify", str(tmp_path / "c2"))


def test_the_saver_in_a_scaffold_of_its_own_counts_from_one(tmp_path):
    """A Scaffold built around the saver (merged, as a wrapper may do) with its own init_fn saves and restores."""
    # The hook saves when the session is created and at the end: two saves per run.
    for counted, steps in ((2, 1), (4, 2)):
        with tf.Graph().as_default():
            w = tf1.get_variable("w", [1], initializer=tf1.ones_initializer())
            step = tf1.train.get_or_create_global_step()
            train_op = tf.group(w.assign_add([1.0]), step.assign_add(1))
            saver = est_ckpt.make_tf2_scaffold().saver
            scaffold = tf1.train.Scaffold(saver=saver, init_fn=lambda scaffold, session: None)
            with tf1.train.MonitoredTrainingSession(
                checkpoint_dir=str(tmp_path), scaffold=scaffold, save_checkpoint_steps=100
            ) as sess:
                sess.run(train_op)
        saved = _values(str(tmp_path))
        assert (saved["save_counter" + VV], saved["step" + VV]) == (counted, steps)
        np.testing.assert_array_equal(saved["var_list/w" + VV], [1.0 + steps])
