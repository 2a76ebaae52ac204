"""`est-ckpt map --suggest`: the mapping proposed from what the checkpoints carry, on real TF checkpoints.

A TF1 `model_fn`-style DNN (Adam) is paired with the Keras model a team rewrites it as (tf.keras: Keras 2
in the Estimator environment, Keras 3 in the newest); the written rules drive `convert --like`, and one more
Keras step equals TF1's. Pairs the evidence cannot tell apart are listed, never written; a layer added on one
side is reported, not guessed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from est_ckpt.mapping.suggest import suggest_mapping
from tests.cli import run_cli

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1
X = np.random.RandomState(0).randn(16, 4).astype(np.float32)
Y = np.random.RandomState(1).randn(16, 1).astype(np.float32)


def _tf1_dnn(directory, hidden=(8, 8, 8)):
    """A TF1 graph `dnn/hiddenlayer_<i>` + `dnn/logits` trained 3 steps with Adam: `(prefix, values, next)`,
    next being every variable after one more step."""
    with tf.Graph().as_default():
        h, width, weights = X, X.shape[1], []
        for i, units in enumerate(hidden):
            w = tf1.get_variable(
                f"dnn/hiddenlayer_{i}/kernel",
                [width, units],
                initializer=tf1.glorot_uniform_initializer(seed=i),
            )
            b = tf1.get_variable(f"dnn/hiddenlayer_{i}/bias", [units], initializer=tf1.zeros_initializer())
            h, width = tf.nn.relu(tf.matmul(h, w) + b), units
            weights += [w, b]
        w = tf1.get_variable(
            "dnn/logits/kernel", [width, 1], initializer=tf1.glorot_uniform_initializer(seed=9)
        )
        b = tf1.get_variable("dnn/logits/bias", [1], initializer=tf1.zeros_initializer())
        weights += [w, b]
        loss = tf.reduce_mean(tf.square(tf.matmul(h, w) + b - Y))
        step = tf1.train.get_or_create_global_step()
        train = tf1.train.AdamOptimizer(0.01, epsilon=1e-7).minimize(loss, global_step=step)
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            for _ in range(3):
                session.run(train)
            prefix = tf1.train.Saver().save(session, str(directory / "model.ckpt"), global_step=step)
            values = session.run(weights)
            session.run(train)
            return prefix, values, session.run(weights)


def _keras(hidden=(8, 8, 8)):
    keras = tf.keras
    model = keras.Sequential(
        [keras.Input((4,))]
        + [keras.layers.Dense(u, activation="relu") for u in hidden]
        + [keras.layers.Dense(1)]
    )
    optimizer = keras.optimizers.Adam(0.01, epsilon=1e-7)
    optimizer.build(model.trainable_variables)
    model.compile(optimizer=optimizer, loss="mse")
    return model, optimizer


def _template(directory, hidden=(8, 8, 8)) -> str:
    model, optimizer = _keras(hidden)
    return tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(directory / "ckpt"))


def test_a_model_fn_dnn_onto_its_keras_rewrite_is_paired_and_training_continues(tmp_path):
    (tmp_path / "src").mkdir()
    prefix, values, after = _tf1_dnn(tmp_path / "src")
    template = _template(tmp_path / "tpl")
    rules = tmp_path / "suggested.json"
    proc = run_cli(
        "map",
        prefix,
        "--target",
        template,
        "--optimizer_state",
        "--suggest",
        f"--write_rules={rules}",
        "--json",
        expect=0,
    )
    planned = json.loads(proc.stdout)
    assert planned["ambiguous"] == [] and planned["unmapped"] == [] and planned["mismatched"] == []
    assert all({"evidence", "confidence"} <= set(m) for m in planned["mapped"])
    written = json.loads(rules.read_text())
    assert len(written["rules"]) == 8  # every weight renamed; the slots follow their variables
    # The rules file is read back as any other: convert --like with it exits 0.
    run_cli("convert", prefix, f"{tmp_path / 'out'}/", f"--like={template}", f"--rules={rules}", expect=0)
    model, optimizer = _keras()
    tf.train.Checkpoint(model=model, optimizer=optimizer).read(
        tf.train.latest_checkpoint(str(tmp_path / "out"))
    ).assert_consumed()
    got = [v.numpy() for layer in model.layers for v in (layer.kernel, layer.bias)]
    for a, b in zip(got, values):  # each Keras layer holds the TF1 layer of its place
        np.testing.assert_array_equal(a, b)
    model.train_on_batch(X, Y)
    for a, b in zip([v.numpy() for layer in model.layers for v in (layer.kernel, layer.bias)], after):
        np.testing.assert_allclose(a, b, atol=1e-6)


def _tf1_checkpoint(path, variables: dict) -> str:
    with tf.Graph().as_default():
        for name, value in variables.items():
            tf1.get_variable(name, initializer=np.asarray(value, np.float32))
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(session, str(path))


def test_what_the_evidence_cannot_tell_apart_is_listed_and_never_written(tmp_path):
    """Two [8, 8] kernels with no name signal on either side: ambiguous; the one [3] vector and the one [4, 6]
    kernel (stored transposed in the new model) are paired."""
    src = _tf1_checkpoint(
        tmp_path / "src",
        {
            "a/kernel": np.eye(8),
            "b/kernel": np.ones((8, 8)),
            "c/bias": [1, 2, 3],
            "proj/kernel": np.zeros((4, 6)),
        },
    )
    tpl = _tf1_checkpoint(
        tmp_path / "tpl",
        {"x/kernel": np.eye(8), "y/kernel": np.eye(8), "z/bias": [0, 0, 0], "out/weights": np.zeros((6, 4))},
    )
    suggestion = suggest_mapping(src, tpl)
    assert {(p.target, p.source) for p in suggestion.pairs} == {
        ("z/bias", "c/bias"),
        ("out/weights", "proj/kernel"),
    }
    transposed = next(p for p in suggestion.pairs if p.target == "out/weights")
    assert transposed.transforms == ({"transpose": [1, 0]},) and "transpose" in transposed.evidence
    assert dict(suggestion.ambiguous) == {
        "x/kernel": ("a/kernel", "b/kernel"),
        "y/kernel": ("a/kernel", "b/kernel"),
    }
    rules = tmp_path / "rules.json"
    proc = run_cli("map", src, "--target", tpl, "--suggest", f"--write_rules={rules}", "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ambiguous"] == [
        {"target": "x/kernel", "candidates": ["a/kernel", "b/kernel"]},
        {"target": "y/kernel", "candidates": ["a/kernel", "b/kernel"]},
    ]
    assert sorted(r["source"] for r in json.loads(rules.read_text())["rules"]) == ["c/bias", "proj/kernel"]
    # An existing rules file is replaced only with --force.
    proc = run_cli("map", src, "--target", tpl, "--suggest", f"--write_rules={rules}")
    assert proc.returncode == 1 and "--force" in proc.stderr
    run_cli("map", src, "--target", tpl, "--suggest", f"--write_rules={rules}", "--force", expect=1)
    assert run_cli("map", src, "--target", tpl, "--write_rules=x.json").returncode == 2


def test_a_layer_added_on_one_side_is_reported_not_guessed(tmp_path):
    """The Keras model has one hidden layer more: each layer pairs with the source's of its number and shape
    (the head by its shape), and the layer added is reported, not filled from another."""
    (tmp_path / "src").mkdir()
    prefix, _, _ = _tf1_dnn(tmp_path / "src", hidden=(8, 8))
    model, _ = _keras((8, 8, 8))
    template = tf.train.Checkpoint(model=model).write(str(tmp_path / "tpl" / "ckpt"))
    suggestion = suggest_mapping(prefix, template)
    # Each layer's (kernel, bias) names as the template records them (Keras 3 writes the model's name above).
    names = [getattr(v, "path", v.name.split(":")[0]) for v in model.weights]
    layers = [(names[2 * i], names[2 * i + 1]) for i in range(4)]
    own = ["dnn/hiddenlayer_0", "dnn/hiddenlayer_1", None, "dnn/logits"]
    expected = {t: f"{s}/{w}" for ts, s in zip(layers, own) if s for t, w in zip(ts, ("kernel", "bias"))}
    if [model.layers[1].name, model.layers[2].name] != ["dense_1", "dense_2"]:
        # Keras numbered this model's layers after others': no layer number to go by for the second and third
        expected = {t: s for t, s in expected.items() if t not in layers[1]}
    assert {p.target: p.source for p in suggestion.pairs} == expected
    assert {t for t, _ in suggestion.ambiguous} <= {*layers[1], *layers[2]}
    assert set(layers[2]) <= {*suggestion.unmatched, *dict(suggestion.ambiguous)}


def test_check_values_confirms_settles_and_leaves_out(tmp_path):
    """`--check_values` with a template saved from the same weights: the two [8, 8] kernels no name tells apart
    are paired by their values, the transposed kernel is confirmed, and a pair whose values differ is left out
    (`values_differ`, exit 1) and never written."""
    rng = np.random.RandomState(5)
    a, b, proj = rng.randn(8, 8), rng.randn(8, 8), rng.randn(4, 6)
    src = _tf1_checkpoint(
        tmp_path / "src",
        {"a/kernel": a, "b/kernel": b, "c/bias": [1, 2, 3], "proj/kernel": proj, "d/gamma": np.ones(5)},
    )
    tpl = _tf1_checkpoint(
        tmp_path / "tpl",
        {"x/kernel": b, "y/kernel": a, "z/bias": [1, 2, 3], "out/weights": proj.T, "w/gamma": np.zeros(5)},
    )
    assert len(suggest_mapping(src, tpl).ambiguous) == 2  # without values: not told apart
    suggestion = suggest_mapping(src, tpl, check_values=True)
    assert {p.target: p.source for p in suggestion.pairs} == {
        "x/kernel": "b/kernel",
        "y/kernel": "a/kernel",
        "z/bias": "c/bias",
        "out/weights": "proj/kernel",
    }
    assert all("values" in p.evidence and p.confidence == 1.0 for p in suggestion.pairs)
    assert suggestion.ambiguous == () and suggestion.values_differ == (("w/gamma", "d/gamma"),)
    rules = tmp_path / "rules.json"
    args = ("map", src, "--target", tpl, "--suggest", "--check_values", f"--write_rules={rules}", "--json")
    proc = run_cli(*args)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["values_differ"] == [{"target": "w/gamma", "source": "d/gamma"}] and out["ambiguous"] == []
    assert sorted(r["source"] for r in json.loads(rules.read_text())["rules"]) == [
        "a/kernel",
        "b/kernel",
        "c/bias",
        "proj/kernel",
    ]
    assert run_cli("map", src, "--target", tpl, "--check_values").returncode == 2
