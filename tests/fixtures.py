"""Builders for small, real TensorFlow checkpoints used across the test suite.

Every checkpoint printed by TensorFlow's migration guide "Migrating model
checkpoints" (tensorflow.org/guide/migrate/migrating_checkpoints) can be reproduced by one of the
builders below, with exactly the keys the guide shows (see `expected_keys`).

Contract:
  * Each builder is `build_<name>(directory: str) -> str`; it writes into
    `directory` (created if missing) and returns either a checkpoint PREFIX
    (usable with `tf.train.load_checkpoint`) or, for the Estimator builders, the
    Estimator MODEL DIR (use `tf.train.latest_checkpoint(model_dir)`).
    `FIXTURE_KINDS` records which ('prefix' or 'model_dir').
  * TensorFlow is imported lazily inside the builders, so importing this module
    does not import TensorFlow.
  * Graph-mode code runs inside `with tf.Graph().as_default():`; eager code does
    not touch global graphs, so builders can run in any order in one process.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _tf():
    """Imports TensorFlow (and tf.compat.v1) lazily with quiet logging."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: WPS433 (lazy import on purpose)

    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except Exception:  # pragma: no cover - absl is always there with TF
        pass
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    return tf, tf.compat.v1


def _mkdir(directory: str, *parts: str) -> str:
    path = os.path.join(directory, *parts)
    os.makedirs(path, exist_ok=True)
    return path


# ---------------------------------------------------------------------------
# Guide checkpoints
# ---------------------------------------------------------------------------


def build_tf1_ckpt(directory: str) -> str:
    """Guide: name-based `tf1.train.Saver` checkpoint. Keys a, b, scoped/c.

    Values a=1, b=2, scoped/c=3 (float32 scalars). Returns the prefix.
    """
    tf, tf1 = _tf()
    prefix = os.path.join(_mkdir(directory), "tf1-ckpt")
    with tf.Graph().as_default():
        a = tf1.get_variable("a", shape=[], dtype=tf.float32, initializer=tf1.zeros_initializer())
        b = tf1.get_variable("b", shape=[], dtype=tf.float32, initializer=tf1.zeros_initializer())
        c = tf1.get_variable("scoped/c", shape=[], dtype=tf.float32, initializer=tf1.zeros_initializer())
        with tf1.Session() as sess:
            saver = tf1.train.Saver()
            sess.run(a.assign(1))
            sess.run(b.assign(2))
            sess.run(c.assign(3))
            return saver.save(sess, prefix)


def build_tf2_ckpt(directory: str) -> str:
    """Guide: eager `tf.train.Checkpoint(variables=[a, b, c]).save(...)`.

    a=5 ('a'), b=6 ('b'), c=7 ('scoped/c'). Returns the prefix ('.../tf2-ckpt-1').
    """
    tf, _ = _tf()
    a = tf.Variable(5.0, name="a")
    b = tf.Variable(6.0, name="b")
    with tf.name_scope("scoped"):
        c = tf.Variable(7.0, name="c")
    ckpt = tf.train.Checkpoint(variables=[a, b, c])
    return ckpt.save(os.path.join(_mkdir(directory), "tf2-ckpt"))


def build_nested_ckpt(directory: str) -> str:
    """Guide: `Checkpoint(v={'a': a, 'b': b}, c=c, module=module)`, all 0.0.

    All variables are named 'Variable'. Returns the prefix ('root-tf2-ckpt-1').
    """
    tf, _ = _tf()
    a = tf.Variable(0.0)
    b = tf.Variable(0.0)
    c = tf.Variable(0.0)
    module = tf.Module()
    module.d = tf.Variable(0.0)
    test_ckpt = tf.train.Checkpoint(v={"a": a, "b": b}, c=c, module=module)
    return test_ckpt.save(os.path.join(_mkdir(directory), "root-tf2-ckpt"))


def build_duplicate_names_ckpt(directory: str) -> str:
    """Eager `Checkpoint(vars=[a, b])`, a=1.0, b=2.0, BOTH named 'Variable'.

    The ambiguous case: the object graph records the same variable name
    ('Variable') for two different checkpoint keys. Returns the prefix.
    """
    tf, _ = _tf()
    a = tf.Variable(1.0)
    b = tf.Variable(2.0)
    assert a.name == b.name == "Variable:0"
    return tf.train.Checkpoint(vars=[a, b]).save(os.path.join(_mkdir(directory), "dup-ckpt"))


def build_session_var_list_ckpt(directory: str) -> str:
    """Guide "save a TF2 checkpoint in TF1": var_list={name: var} in a session.

    Keys var_list/a, var_list/b, var_list/scoped.Sc (+ save_counter, graph).
    Values a=1, b=2, scoped/c=3. Returns the prefix
    ('tf2-ckpt-saved-in-session-1').
    """
    tf, tf1 = _tf()
    with tf.Graph().as_default():
        tf1.get_variable("a", shape=[], dtype=tf.float32, initializer=tf1.constant_initializer(1))
        tf1.get_variable("b", shape=[], dtype=tf.float32, initializer=tf1.constant_initializer(2))
        with tf1.variable_scope("scoped"):
            tf1.get_variable("c", shape=[], dtype=tf.float32, initializer=tf1.constant_initializer(3))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            ckpt = tf.train.Checkpoint(var_list={v.name.split(":")[0]: v for v in tf1.global_variables()})
            return ckpt.save(os.path.join(_mkdir(directory), "tf2-ckpt-saved-in-session"))


def build_unscoped_scoped_ckpt(directory: str) -> str:
    """Guide: `Checkpoint(unscoped=[a, b], scoped=[c])` saved in a session.

    Keys unscoped/0 (=1), unscoped/1 (=2), scoped/0 (=3). Returns the prefix.
    """
    tf, tf1 = _tf()
    with tf.Graph().as_default():
        a = tf1.get_variable("a", shape=[], dtype=tf.float32, initializer=tf1.constant_initializer(1))
        b = tf1.get_variable("b", shape=[], dtype=tf.float32, initializer=tf1.constant_initializer(2))
        with tf1.variable_scope("scoped"):
            c = tf1.get_variable("c", shape=[], dtype=tf.float32, initializer=tf1.constant_initializer(3))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            ckpt = tf.train.Checkpoint(unscoped=[a, b], scoped=[c])
            return ckpt.save(os.path.join(_mkdir(directory), "tf2-ckpt"))


# ---------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------


def _estimator_train_fn():
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(([1, 2, 3], [4, 5, 6]))


def _model_fn_tf1_ckpt(features, labels, mode):
    """Guide's model_fn that saves a TF1 checkpoint (adds 2 to `var`/step)."""
    tf, tf1 = _tf()
    train_step = tf1.train.get_or_create_global_step()
    v = tf1.get_variable("var", shape=[], dtype=tf.float32, initializer=tf1.constant_initializer(0))
    return tf.estimator.EstimatorSpec(
        mode,
        predictions=v,
        train_op=tf.group(v.assign_add(2), train_step.assign_add(1)),
        loss=tf.constant(1.0),
        scaffold=None,
    )


# Sharding of the TF2 Estimator checkpoint (TF 2.15 / estimator 2.15):
# the guide's model_fn, unchanged, already writes TWO data files
# (`model.ckpt-1.data-00000-of-00002` with `var` + `step` (12 bytes) and
# `model.ckpt-1.data-00001-of-00002` with `_CHECKPOINTABLE_OBJECT_GRAPH`).
# Why: `Scaffold.finalize` turns a `tf.train.Checkpoint` saver into
# `tf1.train.Saver(var_list=ObjectGraphView(ckpt).frozen_saveable_objects(),
# sharded=True)`; the sharded tf1 Saver groups saveables by canonical device
# string, and the object-graph constant is created under
# `ops.device('/cpu:0')` while the variables have no device ('') -> 2 groups.
# No device tricks needed.  (Tried, for the record: putting `var` under
# '/cpu:0' also gives 2 shards, but different contents; putting it under
# '/job:localhost/replica:0/task:0/device:CPU:0' gives 3 shards.  The TF2
# eager/`Checkpoint.save` path (functional_saver.MultiDeviceSaver) instead
# groups by host via `set_cpu0`, so '/cpu:0' vs '/cpu:1' would not shard it.)
# The Estimator TF1 dir (default Scaffold Saver, all vars without device) has
# a single data file.


def _model_fn_tf2_ckpt(features, labels, mode):
    """Guide's model_fn saving a TF2 checkpoint via Scaffold(saver=Checkpoint)."""
    tf, tf1 = _tf()
    train_step = tf1.train.get_or_create_global_step()
    v = tf1.get_variable("var", shape=[], dtype=tf.float32, initializer=tf1.constant_initializer(0))
    ckpt = tf.train.Checkpoint(var_list={"var": v}, step=train_step)
    return tf.estimator.EstimatorSpec(
        mode,
        predictions=v,
        train_op=tf.group(v.assign_add(2), train_step.assign_add(1)),
        loss=tf.constant(1.0),
        scaffold=tf1.train.Scaffold(saver=ckpt),
    )


def _train_estimator(model_fn, model_dir, warm_start_from=None, steps=1):
    tf, _ = _tf()
    est = tf.estimator.Estimator(model_fn, model_dir, warm_start_from=warm_start_from)
    est.train(_estimator_train_fn, steps=steps)
    return est


def build_estimator_tf1_dir(directory: str) -> str:
    """Guide: Estimator with `model_fn_tf1_ckpt`, trained 1 step.

    Returns the MODEL DIR `directory/est-tf1`; latest checkpoint
    `model.ckpt-1` has keys `var` (=2.0) and `global_step` (=1).
    """
    model_dir = os.path.join(_mkdir(directory), "est-tf1")
    _train_estimator(_model_fn_tf1_ckpt, model_dir)
    return model_dir


def build_estimator_tf2_dir(directory: str) -> str:
    """Guide: Estimator with `model_fn_tf2_ckpt`, warm-started from est-tf1.

    Builds `directory/est-tf1` first (like the guide), then trains
    `directory/est-tf2` one step. Returns the MODEL DIR `directory/est-tf2`;
    latest checkpoint `model.ckpt-1` has keys
    `var_list/var/.ATTRIBUTES/VARIABLE_VALUE` (=4.0),
    `step/.ATTRIBUTES/VARIABLE_VALUE` (=1), `_CHECKPOINTABLE_OBJECT_GRAPH`
    and is sharded in two data files (see the comment above
    `_model_fn_tf2_ckpt`).
    """
    tf1_dir = build_estimator_tf1_dir(directory)
    model_dir = os.path.join(directory, "est-tf2")
    est = _train_estimator(_model_fn_tf2_ckpt, model_dir, warm_start_from=tf1_dir)
    value = est.get_variable_value("var_list/var/.ATTRIBUTES/VARIABLE_VALUE")
    assert value == 4, value
    return model_dir


# ---------------------------------------------------------------------------
# Partitioned variables
# ---------------------------------------------------------------------------


def _partitioned_graph(axis: int = 0):
    """Creates emb [10,4] (3 partitions along `axis`) + dense/kernel [4,2]; deterministic."""
    import numpy as np

    tf, tf1 = _tf()
    emb_value = np.arange(40, dtype=np.float32).reshape(10, 4)
    kernel_value = np.arange(8, dtype=np.float32).reshape(4, 2) + 100.0

    def emb_init(shape, dtype=None, partition_info=None):
        # Each partition receives its own slice of arange(40).reshape(10, 4).
        offset = partition_info.var_offset if partition_info else [0, 0]
        part = emb_value[offset[0] : offset[0] + shape[0], offset[1] : offset[1] + shape[1]]
        return tf.constant(part, dtype=dtype or tf.float32)

    emb = tf1.get_variable(
        "emb",
        shape=[10, 4],
        dtype=tf.float32,
        partitioner=tf1.fixed_size_partitioner(3, axis=axis),
        initializer=emb_init,
    )
    kernel = tf1.get_variable(
        "dense/kernel", shape=[4, 2], dtype=tf.float32, initializer=tf1.constant_initializer(kernel_value)
    )
    return emb, kernel


PARTITIONED_VALUES = {
    # emb rows are split 4/3/3 by fixed_size_partitioner(3).
    "emb": ("arange", (10, 4), 0.0),
    "dense/kernel": ("arange", (4, 2), 100.0),
}


def build_partitioned_ckpt(directory: str, axis: int = 0) -> str:
    """Name-based Saver checkpoint of a 3-way partitioned `emb` + dense/kernel.

    `emb` = arange(40).reshape(10, 4) (float32), `dense/kernel` =
    arange(8).reshape(4, 2) + 100. The reader shows the full `emb` [10, 4]
    (stored as slices) and `dense/kernel`. `emb` is split along `axis`: rows
    4/3/3 (axis 0) or columns 2/1/1 (axis 1). Returns the prefix.
    """
    tf, tf1 = _tf()
    prefix = os.path.join(_mkdir(directory), "partitioned-ckpt")
    with tf.Graph().as_default():
        _partitioned_graph(axis)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(sess, prefix)


def build_partitioned_tf2_ckpt(directory: str, axis: int = 0) -> str:
    """Same graph as `build_partitioned_ckpt`, saved object-based.

    `tf.train.Checkpoint(var_list={name: part})` with names `emb/part_0..2`
    and `dense/kernel`, saved in a session. Returns the prefix.
    """
    tf, tf1 = _tf()
    with tf.Graph().as_default():
        _partitioned_graph(axis)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            ckpt = tf.train.Checkpoint(var_list={v.name.split(":")[0]: v for v in tf1.global_variables()})
            return ckpt.save(os.path.join(_mkdir(directory), "partitioned-tf2-ckpt"))


# ---------------------------------------------------------------------------
# Optimizer slots
# ---------------------------------------------------------------------------


def build_adam_ckpt(directory: str) -> str:
    """Name-based checkpoint of w[3,2], b[2] trained 2 steps with tf1 Adam.

    Keys: w, b, w/Adam, w/Adam_1, b/Adam, b/Adam_1, beta1_power, beta2_power,
    global_step. Returns the prefix.
    """
    import numpy as np

    tf, tf1 = _tf()
    prefix = os.path.join(_mkdir(directory), "adam-ckpt")
    with tf.Graph().as_default():
        x = tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3) / 10.0)
        y = tf.constant([[1.0, -1.0], [0.5, 2.0]])
        w = tf1.get_variable(
            "w", initializer=tf.constant(np.arange(6, dtype=np.float32).reshape(3, 2) / 10.0)
        )
        b = tf1.get_variable("b", initializer=tf.constant([0.1, -0.1]))
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
        global_step = tf1.train.get_or_create_global_step()
        train_op = tf1.train.AdamOptimizer(0.1).minimize(loss, global_step=global_step)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for _ in range(2):
                sess.run(train_op)
            return tf1.train.Saver().save(sess, prefix)


def build_adam_tf2_ckpt(directory: str) -> str:
    """Eager Keras model trained 2 steps with Adam, object-based checkpoint.

    Saved with `tf.train.Checkpoint(model=model, optimizer=opt)`. Uses the
    legacy Keras Adam (`tf.keras.optimizers.legacy.Adam`), because Keras 2.15's
    default (new) Adam tracks its slots as `optimizer/_variables/<i>` and does
    NOT emit `.OPTIMIZER_SLOT` keys. The legacy optimizer gives keys like
    `model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE`.
    Returns the prefix.
    """
    import numpy as np

    tf, _ = _tf()
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input(shape=(3,))
    hidden = tf.keras.layers.Dense(2, kernel_initializer=tf.keras.initializers.Constant(0.1))(inputs)
    outputs = tf.keras.layers.Dense(1, kernel_initializer=tf.keras.initializers.Constant(-0.2))(hidden)
    model = tf.keras.Model(inputs, outputs)
    opt = tf.keras.optimizers.legacy.Adam(0.01)
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
    y = np.array([[1.0], [0.0], [-1.0], [2.0]], dtype=np.float32)
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt)
    return ckpt.save(os.path.join(_mkdir(directory), "adam-tf2-ckpt"))


def build_keras_functional_ckpt(directory: str) -> str:
    """Eager Keras functional model Input(4) -> Dense(3) -> Dense(1).

    Saved with `tf.train.Checkpoint(model=model)`; keys like
    `model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE`. Weights are
    deterministic constants. Returns the prefix.
    """
    tf, _ = _tf()
    inputs = tf.keras.Input(shape=(4,))
    h = tf.keras.layers.Dense(
        3,
        kernel_initializer=tf.keras.initializers.Constant(0.5),
        bias_initializer=tf.keras.initializers.Constant(0.25),
    )(inputs)
    outputs = tf.keras.layers.Dense(
        1,
        kernel_initializer=tf.keras.initializers.Constant(-1.0),
        bias_initializer=tf.keras.initializers.Constant(2.0),
    )(h)
    model = tf.keras.Model(inputs, outputs)
    return tf.train.Checkpoint(model=model).save(os.path.join(_mkdir(directory), "keras-functional-ckpt"))


# ---------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------

# name -> (numpy/ml_dtypes value builder description). Values are built by
# `_dtype_values()`; keys in the checkpoint are `t_<dtype name>` plus
# `t_string_scalar` for the scalar string.
DTYPE_VALUES_SPEC = (
    "string",
    "string_scalar",
    "bfloat16",
    "float16",
    "float32",
    "float64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
    "complex128",
)


def _dtype_values():
    """Returns {key: (numpy value, tf dtype)} with deterministic values."""
    import numpy as np

    tf, _ = _tf()
    vals = {}
    vals["t_string"] = (np.array([b"a", b"bc", b""], dtype=object), tf.string)
    vals["t_string_scalar"] = (np.array(b"hello world", dtype=object), tf.string)
    vals["t_bfloat16"] = (np.array([1.5, -2.25, 3.0], dtype=tf.bfloat16.as_numpy_dtype), tf.bfloat16)
    vals["t_float16"] = (np.array([0.5, -1.5, 65504.0], dtype=np.float16), tf.float16)
    vals["t_float32"] = (np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), tf.float32)
    vals["t_float64"] = (np.array([1e-300, -2.5, 1e300], dtype=np.float64), tf.float64)
    vals["t_int64"] = (np.array([-(2**62), 0, 2**62], dtype=np.int64), tf.int64)
    vals["t_int32"] = (np.array([-(2**31), 7, 2**31 - 1], dtype=np.int32), tf.int32)
    vals["t_int16"] = (np.array([-32768, 5, 32767], dtype=np.int16), tf.int16)
    vals["t_int8"] = (np.array([-128, 3, 127], dtype=np.int8), tf.int8)
    vals["t_uint8"] = (np.array([0, 128, 255], dtype=np.uint8), tf.uint8)
    vals["t_uint16"] = (np.array([0, 1000, 65535], dtype=np.uint16), tf.uint16)
    vals["t_uint32"] = (np.array([0, 70000, 2**32 - 1], dtype=np.uint32), tf.uint32)
    vals["t_uint64"] = (np.array([0, 2**40, 2**64 - 1], dtype=np.uint64), tf.uint64)
    vals["t_bool"] = (np.array([True, False, True]), tf.bool)
    vals["t_complex64"] = (np.array([1 + 2j, -3.5j, 4], dtype=np.complex64), tf.complex64)
    vals["t_complex128"] = (np.array([1 - 1j, 2.5 + 0j, -1j], dtype=np.complex128), tf.complex128)
    return vals


def dtype_values():
    """Public accessor: {key: numpy value} for the dtypes fixtures."""
    return {k: v for k, (v, _) in _dtype_values().items()}


def _make_dtype_variables(tf, tf1):
    """Creates graph variables for all dtypes possible; returns (vars, rest).

    `vars` maps key -> variable; `rest` maps key -> (value, dtype) for dtypes
    that cannot be variables (saved via raw SaveV2 instead).
    """
    variables, rest = {}, {}
    for key, (value, dtype) in _dtype_values().items():
        try:
            with tf.Graph().as_default():
                probe = tf1.Variable(tf.constant(value, dtype=dtype), name=key)
                with tf1.Session() as sess:
                    sess.run(probe.initializer)
                    sess.run(probe.read_value())
        except Exception:  # pragma: no cover - depends on TF kernels
            rest[key] = (value, dtype)
            continue
        variables[key] = tf1.Variable(tf.constant(value, dtype=dtype), name=key)
    return variables, rest


def build_dtypes_ckpt(directory: str) -> str:
    """Name-based checkpoint: one tensor per dtype, keys `t_<dtype>`.

    Variables are saved with `tf1.train.Saver`; any dtype that cannot be a CPU
    variable is written by a raw `SaveV2` op into the same prefix (in TF 2.15
    all of them work as variables). Returns the prefix.
    """
    tf, tf1 = _tf()
    prefix = os.path.join(_mkdir(directory), "dtypes-ckpt")
    with tf.Graph().as_default():
        variables, rest = _make_dtype_variables(tf, tf1)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            if not rest:
                return tf1.train.Saver(var_list=variables).save(sess, prefix)
            names = sorted(variables) + sorted(rest)
            tensors = [variables[n].read_value() for n in sorted(variables)]
            tensors += [tf.constant(rest[n][0], dtype=rest[n][1]) for n in sorted(rest)]
            sess.run(
                tf.raw_ops.SaveV2(
                    prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
                )
            )
            return prefix


def build_dtypes_tf2_ckpt(directory: str) -> str:
    """Object-based checkpoint of the dtype tensors (var_list/t_<dtype>).

    Saved with `tf.train.Checkpoint(var_list={...})` inside a session, for
    every dtype that can be a variable (all of them in TF 2.15).
    Returns the prefix.
    """
    tf, tf1 = _tf()
    with tf.Graph().as_default():
        variables, _ = _make_dtype_variables(tf, tf1)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            ckpt = tf.train.Checkpoint(var_list=variables)
            return ckpt.save(os.path.join(_mkdir(directory), "dtypes-tf2-ckpt"))


# ---------------------------------------------------------------------------
# Names needing escaping
# ---------------------------------------------------------------------------

DOTTED_NAMES = ("a.b/c", "x..S/y", "S.S/.S", "plain")


def _dotted_graph():
    tf, tf1 = _tf()
    out = {}
    for i, name in enumerate(DOTTED_NAMES):
        out[name] = tf1.get_variable(
            name,
            shape=[2],
            dtype=tf.float32,
            initializer=tf1.constant_initializer([float(i), float(i) + 0.5]),
        )
    return out


def build_dotted_names_ckpt(directory: str) -> str:
    """Object-based checkpoint with names containing '.', '/', 'S'.

    `tf.train.Checkpoint(var_list={name: var})` in a session, names
    `DOTTED_NAMES`; keys are escaped ('.' -> '..', '/' -> '.S'), e.g.
    `var_list/a..b.Sc/.ATTRIBUTES/VARIABLE_VALUE`. Value of the i-th name is
    [i, i + 0.5]. Returns the prefix.
    """
    tf, tf1 = _tf()
    with tf.Graph().as_default():
        variables = _dotted_graph()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            ckpt = tf.train.Checkpoint(var_list=variables)
            return ckpt.save(os.path.join(_mkdir(directory), "dotted-ckpt"))


def build_dotted_names_tf1_ckpt(directory: str) -> str:
    """Name-based Saver copy of `build_dotted_names_ckpt` under directory/tf1.

    Keys are the raw variable names (`a.b/c`, `x..S/y`, `S.S/.S`, `plain`).
    Returns the prefix.
    """
    tf, tf1 = _tf()
    prefix = os.path.join(_mkdir(directory, "tf1"), "dotted-tf1-ckpt")
    with tf.Graph().as_default():
        _dotted_graph()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(sess, prefix)


# ---------------------------------------------------------------------------
# Many variables (benchmarks)
# ---------------------------------------------------------------------------


def build_many_vars_ckpt(directory: str, n: int = 200) -> str:
    """Name-based checkpoint with n float32 [4] vars `layer_{i//10}/var_{i}`.

    Value of var i is [i, i, i, i]. Returns the prefix.
    """
    import numpy as np

    tf, tf1 = _tf()
    prefix = os.path.join(_mkdir(directory), f"many-vars-{n}-ckpt")
    with tf.Graph().as_default():
        var_list = {}
        for i in range(n):
            name = f"layer_{i // 10}/var_{i}"
            var_list[name] = tf1.Variable(np.full([4], i, dtype=np.float32), name=name)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return tf1.train.Saver(var_list=var_list).save(sess, prefix)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

FIXTURES = {
    "tf1": build_tf1_ckpt,
    "tf2": build_tf2_ckpt,
    "nested": build_nested_ckpt,
    "duplicate_names": build_duplicate_names_ckpt,
    "session_var_list": build_session_var_list_ckpt,
    "unscoped_scoped": build_unscoped_scoped_ckpt,
    "estimator_tf1": build_estimator_tf1_dir,
    "estimator_tf2": build_estimator_tf2_dir,
    "partitioned": build_partitioned_ckpt,
    "partitioned_tf2": build_partitioned_tf2_ckpt,
    "adam": build_adam_ckpt,
    "adam_tf2": build_adam_tf2_ckpt,
    "keras_functional": build_keras_functional_ckpt,
    "dtypes": build_dtypes_ckpt,
    "dtypes_tf2": build_dtypes_tf2_ckpt,
    "dotted_names": build_dotted_names_ckpt,
    "dotted_names_tf1": build_dotted_names_tf1_ckpt,
    "many_vars": build_many_vars_ckpt,
}

# What each builder returns: 'prefix' (checkpoint prefix) or 'model_dir'
# (Estimator model dir; use tf.train.latest_checkpoint on it).
FIXTURE_KINDS = {name: ("model_dir" if name.startswith("estimator_") else "prefix") for name in FIXTURES}


def installed(distribution: str) -> bool:
    """Whether a distribution is installed (without importing it, and without the conftest's import skips)."""
    from importlib import metadata

    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


HAS_ESTIMATOR = installed("tensorflow-estimator")


def _keras_major() -> int:
    """The major version `tf.keras` is here, read from the installed distributions (TF is not imported).

    2 up to TF 2.15, 3 from TF 2.16 on, 2 again where tf-keras is installed and
    `TF_USE_LEGACY_KERAS=1` asks for it; 0 without any Keras.
    """
    if installed("tf-keras") and os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true"):
        return 2
    from importlib import metadata

    try:
        return int(metadata.version("keras").split(".")[0])
    except metadata.PackageNotFoundError:
        return 0


KERAS_MAJOR = _keras_major()

# What a builder needs beyond TensorFlow (a pytest marker of conftest.py): tests parametrized
# over these names get the marker, so they are skipped, saying why, where it is missing.
FIXTURE_NEEDS = {
    "estimator_tf1": "estimator",
    "estimator_tf2": "estimator",
    "adam_tf2": "keras2",  # tf.keras.optimizers.legacy.Adam
}

# The suffix of a variable's key in an object-based checkpoint (one copy for every test).
VV = "/.ATTRIBUTES/VARIABLE_VALUE"
_SAVE_COUNTER = "save_counter" + VV
_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"

# Exact key sets printed by the guide (for the estimator fixtures: the keys of
# the latest checkpoint in the model dir).
_EXPECTED_KEYS = {
    "tf1": {"a", "b", "scoped/c"},
    "tf2": {"variables/0" + VV, "variables/1" + VV, "variables/2" + VV, _SAVE_COUNTER, _GRAPH},
    "nested": {"v/a" + VV, "v/b" + VV, "c" + VV, "module/d" + VV, _SAVE_COUNTER, _GRAPH},
    "duplicate_names": {"vars/0" + VV, "vars/1" + VV, _SAVE_COUNTER, _GRAPH},
    "session_var_list": {
        "var_list/a" + VV,
        "var_list/b" + VV,
        "var_list/scoped.Sc" + VV,
        _SAVE_COUNTER,
        _GRAPH,
    },
    "unscoped_scoped": {"unscoped/0" + VV, "unscoped/1" + VV, "scoped/0" + VV, _SAVE_COUNTER, _GRAPH},
    "estimator_tf1": {"var", "global_step"},
    "estimator_tf2": {"var_list/var" + VV, "step" + VV, _GRAPH},
}

# Values printed by the guide: {fixture: {key: value}}.
GUIDE_VALUES = {
    "tf1": {"a": 1.0, "b": 2.0, "scoped/c": 3.0},
    "tf2": {"variables/0" + VV: 5.0, "variables/1" + VV: 6.0, "variables/2" + VV: 7.0, _SAVE_COUNTER: 1},
    "nested": {"v/a" + VV: 0.0, "v/b" + VV: 0.0, "c" + VV: 0.0, "module/d" + VV: 0.0, _SAVE_COUNTER: 1},
    "duplicate_names": {"vars/0" + VV: 1.0, "vars/1" + VV: 2.0},
    "session_var_list": {
        "var_list/a" + VV: 1.0,
        "var_list/b" + VV: 2.0,
        "var_list/scoped.Sc" + VV: 3.0,
        _SAVE_COUNTER: 1,
    },
    "unscoped_scoped": {
        "unscoped/0" + VV: 1.0,
        "unscoped/1" + VV: 2.0,
        "scoped/0" + VV: 3.0,
        _SAVE_COUNTER: 1,
    },
    "estimator_tf1": {"var": 2.0, "global_step": 1},
    "estimator_tf2": {"var_list/var" + VV: 4.0, "step" + VV: 1},
}


def expected_keys(name: str) -> set[str] | None:
    """Exact key set the guide prints for fixture `name`, else None.

    For estimator fixtures this is the key set of the latest checkpoint in the
    returned model dir.
    """
    keys = _EXPECTED_KEYS.get(name)
    return set(keys) if keys is not None else None
