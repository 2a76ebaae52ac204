"""Canned Estimators warm-start through `est_ckpt.warm_start_settings` as through TF's `WarmStartSettings`.

Each canned Estimator is trained a few steps on a legacy (name-based) model
dir with an old vocabulary; a new one with a changed vocabulary (and renamed
or partitioned variables) then warm-starts from it, once with TF's own
`tf.estimator.WarmStartSettings` (the reference), once with
`est_ckpt.warm_start_settings` given the same four positional arguments, from
the legacy dir and from its `convert --to=tf2` copy. It trains one step with a
zero learning rate, so its checkpoint holds the warm-started values, which are
compared variable by variable.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

import est_ckpt  # noqa: E402

pytestmark = pytest.mark.estimator

OLD_WORDS = ["a", "b", "c", "d"]
NEW_WORDS = ["d", "c", "e", "a", "b"]


def _input_fn():
    features = {
        "word": [["a"], ["b"], ["c"], ["d"], ["e"]],
        "x": [[1.0], [2.0], [3.0], [4.0], [5.0]],
        "x_old": [[1.0], [2.0], [3.0], [4.0], [5.0]],
    }
    return tf.data.Dataset.from_tensor_slices((features, [[0], [1], [2], [1], [0]])).batch(5)


def _regression_input_fn():
    return _input_fn().map(lambda features, labels: (features, tf.cast(labels, tf.float32) * 0.5))


def _word(vocab_file, size):
    return tf.feature_column.categorical_column_with_vocabulary_file(
        "word", vocab_file, vocabulary_size=size, num_oov_buckets=1
    )


def _partitioner():
    # Two parts for the vocabulary-sized variables, one for the small ones (a split bias breaks LinearClassifier).
    return tf1.min_max_variable_partitioner(max_partitions=2, min_slice_size=16)


def _v1_sgd(rate):
    return lambda: tf1.train.GradientDescentOptimizer(rate)


def _v2_sgd(rate):
    return lambda: tf.keras.optimizers.legacy.SGD(learning_rate=rate)


class Model(NamedTuple):
    """A canned Estimator and how its new version warm-starts.

    Attributes:
      make: `make(model_dir, vocab_file, vocab_size, new, warm_start_from)` builds
        the Estimator; `new` is True for the warm-started version.
      input_fn: its training input.
      settings: `settings(new_vocab, old_vocab)` gives the four positional
        arguments after the checkpoint of `WarmStartSettings`.
      vocab_variables: the variables remapped by vocabulary (compared with allclose).
    """

    make: Callable
    input_fn: Callable
    settings: Callable
    vocab_variables: tuple


def _linear_classifier(model_dir, vocab_file, size, new, warm_start_from):
    return tf1.estimator.LinearClassifier(
        [_word(vocab_file, size), tf.feature_column.numeric_column("x")],
        model_dir=model_dir,
        n_classes=3,
        optimizer=_v1_sgd(0.0 if new else 0.5),
        partitioner=_partitioner(),
        warm_start_from=warm_start_from,
    )


def _linear_regressor(model_dir, vocab_file, size, new, warm_start_from):
    # The new model renames feature `x_old` to `x`: var_name_to_prev_var_name maps its weights.
    return tf.estimator.LinearRegressor(
        [_word(vocab_file, size), tf.feature_column.numeric_column("x" if new else "x_old")],
        model_dir=model_dir,
        optimizer=_v2_sgd(0.0 if new else 0.1),
        warm_start_from=warm_start_from,
    )


def _embedding(vocab_file, size):
    return tf.feature_column.embedding_column(_word(vocab_file, size), dimension=3)


def _dnn_classifier(model_dir, vocab_file, size, new, warm_start_from):
    return tf1.estimator.DNNClassifier(
        hidden_units=[4],
        feature_columns=[_embedding(vocab_file, size), tf.feature_column.numeric_column("x")],
        model_dir=model_dir,
        n_classes=3,
        optimizer=_v1_sgd(0.0 if new else 0.5),
        input_layer_partitioner=_partitioner(),
        warm_start_from=warm_start_from,
        config=tf.estimator.RunConfig(tf_random_seed=1),
    )


def _dnn_linear_combined_classifier(model_dir, vocab_file, size, new, warm_start_from):
    return tf1.estimator.DNNLinearCombinedClassifier(
        linear_feature_columns=[_word(vocab_file, size)],
        linear_optimizer=_v1_sgd(0.0 if new else 0.5),
        dnn_feature_columns=[_embedding(vocab_file, size), tf.feature_column.numeric_column("x")],
        dnn_optimizer=_v1_sgd(0.0 if new else 0.5),
        dnn_hidden_units=[4],
        n_classes=3,
        input_layer_partitioner=_partitioner(),
        model_dir=model_dir,
        warm_start_from=warm_start_from,
        # The variables not warm-started (vars_to_warm_start=None) keep their seeded initial values.
        config=tf.estimator.RunConfig(tf_random_seed=1),
    )


def _vocab(name):
    return lambda new, old: {name: tf.estimator.VocabInfo(new, len(NEW_WORDS), 1, old)}


_LINEAR_WORD = "linear/linear_model/word/weights"
_DNN_WORD = "dnn/input_from_feature_columns/input_layer/word_embedding/embedding_weights"

MODELS = {
    "linear_classifier": Model(
        _linear_classifier,
        _input_fn,
        lambda new, old: (".*", _vocab(_LINEAR_WORD)(new, old)),
        (_LINEAR_WORD,),
    ),
    "linear_regressor": Model(
        _linear_regressor,
        _regression_input_fn,
        lambda new, old: (
            ".*",
            _vocab(_LINEAR_WORD)(new, old),
            {"linear/linear_model/x/weights": "linear/linear_model/x_old/weights"},
        ),
        (_LINEAR_WORD,),
    ),
    "dnn_classifier": Model(
        _dnn_classifier, _input_fn, lambda new, old: (".*", _vocab(_DNN_WORD)(new, old)), (_DNN_WORD,)
    ),
    "dnn_linear_combined_classifier": Model(
        _dnn_linear_combined_classifier,
        _input_fn,
        # Only the two vocabulary variables, TF's `vars_to_warm_start=None`.
        lambda new, old: (None, {**_vocab(_LINEAR_WORD)(new, old), **_vocab(_DNN_WORD)(new, old)}),
        (_LINEAR_WORD, _DNN_WORD),
    ),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("canned")
    for name, words in (("old", OLD_WORDS), ("new", NEW_WORDS)):
        (root / f"{name}.txt").write_text("\n".join(words) + "\n")
    return root


def _values(estimator):
    # Optimizer bookkeeping (SGD's hyperparameters) is not warm-started by either.
    return {
        name: estimator.get_variable_value(name)
        for name in estimator.get_variable_names()
        if not name.startswith("training/")
    }


@pytest.mark.parametrize("model_name", list(MODELS))
def test_canned_estimator_warm_starts_like_tf(workdir, model_name):
    """From the legacy dir and its TF2 conversion, est_ckpt's settings give the values TF's settings give."""
    model = MODELS[model_name]
    old_vocab, new_vocab = str(workdir / "old.txt"), str(workdir / "new.txt")
    legacy = str(workdir / model_name / "legacy")
    trained = model.make(legacy, old_vocab, len(OLD_WORDS), False, None)
    trained.train(model.input_fn, steps=3)
    converted = est_ckpt.convert_checkpoint(legacy, str(workdir / model_name / "tf2") + "/", to="tf2")
    assert est_ckpt.read_checkpoint(converted).format == "tf2"
    args = model.settings(new_vocab, old_vocab)

    def warm_started(settings, run):
        estimator = model.make(str(workdir / model_name / run), new_vocab, len(NEW_WORDS), True, settings)
        estimator.train(model.input_fn, steps=1)
        return _values(estimator)

    expected = warm_started(tf.estimator.WarmStartSettings(legacy, *args), "tf")
    # The scenario is what it claims: remapped rows (word 'a' moved from row 0 to row 3), partitioned
    # vocabulary variables where a partitioner is given, the renamed weights loaded.
    old_values = _values(trained)
    for name in model.vocab_variables:
        np.testing.assert_array_equal(
            expected[name][NEW_WORDS.index("a")], old_values[name][OLD_WORDS.index("a")]
        )
        slices = est_ckpt.read_checkpoint(legacy).tensors[name].slices
        assert bool(slices) == (model_name != "linear_regressor"), name
    if model_name == "linear_regressor":
        renamed = expected["linear/linear_model/x/weights"]
        np.testing.assert_array_equal(renamed, old_values["linear/linear_model/x_old/weights"])
        assert np.all(renamed != 0)
    for run, source in (("legacy", legacy), ("converted", converted)):
        got = warm_started(est_ckpt.warm_start_settings(source, *args), f"est_ckpt_{run}")
        assert sorted(got) == sorted(expected), run
        for name, value in expected.items():
            if name.startswith(model.vocab_variables):
                np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=f"{run}: {name}")
            else:
                np.testing.assert_array_equal(got[name], value, err_msg=f"{run}: {name}")
