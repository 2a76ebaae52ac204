"""`est_ckpt.warm_start` is TF's `warm_start`: TF's own warm-start behaviours, run through both.

The cases are those of TF's `tensorflow/python/training/warm_starting_util_test.py`
(plain, partitioned either side and both, renames, vocabularies on rows and
columns, OOV buckets, a constrained old vocabulary, backup initializers, every
`vars_to_warm_start` form, feature-column models, error cases), expressed
through the public `warm_start(...)`. Each case builds its target graph and runs:

1. `tf.compat.v1.train.warm_start` from the name-based source: the reference
   (the values of every variable, or the exception's builtin type);
2. `est_ckpt.warm_start` from the same source, positionally as Estimator calls it;
3. `est_ckpt.warm_start` from TF2 copies of the source: `convert --to=tf2`
   (called as `warm_start(*tf.estimator.WarmStartSettings(...))` where Estimator is installed), a
   `make_tf2_scaffold` save (partitioned variables saved part by part) and, for
   cases whose source has no partitioned variable, an eager `tf.train.Checkpoint`.

Values are compared variable by variable: exactly for plain copies, allclose
for vocabulary remaps; refusals by the builtin type of TF's exception. Every
source checkpoint holds the variables of all cases (each case under its own
scope) and is written once for the module.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


tf1 = tf.compat.v1
fc = tf1.feature_column

import est_ckpt  # noqa: E402
from est_ckpt.errors import (  # noqa: E402
    AmbiguousNameError,
    CheckpointNotFoundError,
    MismatchError,
    NotAMappingError,
    UnmappedVariablesError,
)
from tests import fixtures  # noqa: E402

FW = np.array([[0.5], [1.0], [1.5], [2.0]], np.float32)  # TF's "fruit_weights"
FOL = np.array([[0.5, 0.3], [1.0, 0.8], [1.5, 1.2], [2.0, 2.3]], np.float32)  # TF's "fruit_output_layer"
VOCABS = {
    "old4": ["apple", "banana", "guava", "orange"],
    "new5": ["orange", "guava", "banana", "apple", "raspberry"],
    "new6": ["orange", "guava", "banana", "apple", "raspberry", "blueberry"],
    "old2": ["apple", "orange"],
    "new3": ["orange", "apple", "banana"],
    "old3": ["apple", "guava", "banana"],
}


def _random(seed, shape):
    return np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32)


def _ones(shape):
    return np.ones(shape, np.float32)


class Case(NamedTuple):
    """One warm-start scenario.

    Attributes:
      source: `{name: (value, parts)}` of the source checkpoint, names relative
        to the case's scope; `parts` partitions along rows (None: not partitioned).
      build: `build(scoped, vocab)` builds the target graph inside the case's
        scope and returns `warm_start`'s arguments after the checkpoint;
        `scoped(name)` is the full name, `vocab(key)` a vocabulary file's path.
      remap: vocabulary remapping: compare values with allclose.
      prefix: pass the checkpoint prefix instead of the model directory.
      expected: `{name: value}` that TF's test asserts (checked on TF's own run).
    """

    source: dict
    build: Callable
    remap: bool = False
    prefix: bool = False
    expected: Optional[dict] = None


CASES: dict[str, Case] = {}


def case(source=None, *, remap=False, prefix=False, expected=None):
    def register(build):
        CASES[build.__name__] = Case(source or {}, build, remap, prefix, expected)
        return build

    return register


def _partitioner(parts):
    if parts is None:
        return None
    return lambda shape, dtype: [min(parts, shape.dims[0].value)] + [1] * (len(shape) - 1)


def _zeros(name, shape, parts=None, **kwargs):
    return tf1.get_variable(
        name, shape=shape, initializer=tf1.zeros_initializer(), partitioner=_partitioner(parts), **kwargs
    )


# -- single variables: warmStartVar* -------------------------------------------------------


@case({"fruit_weights": (FW, None)})
def var(s, vocab):
    _zeros("fruit_weights", [4, 1])
    return ()


@case({"fruit_weights": (FW, 2)})
def var_prev_var_partitioned(s, vocab):
    _zeros("fruit_weights", [4, 1])
    return ()


@case({"fruit_weights": (FW, None)})
def var_current_var_partitioned(s, vocab):
    _zeros("fruit_weights", [4, 1], parts=2)
    return ()


@case({"old_scope/fruit_weights": (FW, 2)})
def var_both_vars_partitioned_renamed(s, vocab):
    _zeros("new_scope/fruit_weights", [4, 1], parts=2)
    return ".*", None, {s("new_scope/fruit_weights"): s("old_scope/fruit_weights")}


# -- vocabularies: warmStartVarWithVocab* / WithColumnVocab* -----------------------------------


def _vocab_case(target_shape, parts, info, *, prev=None):
    def build(s, vocab):
        _zeros("fruit_weights", target_shape, parts=parts)
        return ".*", {s("fruit_weights"): info(vocab)}, prev

    return build


def _rows(new="new5", size=5, oov=0, **kwargs):
    return lambda vocab: tf1.train.VocabInfo(vocab(new), size, oov, vocab("old4"), **kwargs)


def _columns(**kwargs):
    return lambda vocab: tf1.train.VocabInfo(vocab("new3"), 3, 0, vocab("old2"), axis=1, **kwargs)


_ROWS_EXPECTED = np.array([[2.0], [1.5], [1.0], [0.5], [0.0]], np.float32)
_COLUMNS_EXPECTED = np.array([[0.3, 0.5, 0.0], [0.8, 1.0, 0.0], [1.2, 1.5, 0.0], [2.3, 2.0, 0.0]], np.float32)


def _register_vocab_cases():
    rows, columns = {"fruit_weights": (FW, None)}, {"fruit_weights": (FOL, None)}
    rows_parts, columns_parts = {"fruit_weights": (FW, 2)}, {"fruit_weights": (FOL, 2)}
    table = {
        "var_with_vocab": (rows, [5, 1], None, _rows(), {"fruit_weights": _ROWS_EXPECTED}),
        "var_with_column_vocab": (columns, [4, 3], None, _columns(), {"fruit_weights": _COLUMNS_EXPECTED}),
        "var_with_vocab_constrained_old_vocab_size": (
            rows,
            [5, 1],
            None,
            _rows(old_vocab_size=2),
            {"fruit_weights": [[0.0], [0.0], [1.0], [0.5], [0.0]]},
        ),
        "var_with_vocab_prev_var_partitioned": (rows_parts, [5, 1], None, _rows(), None),
        "var_with_column_vocab_prev_var_partitioned": (columns_parts, [4, 3], None, _columns(), None),
        "var_with_vocab_current_var_partitioned_oov": (
            rows,
            [6, 1],
            2,
            _rows(oov=1),
            {"fruit_weights/part_0": [[2.0], [1.5], [1.0]], "fruit_weights/part_1": [[0.5], [0.0], [0.0]]},
        ),
        "var_with_column_vocab_current_var_partitioned": (columns, [4, 3], 2, _columns(), None),
        "var_with_vocab_both_vars_partitioned": (rows_parts, [6, 1], 2, _rows("new6", 6), None),
        "var_with_column_vocab_both_vars_partitioned": (columns_parts, [4, 3], 2, _columns(), None),
        # Beyond TF's test: a seeded backup initializer shows where each new cell's value goes.
        "var_with_vocab_oov_seeded_backup_both_partitioned": (
            rows_parts,
            [7, 1],
            3,
            _rows(oov=2, backup_initializer=tf1.random_uniform_initializer(seed=7)),
            None,
        ),
        "var_with_column_vocab_seeded_backup_both_partitioned": (
            columns_parts,
            [4, 4],
            2,
            lambda vocab: tf1.train.VocabInfo(
                vocab("new3"),
                3,
                1,
                vocab("old2"),
                axis=1,
                backup_initializer=tf1.random_uniform_initializer(seed=3),
            ),
            None,
        ),
    }
    for name, (source, shape, parts, info, expected) in table.items():
        build = _vocab_case(shape, parts, info)
        build.__name__ = name
        case(source, remap=True, expected=expected)(build)


_register_vocab_cases()


@case({"old_emb": (_random(1, [4, 3]), 2)}, remap=True)
def var_with_vocab_renamed_partitioned(s, vocab):
    _zeros("new_emb", [6, 3], parts=3)
    return ".*", {s("new_emb"): _rows("new5", 5, 1)(vocab)}, {s("new_emb"): s("old_emb")}


# -- vars_to_warm_start forms: warmStart_ListOf* ------------------------------------------------


@case({"v1": (_ones([10, 1]), None)}, expected={"v1": _ones([10, 1])})
def list_of_variables(s, vocab):
    return ([_zeros("v1", [10, 1])],)


@case({"v1": (_ones([10, 1]), None)}, expected={"v1": _ones([10, 1])})
def list_of_strings(s, vocab):
    _zeros("v1", [10, 1])
    return ([s("v1")],)


@case({"v1": (_ones([10, 1]), None)}, expected={"v1": _ones([10, 1]), "v2": _ones([10, 1])})
def two_vars_from_the_same_prev_var(s, vocab):
    _zeros("v1", [10, 1])
    _zeros("v2", [10, 1])
    return [s("v1"), s("v2")], None, {s("v2"): s("v1")}


@case(
    {name: (_random(i, [10, 1]), None) for i, name in enumerate(["v1", "v1/Momentum", "v2", "v2/Momentum"])},
    expected={"v2/Momentum": np.zeros([10, 1])},
)
def list_of_regexes(s, vocab):
    for name in ["v1", "v1/Momentum", "v2", "v2/Momentum"]:
        _zeros(name, [10, 1], trainable=name.endswith("1"))
    return ([s("v1"), s("v2[^/]")],)


@case({"v1": (_random(5, [3]), None), "v2": (_random(6, [3]), None)}, expected={"v1": np.zeros([3])})
def regex_string_trainable_only(s, vocab):
    _zeros("v1", [3], trainable=False)
    _zeros("v2", [3])
    return (s("v."),)


@case({"w": (_random(7, [4, 1]), None), "emb": (FW, None)}, remap=True, expected={"w": np.zeros([4, 1])})
def empty_string_vars_to_warm_start(s, vocab):
    # TF: '' selects every trainable variable, but being falsy warm-starts only the vocabulary ones.
    _zeros("w", [4, 1])
    _zeros("emb", [5, 1])
    return "", {s("emb"): _rows()(vocab)}


@case({"w": (_random(8, [2]), None)}, expected={"w": np.zeros([2])})
def empty_list_vars_to_warm_start(s, vocab):
    _zeros("w", [2])
    return ([],)


# -- feature-column models: warmStart_SparseColumn*, BucketizedColumn, MultipleCols, MoreSettings --


def _inputs():
    return {
        "sc_int": tf1.sparse_placeholder(tf.int32),
        "sc_hash": tf1.sparse_placeholder(tf.string),
        "sc_keys": tf1.sparse_placeholder(tf.string),
        "sc_vocab": tf1.sparse_placeholder(tf.string),
        "real": tf1.placeholder(tf.float32),
    }


def _linear_model(columns, parts=1):
    with tf1.variable_scope(tf1.get_variable_scope(), partitioner=_partitioner(parts)):
        fc.linear_model(_inputs(), columns, units=1)


def _sc_vocab(vocab, key="old4", size=4):
    return fc.categorical_column_with_vocabulary_file(
        "sc_vocab", vocabulary_file=vocab(key), vocabulary_size=size
    )


_LM = "linear_model/"


@case({_LM + "sc_int/weights": (_ones([10, 1]), None)})
def sparse_column_integerized(s, vocab):
    _linear_model([fc.categorical_column_with_identity("sc_int", num_buckets=10)])
    return (".*sc_int.*",)


@case({_LM + "sc_hash/weights": (_random(10, [15, 1]), None)})
def sparse_column_hashed(s, vocab):
    _linear_model([fc.categorical_column_with_hash_bucket("sc_hash", hash_bucket_size=15)])
    return (".*sc_hash.*",)


@case({_LM + "sc_vocab/weights": (_ones([4, 1]), None)})
def sparse_column_vocabulary(s, vocab):
    _linear_model([_sc_vocab(vocab)])
    return (".*sc_vocab.*",)


@case({_LM + "sc_vocab/weights": (_ones([4, 1]), None)}, prefix=True)
def explicit_checkpoint_file(s, vocab):
    _linear_model([_sc_vocab(vocab)])
    return (".*sc_vocab.*",)


@case(
    {_LM + "sc_vocab/weights": (_ones([2, 1]), None)},
    remap=True,
    expected={_LM + "sc_vocab/weights/part_0": [[1.0], [0.0]]},
)
def sparse_column_vocabulary_constrained_vocab_sizes(s, vocab):
    column = _sc_vocab(vocab, "old4", 2)  # ['apple', 'banana'] of apple, banana, guava, orange
    _linear_model([column])
    info = tf1.train.VocabInfo(column.vocabulary_file, 2, 0, vocab("old3"), old_vocab_size=2)
    return ".*sc_vocab.*", {s(_LM + "sc_vocab/weights"): info}


@case({_LM + "real_bucketized/weights": (_random(11, [5, 1]), None)})
def bucketized_column(s, vocab):
    _linear_model([fc.bucketized_column(fc.numeric_column("real"), boundaries=[0.0, 1.0, 2.0, 3.0])])
    return (".*real_bucketized.*",)


def _all_linear_columns(vocab):
    sc_keys = fc.categorical_column_with_vocabulary_list("sc_keys", vocabulary_list=["a", "b", "c", "e"])
    sc_vocab = _sc_vocab(vocab)
    return [
        fc.categorical_column_with_identity("sc_int", num_buckets=10),
        fc.categorical_column_with_hash_bucket("sc_hash", hash_bucket_size=15),
        sc_keys,
        sc_vocab,
        fc.bucketized_column(fc.numeric_column("real"), boundaries=[0.0, 1.0, 2.0, 3.0]),
        fc.crossed_column([sc_keys, sc_vocab], hash_bucket_size=20),
    ]


@case(
    {
        _LM + "sc_int/weights": (_ones([10, 1]), None),
        _LM + "sc_hash/weights": (_random(12, [15, 1]), None),
        _LM + "sc_keys/weights": (_random(13, [4, 1]), None),
        _LM + "sc_vocab/weights": (_ones([4, 1]), None),
        _LM + "real_bucketized/weights": (_random(14, [5, 1]), None),
        _LM + "sc_keys_X_sc_vocab/weights": (_random(15, [20, 1]), None),
        _LM + "bias_weights": (_random(16, [1]), None),
    },
    remap=True,
)
def multiple_cols(s, vocab):
    _linear_model(_all_linear_columns(vocab))
    info = tf1.train.VocabInfo(vocab("old4"), 4, 0, vocab("old4"))
    return ".*", {s(_LM + "sc_vocab/weights"): info}


_MORE_SETTINGS_SOURCE = {
    _LM + "sc_hash/weights": (_random(17, [15, 1]), None),
    "some_other_name": (_random(18, [4, 1]), None),
    _LM + "sc_vocab/weights": (np.array([[0.5], [1.0], [2.0], [3.0]], np.float32), None),
}


def _more_settings(vars_to_warm_start, parts):
    def build(s, vocab):
        sc_vocab = _sc_vocab(vocab, "new6", 6)
        sc_keys = fc.categorical_column_with_vocabulary_list("sc_keys", vocabulary_list=["a", "b", "c", "e"])
        sc_hash = fc.categorical_column_with_hash_bucket("sc_hash", hash_bucket_size=15)
        _linear_model([sc_hash, sc_keys, sc_vocab], parts)
        info = tf1.train.VocabInfo(sc_vocab.vocabulary_file, 6, 0, vocab("old4"))
        return (
            vars_to_warm_start,
            {s(_LM + "sc_vocab/weights"): info},
            {s(_LM + "sc_keys/weights"): s("some_other_name")},
        )

    return build


for _name, _vars, _parts in [
    ("more_settings", ".*(sc_keys|sc_vocab).*", 2),
    ("more_settings_no_partitioning", ".*(sc_keys|sc_vocab).*", None),
    # The case: None warm-starts only sc_vocab, yet the rename of sc_keys counts as used.
    ("vars_to_warm_start_is_none", None, 2),
]:
    _build = _more_settings(_vars, _parts)
    _build.__name__ = _name
    case(_MORE_SETTINGS_SOURCE, remap=True)(_build)


def _embedding_column(vocab):
    return fc.embedding_column(_sc_vocab(vocab, "new6", 6), dimension=2)


def _backup(vocab):
    # TF's test: a constant through a random initializer (load_and_remap cannot take constant_initializer).
    return tf1.train.VocabInfo(
        vocab("new6"), 6, 0, vocab("old4"), backup_initializer=tf1.random_uniform_initializer(0.42, 0.42)
    )


_EMBEDDING = np.array([[0.5, 0.4], [1.0, 1.1], [2.0, 2.2], [3.0, 3.3]], np.float32)


@case({"input_layer/sc_vocab_embedding/embedding_weights": (_EMBEDDING, None)}, remap=True)
def embedding_column(s, vocab):
    with tf1.variable_scope(tf1.get_variable_scope(), partitioner=_partitioner(2)):
        fc.input_layer(_inputs(), [_embedding_column(vocab)])
    return ".*", {s("input_layer/sc_vocab_embedding/embedding_weights"): _backup(vocab)}


@case(
    {
        _LM + "sc_vocab_embedding/embedding_weights": (_EMBEDDING, None),
        _LM + "sc_vocab_embedding/weights": (np.array([[0.69], [0.71]], np.float32), None),
    },
    remap=True,
)
def embedding_column_linear_model(s, vocab):
    with tf1.variable_scope(tf1.get_variable_scope(), partitioner=_partitioner(2)):
        fc.linear_model(_inputs(), [_embedding_column(vocab)])
    return ".*sc_vocab.*", {s(_LM + "sc_vocab_embedding/embedding_weights"): _backup(vocab)}


# -- refusals: errorConditions and more ---------------------------------------------------------


@case({"x": (_ones([4, 1]), 2)})
def unused_vocab_info(s, vocab):
    _zeros("x", [4, 1], parts=2)
    return ".*", {s("y"): tf1.train.VocabInfo("", 1, 0, "")}


@case({"x": (_ones([4, 1]), 2)})
def unused_prev_var_name(s, vocab):
    _zeros("x", [4, 1], parts=2)
    return ".*", None, {s("y"): s("y2")}


@case({"x": (_ones([4, 1]), None)})
def vocab_info_is_none(s, vocab):
    _zeros("x", [4, 1])
    return ".*", {s("x"): None}


@case({"x": (_ones([4, 1]), None)})
def vocab_info_without_vocabularies(s, vocab):
    _zeros("x", [4, 1])
    return ".*", {s("x"): tf1.train.VocabInfo("", 1, 0, "")}


@case({"x": (_ones([4, 1]), None)})
def prev_var_name_empty(s, vocab):
    # TF counts an empty old name as not given, so the entry is unused.
    _zeros("x", [4, 1])
    return ".*", None, {s("x"): ""}


@case({"x": (FW, None), "w": (_ones([2]), None)})
def vars_to_warm_start_is_none_prev_for_non_trainable(s, vocab):
    _zeros("x", [5, 1])
    _zeros("w", [2], trainable=False)
    return None, {s("x"): _rows()(vocab)}, {s("w"): s("w")}


@case({"x": (_ones([4, 1]), None)})
def missing_variable(s, vocab):
    _zeros("x", [4, 1])
    _zeros("not_in_checkpoint", [2])
    return ()


@case({"x": (_ones([4, 1]), None)})
def missing_prev_var_name(s, vocab):
    _zeros("x", [4, 1])
    return ".*", None, {s("x"): s("nope")}


@case({"x": (_ones([2, 1]), None)})
def shape_mismatch(s, vocab):
    _zeros("x", [3, 1])
    return ()


@case({"x": (_ones([2]), None)})
def vars_to_warm_start_not_a_list(s, vocab):
    _zeros("x", [2])
    return (3,)


@case({"x": (_ones([2]), None)})
def vars_to_warm_start_tuple(s, vocab):
    _zeros("x", [2])
    return ((s("x"),),)


@case({"x": (_ones([2]), None)})
def vars_to_warm_start_mixed_list(s, vocab):
    return ([s("x"), _zeros("x", [2])],)


@case({"x": (_ones([4, 1]), 2)})
def vars_to_warm_start_partitioned_variable(s, vocab):
    return ([_zeros("x", [4, 1], parts=2)],)


@case({"x": (_ones([2]), None)})
def vars_to_warm_start_bad_regex(s, vocab):
    _zeros("x", [2])
    return ("(",)


@case({"x": (_ones([2]), None)})
def vocab_info_not_a_dict(s, vocab):
    _zeros("x", [2])
    return ".*", []


@case({"x": (_ones([2]), None)})
def prev_var_name_not_a_dict(s, vocab):
    _zeros("x", [2])
    return ".*", None, [(s("x"), s("x"))]


# -- running the cases -------------------------------------------------------------------------


def _write_source_graph():
    """Every case's source variables, under the case's scope, with their values."""

    def initializer(value):
        def init(shape, dtype=None, partition_info=None):
            offset = partition_info.var_offset if partition_info else [0] * value.ndim
            index = tuple(slice(o, o + n) for o, n in zip(offset, shape))
            return tf.constant(value[index], dtype=dtype)

        return init

    for case_id, c in CASES.items():
        for name, (value, parts) in c.source.items():
            tf1.get_variable(
                f"{case_id}/{name}",
                shape=value.shape,
                dtype=tf.float32,
                initializer=initializer(value),
                partitioner=_partitioner(parts),
            )


def _has_parts(case_id):
    return any(parts for _, parts in CASES[case_id].source.values())


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """`{kind: (model dir, prefix)}` of the source in each form, and `'vocab'`: the vocabulary files."""
    root = tmp_path_factory.mktemp("compat")
    vocab = {}
    for key, words in VOCABS.items():
        vocab[key] = str(root / f"{key}.txt")
        (root / f"{key}.txt").write_text("\n".join(words))
    out = {"vocab": vocab}
    for kind in ("tf1", "scaffold"):
        (root / kind).mkdir()
    with tf.Graph().as_default():
        _write_source_graph()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            values = {v.op.name: sess.run(v) for v in tf1.global_variables()}
            prefix = tf1.train.Saver().save(sess, str(root / "tf1" / "model.ckpt"), global_step=0)
    out["tf1"] = (str(root / "tf1"), prefix)
    prefix = est_ckpt.convert_checkpoint(out["tf1"][0], str(root / "converted") + "/", to="tf2")
    out["converted"] = (str(root / "converted"), prefix)
    with tf.Graph().as_default():
        _write_source_graph()
        scaffold = est_ckpt.make_tf2_scaffold()
        scaffold.finalize()
        with tf1.Session() as sess:
            sess.run(scaffold.init_op)
            prefix = scaffold.saver.save(sess, str(root / "scaffold" / "model.ckpt"), global_step=0)
    out["scaffold"] = (str(root / "scaffold"), prefix)
    # Eager variables cannot be partitioned: the eager source holds the other cases' variables.
    eager = {}
    for case_id in CASES:
        if not _has_parts(case_id):
            for name in CASES[case_id].source:
                full = f"{case_id}/{name}"
                eager[f"v{len(eager)}"] = tf.Variable(values[full], name=full)
    prefix = tf.train.Checkpoint(**eager).save(str(root / "eager" / "ckpt"))
    out["eager"] = (str(root / "eager"), prefix)
    return out


def _run(warm_start, path, case_id, vocab, *, settings=False):
    """Builds the case's graph and warm-starts it: `({variable: value}, None)` or `(None, exception)`."""
    c = CASES[case_id]
    with tf.Graph().as_default():
        with tf1.variable_scope(case_id):
            args = c.build(lambda name: f"{case_id}/{name}", vocab.__getitem__)
        try:
            if settings:
                warm_start(*tf.estimator.WarmStartSettings(path, *args))
            else:
                warm_start(path, *args)
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                return sess.run({v.op.name: v for v in tf1.global_variables()}), None
        except Exception as e:  # the exception is the result compared
            return None, e


def _builtin(klass):
    """The nearest builtin exception class of `klass` (`Exception` for TF's `OpError`s)."""
    return next(k for k in klass.__mro__ if k.__module__ == "builtins")


@pytest.fixture(scope="module")
def reference(sources):
    """TF's own result for a case, from the name-based source (computed once per case)."""
    results = {}

    def get(case_id):
        if case_id not in results:
            directory, prefix = sources["tf1"]
            path = prefix if CASES[case_id].prefix else directory
            results[case_id] = _run(tf1.train.warm_start, path, case_id, sources["vocab"])
        return results[case_id]

    return get


def _assert_same(case_id, expected, got):
    ref_values, ref_error = expected
    values, error = got
    if ref_error is not None:
        assert error is not None, f"TF raised {ref_error!r}; est_ckpt did not"
        assert isinstance(error, _builtin(type(ref_error))), f"TF raised {ref_error!r}; est_ckpt {error!r}"
        return
    assert error is None, f"TF succeeded; est_ckpt raised {error!r}"
    assert sorted(values) == sorted(ref_values)
    for name, ref in ref_values.items():
        if CASES[case_id].remap:
            np.testing.assert_allclose(values[name], ref, rtol=1e-6, atol=1e-7, err_msg=name)
        else:
            np.testing.assert_array_equal(values[name], ref, err_msg=name)


RUNNERS = ("tf1", "converted", "scaffold", "eager")
PARAMS = [
    pytest.param(case_id, runner, id=f"{case_id}-{runner}")
    for case_id in CASES
    for runner in RUNNERS
    if not (runner == "eager" and _has_parts(case_id))
]


@pytest.mark.parametrize("case_id", list(CASES))
def test_tf_reference_is_what_tfs_test_asserts(reference, case_id):
    """TF's own run of each case gives the values TF's test asserts (so the cases are TF's scenarios)."""
    values, error = reference(case_id)
    expected = CASES[case_id].expected
    if expected is None:
        return
    assert error is None, repr(error)
    for name, value in expected.items():
        np.testing.assert_allclose(values[f"{case_id}/{name}"], value, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("case_id, runner", PARAMS)
def test_est_ckpt_matches_tf(sources, reference, case_id, runner):
    """est_ckpt.warm_start gives TF's values (or refuses with TF's builtin type), from the source or a TF2 copy."""
    directory, prefix = sources[runner]
    path = prefix if CASES[case_id].prefix else directory
    expected = reference(case_id)
    # Estimator's way, `warm_start(*settings)`, for the cases whose arguments TF's settings accept as given.
    # Estimator's way needs Estimator (TF <= 2.15); the graph-mode `warm_start` runs on any TF 2.
    settings = runner == "converted" and expected[1] is None and fixtures.HAS_ESTIMATOR
    got = _run(est_ckpt.warm_start, path, case_id, sources["vocab"], settings=settings)
    _assert_same(case_id, expected, got)


def test_warm_start_from_object_based_checkpoint(tmp_path):
    """TF's warmStartFromObjectBasedCheckpoint: a session-saved `Checkpoint(v=var)` warm-starts by name in both."""
    with tf.Graph().as_default():
        prev = tf1.get_variable("fruit_weights", initializer=FW)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf.train.Checkpoint(v=prev).save(str(tmp_path / "checkpoint"))
    results = []
    for warm_start in (tf1.train.warm_start, est_ckpt.warm_start):
        with tf.Graph().as_default():
            fruit_weights = _zeros("fruit_weights", [4, 1])
            warm_start(str(tmp_path))
            results.append(_init_and_read(fruit_weights))
    np.testing.assert_array_equal(results[0], FW)
    np.testing.assert_array_equal(results[1], FW)


def _init_and_read(*variables):
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        out = sess.run(list(variables))
    return out[0] if len(out) == 1 else out


# -- eager mode: TF's errorConditions run eagerly -------------------------------------------------


def _eager_zeros(name, shape):
    return tf.Variable(tf.zeros(shape), name=name)


EAGER_CASES = {
    # TF's warm_start in eager mode selects from the graph collections, which hold no eager variable.
    "nothing_selected": lambda vocab: ([], ()),
    "unused_vocab_info": lambda vocab: ([], (".*", {"y": tf1.train.VocabInfo("", 1, 0, "")})),
    "unused_prev_var_name": lambda vocab: ([], (".*", None, {"y": "y2"})),
    "list_of_eager_variables": lambda vocab: _listed([_eager_zeros("var/fruit_weights", [4, 1])]),
    "eager_variable_renamed": lambda vocab: _listed(
        [_eager_zeros("renamed", [4, 1])], None, {"renamed": "var/fruit_weights"}
    ),
    "eager_variable_missing": lambda vocab: _listed([_eager_zeros("not_in_checkpoint", [4, 1])]),
    "eager_variable_with_vocab": lambda vocab: _listed(
        [_eager_zeros("var_with_vocab/fruit_weights", [5, 1])],
        {"var_with_vocab/fruit_weights": _rows()(vocab)},
    ),
    "eager_variable_with_vocab_from_parts": lambda vocab: _listed(
        [_eager_zeros("var_with_vocab_prev_var_partitioned/fruit_weights", [5, 1])],
        {"var_with_vocab_prev_var_partitioned/fruit_weights": _rows()(vocab)},
    ),
}


def _listed(variables, *args):
    return variables, (variables, *args)


def _run_eager(warm_start, path, case_id, vocab):
    variables, args = EAGER_CASES[case_id](vocab.__getitem__)
    try:
        warm_start(path, *args)
    except Exception as e:  # the exception is the result compared
        return None, e
    return {v.name: v.numpy() for v in variables}, None


@pytest.mark.parametrize(
    "case_id, runner",
    [
        pytest.param(case_id, runner, id=f"{case_id}-{runner}")
        for case_id in EAGER_CASES
        for runner in RUNNERS
        if not (runner == "eager" and case_id.endswith("from_parts"))
    ],
)
def test_eager_mode_matches_tf(sources, case_id, runner):
    """In eager mode est_ckpt.warm_start does what TF's does: ValueError for unused entries, listed variables assigned."""
    expected = _run_eager(tf1.train.warm_start, sources["tf1"][0], case_id, sources["vocab"])
    got = _run_eager(est_ckpt.warm_start, sources[runner][0], case_id, sources["vocab"])
    ref_values, ref_error = expected
    values, error = got
    if ref_error is not None:
        assert isinstance(error, _builtin(type(ref_error))), f"TF raised {ref_error!r}; est_ckpt {error!r}"
        return
    assert error is None, f"TF succeeded; est_ckpt raised {error!r}"
    assert sorted(values) == sorted(ref_values)
    for name, ref in ref_values.items():
        np.testing.assert_allclose(values[name], ref, rtol=1e-6, err_msg=name)


# -- the deliberate differences the README lists ------------------------------------------------


def _graph_run(warm_start, path, build, *args):
    """`(values, None)` or `(None, exception)`, the exception of warm_start or of running the initializers."""
    with tf.Graph().as_default():
        variables = build()
        try:
            warm_start(path, *args)
            return _init_and_read(*variables), None
        except Exception as e:  # the exception is the result compared
            return None, e


def _scalar_named(name):
    return lambda: [tf1.get_variable(name, shape=[], initializer=tf1.zeros_initializer())]


def test_difference_duplicate_full_names(ckpts):
    """Two keys recording one full_name: TF silently loads one of them; est_ckpt refuses, naming both keys."""
    source = ckpts("duplicate_names")  # vars/0 = 1.0, vars/1 = 2.0, both recorded as 'Variable'
    assert _graph_run(tf1.train.warm_start, source, _scalar_named("Variable")) == (2.0, None)
    _, error = _graph_run(est_ckpt.warm_start, source, _scalar_named("Variable"))
    assert isinstance(error, AmbiguousNameError) and "vars/0" in str(error) and "vars/1" in str(error)


def test_difference_dtype_mismatch(ckpts):
    """A float32 key into an int32 variable: TF fails when the initializer runs; est_ckpt refuses at warm_start."""
    build = lambda: [tf1.get_variable("a", shape=[], dtype=tf.int32, initializer=tf1.zeros_initializer())]  # noqa: E731
    _, tf_error = _graph_run(tf1.train.warm_start, ckpts("tf1"), build)
    assert isinstance(tf_error, tf.errors.InvalidArgumentError)
    with tf.Graph().as_default():
        build()
        with pytest.raises(MismatchError, match="int32"):
            est_ckpt.warm_start(ckpts("tf1"))


def test_difference_missing_checkpoint(tmp_path):
    """A path without a checkpoint: TF does nothing when nothing is selected, else raises NotFoundError or
    TypeError (a directory without checkpoint); est_ckpt always raises CheckpointNotFoundError naming it."""
    missing, empty = str(tmp_path / "missing"), str(tmp_path)
    assert _graph_run(tf1.train.warm_start, missing, lambda: []) == ([], None)
    assert isinstance(
        _graph_run(tf1.train.warm_start, missing, _scalar_named("a"))[1], tf.errors.NotFoundError
    )
    assert isinstance(_graph_run(tf1.train.warm_start, empty, _scalar_named("a"))[1], TypeError)
    for path, build in ((missing, lambda: []), (missing, _scalar_named("a")), (empty, _scalar_named("a"))):
        _, error = _graph_run(est_ckpt.warm_start, path, build)
        assert isinstance(error, CheckpointNotFoundError) and path in str(error)


def test_difference_object_based_sources(sources):
    """From an object-based checkpoint TF refuses renames (it looks the old names up as keys) and parts saved one
    by one (it keeps one part per name); est_ckpt gives TF's result from the name-based source."""
    vocab = sources["vocab"]
    for case_id in ("var_both_vars_partitioned_renamed", "var_prev_var_partitioned", "more_settings"):
        expected = _run(tf1.train.warm_start, sources["tf1"][0], case_id, vocab)
        _, tf_error = _run(tf1.train.warm_start, sources["scaffold"][0], case_id, vocab)
        assert tf_error is not None, case_id
        _assert_same(case_id, expected, _run(est_ckpt.warm_start, sources["scaffold"][0], case_id, vocab))


def test_difference_vocabulary_only_with_other_variables_absent(sources):
    """`vars_to_warm_start=None` from an object-based checkpoint: TF wants every trainable variable in it;
    est_ckpt, like TF from a name-based one, only the vocabulary variables it warm-starts."""
    info = tf1.train.VocabInfo(sources["vocab"]["new5"], 5, 0, sources["vocab"]["old4"])
    name = "var_with_vocab/fruit_weights"

    def build():
        return [_zeros(name, [5, 1]), _zeros("absent", [2])]

    expected = _graph_run(tf1.train.warm_start, sources["tf1"][0], build, None, {name: info})
    np.testing.assert_allclose(expected[0][0], _ROWS_EXPECTED)
    for runner in ("converted", "scaffold", "eager"):
        _, tf_error = _graph_run(tf1.train.warm_start, sources[runner][0], build, None, {name: info})
        assert isinstance(tf_error, ValueError) and "did not contain values for all" in str(tf_error)
        values, error = _graph_run(est_ckpt.warm_start, sources[runner][0], build, None, {name: info})
        assert error is None, repr(error)
        np.testing.assert_allclose(values[0], expected[0][0], rtol=1e-6)
        np.testing.assert_array_equal(values[1], np.zeros([2]))


def test_difference_vocabulary_source_missing(sources):
    """A vocabulary variable without a source: TF fails when the initializer runs; est_ckpt refuses at once."""
    info = tf1.train.VocabInfo(sources["vocab"]["new5"], 5, 0, sources["vocab"]["old4"])
    build = lambda: [tf1.get_variable("absent", shape=[5, 1])]  # noqa: E731
    _, tf_error = _graph_run(tf1.train.warm_start, sources["tf1"][0], build, ".*", {"absent": info})
    assert isinstance(tf_error, tf.errors.NotFoundError)
    with tf.Graph().as_default():
        build()
        with pytest.raises(UnmappedVariablesError, match="'absent'"):
            est_ckpt.warm_start(sources["tf1"][0], ".*", {"absent": info})


def test_difference_not_a_dict_names_the_argument(ckpts):
    """A list where TF wants a dict: TF's AttributeError, which est_ckpt's NotAMappingError is, naming the argument."""
    for args, argument in (
        ((".*", []), "var_name_to_vocab_info"),
        ((".*", None, [("a", "a")]), "var_name_to_prev_var_name"),
    ):
        with tf.Graph().as_default():
            _scalar_named("a")()
            with pytest.raises(AttributeError):
                tf1.train.warm_start(ckpts("tf1"), *args)
            with pytest.raises(NotAMappingError, match=f"`{argument}` must be a dict") as e:
                est_ckpt.warm_start(ckpts("tf1"), *args)
            assert isinstance(e.value, AttributeError) and isinstance(e.value, TypeError)


@pytest.mark.estimator
def test_difference_not_a_dict_in_settings_names_the_argument(ckpts):
    """`warm_start_settings` refuses the list as `warm_start` does, before Estimator calls it."""
    with pytest.raises(NotAMappingError, match="`var_name_to_prev_var_name` must be a dict"):
        est_ckpt.warm_start_settings(ckpts("tf1"), ".*", None, [("a", "a")])
