"""The model pairs `map --suggest` is measured on, built here with TensorFlow (tf.keras 2, the Estimator env).

Each builder writes a SOURCE checkpoint (the model a team has) and a TARGET
template (the model it moves to) and returns a `Pair`: their paths and the true
pairing, `truth[target weight] = source weight`, known by construction (or from a
shipped preset, which our own transform tests prove computes the same outputs).
A target with no true source (a layer added) is absent from `truth`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Callable, Optional

import numpy as np

X = np.random.RandomState(0).randn(16, 4).astype(np.float32)
Y = np.random.RandomState(1).randn(16, 1).astype(np.float32)
LABELS = (X[:, 0] + X[:, 1] > 0).astype(np.int64)


@dataclasses.dataclass
class Pair:
    name: str
    src: str
    tpl: str
    truth: dict
    complete: bool  # every weight on each side has its counterpart
    # With the converted checkpoint's path: asserts the target model continues as the source does.
    check: Optional[Callable[[str], None]] = None


def truth_from_preset(preset: str, src: str, tpl: str) -> dict:
    """`{target: source}` as the preset pairs them (the first rule whose sources exist)."""
    import est_ckpt
    from est_ckpt.mapping.planner import targets_from_checkpoint
    from est_ckpt.mapping.rules_file import load_rules

    rules = load_rules(preset)
    sources = {t.name for t in targets_from_checkpoint(est_ckpt.read_checkpoint(src))}
    out = {}
    for t in targets_from_checkpoint(est_ckpt.read_checkpoint(tpl)):
        for _, names, _ in rules.candidates(t.name):
            if all(n in sources for n in names):
                out[t.name] = names[0]
                break
    return out


def _input_fn():
    import tensorflow as tf

    return tf.data.Dataset.from_tensors(({"x": X, "y": X[:, :2], "z": X[:, 1:]}, LABELS)).repeat()


def _canned(tf, kind: str, v2: bool, model_dir: str, hidden=(6, 3)):
    """`hidden`: the DNN's hidden units; for the linear model, `(6, 3, 3)` adds a column `z`."""
    estimator = tf.estimator if v2 else tf.compat.v1.estimator
    x = [tf.feature_column.numeric_column("x", shape=(4,))]
    y = [tf.feature_column.numeric_column("y", shape=(2,))]
    if kind == "linear" and len(hidden) > 2:
        y.append(tf.feature_column.numeric_column("z", shape=(3,)))
    if kind == "dnn" and v2:  # v1's Adagrad (learning rate 0.05) and summed loss: the same steps
        return estimator.DNNClassifier(
            hidden_units=list(hidden),
            feature_columns=x,
            model_dir=model_dir,
            optimizer=lambda: tf.keras.optimizers.legacy.Adagrad(0.05, epsilon=1e-10),
            loss_reduction=tf.keras.losses.Reduction.SUM,
        )
    if kind == "dnn":
        return estimator.DNNClassifier(hidden_units=list(hidden), feature_columns=x, model_dir=model_dir)
    if kind == "linear":
        return estimator.LinearClassifier(feature_columns=x + y, model_dir=model_dir)
    return estimator.DNNLinearCombinedClassifier(
        linear_feature_columns=y, dnn_feature_columns=x, dnn_hidden_units=list(hidden), model_dir=model_dir
    )


def canned_v1_onto_v2(tmp, kind: str, hidden=(6, 3), target_hidden=(6, 3)) -> Pair:
    """A v1 canned Estimator's model dir onto its v2 variant's first checkpoint: the same variable names."""
    import tensorflow as tf

    _canned(tf, kind, False, f"{tmp}/v1", hidden).train(_input_fn, steps=2)
    _canned(tf, kind, True, f"{tmp}/v2", target_hidden).train(_input_fn, steps=1)
    src, tpl = tf.train.latest_checkpoint(f"{tmp}/v1"), tf.train.latest_checkpoint(f"{tmp}/v2")
    names = {n for n, _ in tf.train.list_variables(src)}
    truth = {n: n for n, s in tf.train.list_variables(tpl) if n in names and len(s) and _weight(n)}

    def check(out_dir: str) -> None:
        """The v2 Estimator trains on from the converted model dir: the step continues; for the DNN (the same
        optimizer on both), one more step equals v1's within 1e-6."""
        before = tf.train.load_checkpoint(src)
        _canned(tf, kind, True, out_dir, hidden).train(_input_fn, steps=1)
        _canned(tf, kind, False, f"{tmp}/v1", hidden).train(_input_fn, steps=1)
        v1 = tf.train.load_checkpoint(tf.train.latest_checkpoint(f"{tmp}/v1"))
        v2 = tf.train.load_checkpoint(tf.train.latest_checkpoint(out_dir))
        assert int(v2.get_tensor("global_step")) == int(v1.get_tensor("global_step")) == 3
        for name in truth:
            assert not np.array_equal(v2.get_tensor(name), before.get_tensor(name)), name
            if kind == "dnn":
                np.testing.assert_allclose(v2.get_tensor(name), v1.get_tensor(name), atol=1e-6, rtol=0)

    return Pair(f"v1 {kind} -> v2", src, tpl, truth, hidden == target_hidden, check)


def _weight(name: str) -> bool:
    return not any(p in name for p in ("/t_0/", "training/", "global_step", "/part_", "Adagrad", "Ftrl"))


def _keras_like_canned(tf, kind: str, hidden, names: bool):
    """The Keras model a team writes for a canned Estimator: `names` gives layers their own names."""
    x = tf.keras.Input((4,), name="x")
    y = tf.keras.Input((2,), name="y")
    named = (lambda n: {"name": n}) if names else (lambda n: {})
    logits = None
    if kind in ("dnn", "combined"):
        h = x
        for i, units in enumerate(hidden):
            h = tf.keras.layers.Dense(units, activation="relu", **named(f"hidden_{i}"))(h)
        logits = tf.keras.layers.Dense(1, **named("logits"))(h)
    if kind in ("linear", "combined"):
        features = tf.keras.layers.Concatenate()([x, y]) if kind == "linear" else y
        linear = tf.keras.layers.Dense(1, **named("linear"))(features)
        logits = linear if logits is None else tf.keras.layers.Add()([logits, linear])
    return tf.keras.Model([x, y], logits)


def canned_v1_onto_keras(tmp, kind: str, hidden=(6, 3), target_hidden=(6, 3), names=True) -> Pair:
    """A v1 canned Estimator onto the Keras model written for it (a linear model's columns concatenated: its
    `x` and `y` weights are one kernel there, so those pair with nothing)."""
    import tensorflow as tf

    v1 = _canned(tf, kind, False, f"{tmp}/v1", hidden)
    v1.train(_input_fn, steps=2)
    src = tf.train.latest_checkpoint(f"{tmp}/v1")
    # Before any Keras model: an Estimator's graph invalidates the Keras models made before it.
    logits = np.stack([p["logits"] for p in v1.predict(lambda: _input_fn().take(1))])
    shutil.copytree(f"{tmp}/v1", f"{tmp}/v1_next")
    _canned(tf, kind, False, f"{tmp}/v1_next", hidden).train(_input_fn, steps=1)
    after = tf.train.load_checkpoint(f"{tmp}/v1_next")
    model = _keras_like_canned(tf, kind, target_hidden, names)
    objects = {"model": model}
    if kind == "dnn":  # v1's Adagrad (learning rate 0.05, accumulators from 0.1), its loss summed
        optimizer = tf.keras.optimizers.Adagrad(0.05, initial_accumulator_value=0.1, epsilon=1e-10)
        model.compile(optimizer, tf.keras.losses.BinaryCrossentropy(from_logits=True, reduction="sum"))
        optimizer.build(model.trainable_variables)
        objects["optimizer"] = optimizer  # (the linear part's Ftrl has no Keras optimizer beside it here)
    tpl = tf.train.Checkpoint(**objects).write(f"{tmp}/tpl/ckpt")
    dense = [layer.name for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
    truth = {}
    hidden_layers = [n for n in dense if n != "linear"][: len(target_hidden) + 1]
    if kind in ("dnn", "combined"):
        own = [f"dnn/hiddenlayer_{i}" for i in range(len(hidden))]
        for i, layer in enumerate(hidden_layers[:-1]):
            if i < len(own) and hidden[i] == target_hidden[i] and hidden[:i] == target_hidden[:i]:
                truth.update({f"{layer}/kernel": f"{own[i]}/kernel", f"{layer}/bias": f"{own[i]}/bias"})
        last = hidden_layers[-1]  # the head is the head, a hidden layer added or removed below it
        truth[f"{last}/bias"] = "dnn/logits/bias"
        if hidden[-1] == target_hidden[-1]:
            truth[f"{last}/kernel"] = "dnn/logits/kernel"
    if kind == "combined":
        truth["linear/kernel" if names else f"{dense[-1]}/kernel"] = "linear/linear_model/y/weights"
        truth["linear/bias" if names else f"{dense[-1]}/bias"] = "linear/linear_model/bias_weights"
    if kind == "linear":
        truth["linear/bias" if names else f"{dense[-1]}/bias"] = "linear/linear_model/bias_weights"

    def check(out_dir: str) -> None:
        """The Keras model restored from the converted checkpoint (Adagrad's accumulators too) computes the v1
        Estimator's logits; for the DNN, one more step equals v1's next step within 1e-6."""
        status = tf.train.Checkpoint(**objects).read(tf.train.latest_checkpoint(out_dir))
        status.assert_existing_objects_matched()
        np.testing.assert_allclose(model([X, X[:, :2]]).numpy(), logits, atol=1e-5)
        if kind != "dnn":
            return
        assert int(objects["optimizer"].iterations.numpy()) == 2
        model.train_on_batch([X, X[:, :2]], LABELS[:, None].astype(np.float32))
        for v in model.trainable_variables:
            name = truth[v.name.split(":")[0]]
            np.testing.assert_allclose(v.numpy(), after.get_tensor(name), atol=1e-6, rtol=0, err_msg=name)

    return Pair(f"v1 {kind} -> Keras", src, tpl, truth, kind != "linear" and hidden == target_hidden, check)


def layers_model_fn_onto_keras(tmp, functional: bool, hidden=(16, 8), target_hidden=(16, 8)) -> Pair:
    """A `tf.compat.v1.layers` model_fn graph (`dense`, `dense_1`, ..., `batch_normalization`) onto Keras."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        h = tf1.placeholder(tf.float32, [None, 4])
        for units in hidden:
            h = tf1.layers.dense(h, units, activation=tf.nn.relu)
        h = tf1.layers.batch_normalization(h, training=True)
        out = tf1.layers.dense(h, 1)
        loss = tf.reduce_mean(tf.square(out))
        train = tf1.train.AdamOptimizer(0.01).minimize(
            loss, global_step=tf1.train.get_or_create_global_step()
        )
        feed = {h.graph.get_tensor_by_name("Placeholder:0"): X}
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            session.run(train, feed)
            src = tf1.train.Saver().save(session, f"{tmp}/tf1/model.ckpt")
            session.run(train, feed)  # the step TF1 takes next
            after = {v.op.name: session.run(v) for v in tf1.trainable_variables()}
    layers = [tf.keras.layers.Dense(u, activation="relu") for u in target_hidden]
    layers += [tf.keras.layers.BatchNormalization(), tf.keras.layers.Dense(1)]
    if functional:
        inputs = tf.keras.Input((4,))
        h = inputs
        for layer in layers:
            h = layer(h)
        model = tf.keras.Model(inputs, h)
    else:
        model = tf.keras.Sequential([tf.keras.Input((4,))] + layers)
    optimizer = tf.keras.optimizers.Adam(0.01, epsilon=1e-8)  # TF1 AdamOptimizer's hyperparameters
    model.compile(optimizer, "mse")
    optimizer.build(model.trainable_variables)
    tpl = tf.train.Checkpoint(model=model, optimizer=optimizer).write(f"{tmp}/tpl/ckpt")
    truth = {}
    tf1_dense = [f"dense_{i}" if i else "dense" for i in range(len(hidden) + 1)]
    keras_dense = [layer.name for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
    for i in range(len(target_hidden)):
        if i < len(hidden) and hidden[: i + 1] == target_hidden[: i + 1]:
            truth.update({f"{keras_dense[i]}/{w}": f"{tf1_dense[i]}/{w}" for w in ("kernel", "bias")})
    truth[f"{keras_dense[-1]}/bias"] = f"{tf1_dense[len(hidden)]}/bias"  # the head, whatever is below it
    if hidden[-1] == target_hidden[-1]:
        bn = next(
            layer.name for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)
        )
        for w in ("gamma", "beta", "moving_mean", "moving_variance"):
            truth[f"{bn}/{w}"] = f"batch_normalization/{w}"
        truth[f"{keras_dense[-1]}/kernel"] = f"{tf1_dense[len(hidden)]}/kernel"
    kind = "functional" if functional else "Sequential"

    def check(out_dir: str) -> None:
        """Each Keras weight restored from the converted checkpoint holds its TF1 variable's value, Adam's
        state came too, and one more step (batch statistics, as TF1's `training=True`) equals TF1's (1e-6)."""
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        checkpoint.read(tf.train.latest_checkpoint(out_dir)).assert_consumed()
        reader = tf.train.load_checkpoint(src)
        for v in model.weights:
            np.testing.assert_array_equal(v.numpy(), reader.get_tensor(truth[v.name.split(":")[0]]))
        assert int(optimizer.iterations.numpy()) == 1
        model.train_on_batch(X, np.zeros((len(X), 1), np.float32))
        for v in model.trainable_variables:
            name = truth[v.name.split(":")[0]]
            np.testing.assert_allclose(v.numpy(), after[name], atol=1e-6, rtol=0, err_msg=name)

    return Pair(f"tf.compat.v1.layers -> Keras {kind}", src, tpl, truth, hidden == target_hidden, check)


def bert_onto_keras_encoder(tmp, layers: int = 2, target_layers: int = 2) -> Pair:
    """The BERT-shaped TF1 model onto its Keras encoder (Model Garden's layout) of `tests/test_transforms_bert`."""
    import tensorflow as tf

    from tests import test_transforms_bert as bert

    saved = bert.LAYERS
    try:
        bert.LAYERS = layers
        tf1_bert = bert.Tf1Bert()
        src = tf1_bert.save(f"{tmp}/tf1/bert_model.ckpt")
        bert.LAYERS = target_layers
        encoder = bert._keras_encoder()
        tpl = tf.train.Checkpoint(encoder=encoder).write(f"{tmp}/tpl/ckpt")
    finally:
        bert.LAYERS = saved
    truth = truth_from_preset("bert", src, tpl)

    def check(out_dir: str) -> None:
        """The encoder restored from the converted checkpoint computes the TF1 graph's outputs (1e-5)."""
        status = tf.train.Checkpoint(encoder=encoder).read(tf.train.latest_checkpoint(out_dir))
        status.assert_existing_objects_matched()
        for mine, theirs in zip(encoder([bert.IDS, bert.TYPE_IDS]), tf1_bert.outputs()):
            np.testing.assert_allclose(mine.numpy(), theirs, atol=1e-5)

    return Pair("BERT -> Keras encoder", src, tpl, truth, layers == target_layers, check)


def lstm_onto_keras(tmp, extra_dense: bool = False) -> Pair:
    """TF1 `LSTMCell` + dense head onto Keras `LSTM` (of `tests/test_transforms_rnn`), optionally one more
    Dense layer in the Keras model."""
    import tensorflow as tf

    from tests import test_transforms_rnn as rnn

    model = rnn.Tf1Model("lstm")
    model.run_steps(2)
    src = model.save(f"{tmp}/tf1/model.ckpt", 2)
    keras, opt = rnn._keras("lstm", seed=1)
    if extra_dense:
        keras = tf.keras.Sequential(
            [
                tf.keras.Input((rnn.T, rnn.IN)),
                keras.layers[0],
                tf.keras.layers.Dense(4, name="dense_1"),
                keras.layers[1],
            ]
        )
        opt = tf.keras.optimizers.Adam(rnn.LR, epsilon=1e-8)
        opt.build(keras.trainable_variables)
    tpl = rnn._keras_save(keras, opt, f"{tmp}/tpl/ckpt")

    def check(out_dir: str) -> None:
        """The Keras model (with Adam's state) restored from the converted checkpoint computes the TF1 model's
        outputs (1e-5), and one more step on each gives the same weights (1e-6)."""
        tf.train.Checkpoint(model=keras, optimizer=opt).read(
            tf.train.latest_checkpoint(out_dir)
        ).assert_consumed()
        np.testing.assert_allclose(keras(rnn.X).numpy(), model.predict(), atol=1e-5)
        model.run_steps(1)
        rnn._keras_step(keras, opt)
        expected = rnn._expected_keras("lstm", model.values(), "lstm_cell", 1.0)
        for got, want in zip(keras.trainable_variables, expected):
            np.testing.assert_allclose(got.numpy(), want, atol=1e-6, err_msg=got.name)

    # The head is the last layer, `dense` on both sides; a `dense_1` added is new.
    truth = {
        **truth_from_preset("lstm", src, tpl),
        "dense/kernel": "dense/kernel",
        "dense/bias": "dense/bias",
    }
    return Pair("TF1 LSTM -> Keras LSTM", src, tpl, truth, not extra_dense, check)


def paths(pair: Pair) -> tuple[str, str]:
    return os.fspath(pair.src), os.fspath(pair.tpl)
