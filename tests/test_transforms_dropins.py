"""TF1 code that reads checkpoints by name, on an object-based checkpoint, and warm starts through transforms.

`est_ckpt.list_variables` and `est_ckpt.init_from_checkpoint` keep TF's
signatures and read either kind: BERT's own pattern (`list_variables` ->
assignment map -> `init_from_checkpoint`) loads every variable from a TF2
directory, where TF's functions load none. `warm_start(..., rules=...)` and
`WarmStartSettings(rules=...)` compute a transformed value when the variable
is initialised.
"""

from __future__ import annotations

import numpy as np
import pytest

import est_ckpt
from tests.cli import run_cli
from tests.test_transforms_bert import Tf1Bert
from tests.test_transforms_rnn import Tf1Model, X, _keras, _keras_save, _keras_step

pytestmark = pytest.mark.keras2
tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1


@pytest.fixture(scope="module")
def bert_dirs(tmp_path_factory):
    """`(values, TF1 prefix, TF2 prefix)` of a BERT-shaped model: TF1 names, and the object-based copy."""
    root = tmp_path_factory.mktemp("bert")
    bert = Tf1Bert()
    src = bert.save(root / "tf1" / "bert_model.ckpt")
    with bert.graph.as_default():
        values = {v.op.name: bert.sess.run(v) for v in tf1.global_variables()}
    proc = run_cli("convert", src, str(root / "tf2") + "/", "--to=tf2")
    assert proc.returncode == 0, proc.stderr
    return values, src, tf.train.latest_checkpoint(str(root / "tf2"))


def _bert_assignment_map(names, graph_vars):
    """google-research/bert's `get_assignment_map_from_checkpoint`, with `list_variables` passed in."""
    in_graph = {v.op.name for v in graph_vars}
    return {name: name for name, _ in names if name in in_graph}


def test_list_variables_equals_tensorflows_on_a_name_based_checkpoint(bert_dirs):
    """On a TF1 checkpoint the drop-in lists what `tf.train.list_variables` lists."""
    _, tf1_prefix, _ = bert_dirs
    assert est_ckpt.list_variables(tf1_prefix) == [
        (n, list(s)) for n, s in tf.train.list_variables(tf1_prefix)
    ]


def test_berts_pattern_loads_every_variable_from_a_tf2_directory(bert_dirs):
    """list_variables -> assignment map -> init_from_checkpoint: every variable, every value; TF's loads none."""
    values, _, tf2_prefix = bert_dirs
    model = Tf1Bert()
    with model.graph.as_default():
        graph_vars = tf1.global_variables()
        theirs = _bert_assignment_map(tf.train.list_variables(tf2_prefix), graph_vars)
        assert theirs == {}, "TF's list_variables now gives TF1 names: the README's claim needs updating"
        ours = _bert_assignment_map(est_ckpt.list_variables(tf2_prefix), graph_vars)
        assert set(ours) == set(values)
        plan = est_ckpt.init_from_checkpoint(tf2_prefix, ours)
        assert len(plan.assignments) == len(values)
        model.sess.run(tf1.global_variables_initializer())
        for v in graph_vars:
            np.testing.assert_array_equal(model.sess.run(v), values[v.op.name], err_msg=v.op.name)


def test_init_from_checkpoint_takes_scopes_and_variables_as_tf_does(bert_dirs):
    """A scope entry and a variable object, as TF's grammar has them; an entry naming no variable is an error."""
    values, _, tf2_prefix = bert_dirs
    model = Tf1Bert()
    with model.graph.as_default():
        pooler = [v for v in tf1.global_variables() if v.op.name == "bert/pooler/dense/kernel"][0]
        est_ckpt.init_from_checkpoint(
            tf2_prefix, {"bert/encoder/": "bert/encoder/", "bert/pooler/dense/kernel": pooler}
        )
        model.sess.run(tf1.global_variables_initializer())
        np.testing.assert_array_equal(model.sess.run(pooler), values["bert/pooler/dense/kernel"])
        for v in tf1.global_variables():
            if v.op.name.startswith("cls/"):  # zeros on both sides
                continue
            same = np.array_equal(model.sess.run(v), values[v.op.name])
            assert same == (v.op.name.startswith("bert/encoder/") or v is pooler), v.op.name
        with pytest.raises(est_ckpt.errors.MappingError, match="bert/no_such"):
            est_ckpt.init_from_checkpoint(tf2_prefix, {"bert/pooler/dense/bias": "bert/no_such"})


def test_warm_start_with_a_preset_computes_the_lstm_layout(tmp_path):
    """`warm_start(..., rules='lstm')`: a TF1 LSTMCell graph from a Keras LSTM checkpoint gives its outputs."""
    tf1_model = Tf1Model("lstm", seed=5)  # first: TF1 layers in a graph invalidate Keras models made before
    model, opt = _keras("lstm")
    _keras_step(model, opt, 2)
    src = _keras_save(model, opt, tmp_path / "keras" / "ckpt")
    expected = model(X).numpy()
    with tf1_model.graph.as_default():
        plan = est_ckpt.warm_start(src, rules="lstm")
        assert {a.target for a in plan.assignments if a.transform is not None} == {
            "rnn/lstm_cell/kernel",
            "rnn/lstm_cell/bias",
        }
        tf1_model.sess.run(tf1.global_variables_initializer())
    np.testing.assert_allclose(tf1_model.predict(), expected, atol=1e-5)


@pytest.mark.estimator
def test_warm_start_settings_carry_rules(tmp_path):
    """`warm_start_settings(..., rules=...)` applies the transforms when Estimator iterates the settings."""
    from est_ckpt.tf.settings import warm_start_settings

    tf1_model = Tf1Model("lstm", seed=6)
    model, opt = _keras("lstm")
    src = _keras_save(model, opt, tmp_path / "keras" / "ckpt")
    expected = model(X).numpy()
    head = [w.numpy() for w in model.layers[-1].weights]
    settings = warm_start_settings(src, rules="lstm", vars_to_warm_start="rnn/")
    assert settings.rules.name == "lstm" and "rules=Rules('lstm'" in repr(settings)
    with tf1_model.graph.as_default():
        tf1.train.warm_start(*settings)
        tf1_model.sess.run(tf1.global_variables_initializer())
    dense = tf1_model.values()["dense/kernel"]
    assert not np.allclose(dense, head[0])  # only rnn/ was warm-started
    with tf1_model.graph.as_default():
        tf1_model.sess.run([v.assign(w) for v, w in zip(tf1.trainable_variables()[2:], head)])
    np.testing.assert_allclose(tf1_model.predict(), expected, atol=1e-5)


def test_bad_rules_are_one_clear_error(tmp_path):
    """A missing file, an unknown preset or parameter, a malformed rule: one line naming it; exit 1 (2: usage)."""
    with pytest.raises(est_ckpt.errors.RulesFileError, match="no preset named 'lsmt'"):
        est_ckpt.load_rules("lsmt")
    with pytest.raises(est_ckpt.errors.RulesFileError, match="lstm: no parameter 'forget'"):
        est_ckpt.load_rules("lstm", forget=1.0)
    bad = tmp_path / "r.json"
    bad.write_text(
        '{"est_ckpt_rules": 1, "rules": [{"target": "a", "source": "b", "transforms": [{"roll": 1}]}]}'
    )
    with pytest.raises(
        est_ckpt.errors.RulesFileError, match=r"r.json rules\[0\]: transforms\[0\] must be one of"
    ):
        est_ckpt.load_rules(str(bad))
    proc = run_cli("map", str(tmp_path), "--target", str(tmp_path), f"--rules={tmp_path}/none.json")
    assert proc.returncode == 1 and "none.json: no such rules file." in proc.stderr
    proc = run_cli("map", str(tmp_path), "--target", str(tmp_path), "--rule_param", "a=1")
    assert proc.returncode == 2 and "give --rules too" in proc.stderr
