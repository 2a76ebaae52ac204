"""Where teams go next: TensorFlow 2.16+ with Keras 3 and numpy 2, no Estimator (`make test`'s third environment).

What must hold there: the core reads and writes what Keras 3 and TF write, the
graph-mode `warm_start` runs without Estimator (`test_warm_start_compat` runs
TF's own warm-start suite through it there), and what needs Estimator says
so in one line, from the library and from the CLI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli import assert_one_error_line, run_cli

pytestmark = pytest.mark.keras3

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def keras3_ckpt(tmp_path_factory):
    """A Keras 3 model with Adam after one training step, saved by `tf.train.Checkpoint`: its prefix."""
    keras = tf.keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    model.fit(x, np.ones((4, 1), np.float32), epochs=1, verbose=0)
    root = tmp_path_factory.mktemp("keras3")
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(str(root / "ckpt"))


def test_core_reads_a_keras3_checkpoint_as_tensorflow_does(keras3_ckpt):
    """Keys, dtypes, shapes and every value of a Keras 3 checkpoint, as TF's own reader gives them."""
    import est_ckpt

    reference = tf.train.load_checkpoint(keras3_ckpt)
    info = est_ckpt.read_checkpoint(keras3_ckpt)
    expected = reference.get_variable_to_shape_map()
    assert set(info.tensors) == set(expected)
    for key, tensor in info.tensors.items():
        assert list(tensor.shape) == expected[key], key
    assert est_ckpt.verify_checkpoint(keras3_ckpt).ok


def test_keras3_checkpoint_round_trips_through_tf1_names(keras3_ckpt, tmp_path):
    """`convert --to=tf1` and back: TF reads every value of both copies bit for bit."""
    reference = tf.train.load_checkpoint(keras3_ckpt)
    tf1_dir, back_dir = tmp_path / "tf1", tmp_path / "back"
    proc = run_cli("convert", keras3_ckpt, f"{tf1_dir}/", "--to=tf1")
    assert proc.returncode == 0, proc.stderr
    tf1_prefix = tf.train.latest_checkpoint(str(tf1_dir))
    named = tf.train.load_checkpoint(tf1_prefix)
    names = {n for n, _ in tf.train.list_variables(tf1_prefix)}
    assert names, "no variables in the name-based copy"
    proc = run_cli("convert", tf1_prefix, f"{back_dir}/", f"--like={keras3_ckpt}")
    assert proc.returncode == 0, proc.stderr
    back = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(back_dir)))
    for key, dtype in reference.get_variable_to_dtype_map().items():
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH" or dtype == tf.string:
            continue
        np.testing.assert_array_equal(back.get_tensor(key), reference.get_tensor(key), err_msg=key)
    assert all(named.has_tensor(n) for n in names)


def test_warm_start_in_graph_mode_needs_no_estimator(keras3_ckpt):
    """`est_ckpt.warm_start` from a name-based checkpoint written by TF 2.16+'s Saver, with no Estimator."""
    import est_ckpt

    with tf.Graph().as_default():
        tf1 = tf.compat.v1
        w = tf1.get_variable("w", initializer=np.arange(6, dtype=np.float32).reshape(2, 3))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(sess, f"{keras3_ckpt}-graph")
    with tf.Graph().as_default():
        w = tf1.get_variable("w", shape=[2, 3], initializer=tf1.zeros_initializer())
        est_ckpt.warm_start(prefix, ".*")
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            np.testing.assert_array_equal(sess.run(w), np.arange(6, dtype=np.float32).reshape(2, 3))


def test_what_needs_estimator_says_it_is_gone_in_one_line(tf1_ckpt):
    """On TF 2.16+ the message says Estimator ended with TF 2.15; it never suggests a version that does not exist."""
    import est_ckpt
    from est_ckpt.errors import MissingDependencyError

    with pytest.raises(MissingDependencyError) as e:
        est_ckpt.warm_start_settings(tf1_ckpt, ".*")
    message = str(e.value)
    assert "TF 2.15 is the last release" in message and "est-ckpt[estimator]" in message
    assert f"tensorflow-estimator=={tf.__version__.rsplit('.', 1)[0]}" not in message
    assert_one_error_line(run_cli("demo"), "est-ckpt[estimator]")


def _tf1_optimizer(name: str):
    tf1 = tf.compat.v1
    return {
        "adam": lambda: tf1.train.AdamOptimizer(0.01, epsilon=1e-7),
        "rmsprop": lambda: tf1.train.RMSPropOptimizer(0.01, decay=0.9, momentum=0.5, epsilon=1e-7),
        "adagrad": lambda: tf1.train.AdagradOptimizer(0.1, initial_accumulator_value=0.1),
        "sgd_momentum": lambda: tf1.train.MomentumOptimizer(0.1, momentum=0.9),
    }[name]()


def _keras3_optimizer(name: str):
    optimizers = tf.keras.optimizers
    return {
        "adam": lambda: optimizers.Adam(0.01, epsilon=1e-7),
        "rmsprop": lambda: optimizers.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-7),
        "adagrad": lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-7),
        "sgd_momentum": lambda: optimizers.SGD(0.1, momentum=0.9),
    }[name]()


@pytest.mark.parametrize("name", ["adam", "rmsprop", "adagrad", "sgd_momentum"])
def test_tf1_optimizer_state_onto_a_keras3_model(name, tmp_path):
    """A TF1 graph's slots land in a Keras 3 optimizer's (tied by its own edges): one more step agrees with TF1's."""
    x = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    y = np.array([[1.0], [0.0]], np.float32)
    tf1 = tf.compat.v1
    (tmp_path / "src").mkdir()
    with tf.Graph().as_default():
        kernel = tf1.get_variable("seq/dense/kernel", initializer=[[0.5], [-1.0]])
        bias = tf1.get_variable("seq/dense/bias", initializer=[0.25])
        loss = tf.reduce_mean(tf.square(tf.matmul(x, kernel) + bias - y))
        step = tf1.train.get_or_create_global_step()
        train_op = _tf1_optimizer(name).minimize(loss, global_step=step)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            for _ in range(3):
                session.run(train_op)
            tf1.train.Saver().save(session, str(tmp_path / "src" / "model.ckpt"), global_step=step)
            session.run(train_op)
            expected = session.run([kernel, bias])
    keras = tf.keras
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1, name="dense")], name="seq")
    optimizer = _keras3_optimizer(name)
    optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    like = checkpoint.write(str(tmp_path / "template" / "ckpt"))
    plan = run_cli("map", tmp_path / "src", "--target", like, "--optimizer_state", "--json", expect=0)
    planned = json.loads(plan.stdout)
    assert planned["unmapped"] == [] and planned["mismatched"] == []
    # Each model variable's slots carry over (SGD's velocities are computed from TF1's accumulators).
    slots = [
        m["target"] for m in planned["mapped"] if "/" in m["target"] and not m["target"].startswith("seq/")
    ]
    slots = [t for t in slots if not t.endswith("iteration")]
    assert (len(slots), len(planned["computed"])) == {
        "adam": (4, 0),
        "rmsprop": (4, 0),
        "adagrad": (2, 0),
        "sgd_momentum": (0, 2),
    }[name], planned
    run_cli("convert", tmp_path / "src", f"{tmp_path / 'out'}/", f"--like={like}", expect=0)
    checkpoint.read(tf.train.latest_checkpoint(str(tmp_path / "out"))).assert_consumed()
    assert int(optimizer.iterations) == 3
    model.compile(optimizer=optimizer, loss="mse")
    model.train_on_batch(x, y)
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), expected[0], atol=1e-6)
    np.testing.assert_allclose(model.layers[0].bias.numpy(), expected[1], atol=1e-6)
