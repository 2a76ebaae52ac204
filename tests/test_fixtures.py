"""Cross-checks of the checkpoint builders against the migration guide.

These assert the exact keys (and values) the guide prints, so that the rest of
the suite can rely on `ckpts(...)` / `tests.fixtures`.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import fixtures as fx
from tests.fixtures import VV

GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
SAVE_COUNTER = "save_counter" + VV
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GUIDE_FIXTURES = sorted(n for n in fx.FIXTURES if fx.expected_keys(n))


def _reader(path):
    import tensorflow as tf

    return tf.train.load_checkpoint(path)


def _keys(path):
    return set(_reader(path).get_variable_to_shape_map())


def _object_graph_names(path):
    """{checkpoint_key: variable full_name} from the object graph proto."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(_reader(path).get_tensor(GRAPH))
    return {attr.checkpoint_key: attr.full_name for node in graph.nodes for attr in node.attributes}


def _data_files(prefix):
    return sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*"))


def test_registry_is_consistent():
    assert set(fx.FIXTURE_KINDS) == set(fx.FIXTURES)
    for name, builder in fx.FIXTURES.items():
        assert builder.__name__.startswith("build_"), name
    assert fx.FIXTURE_KINDS["estimator_tf1"] == "model_dir"
    assert fx.FIXTURE_KINDS["estimator_tf2"] == "model_dir"
    assert fx.FIXTURE_KINDS["tf1"] == "prefix"
    assert fx.expected_keys("dtypes") is None
    assert fx.expected_keys("tf1") == {"a", "b", "scoped/c"}
    # A copy: callers may mutate it.
    fx.expected_keys("tf1").add("zzz")
    assert "zzz" not in fx.expected_keys("tf1")


@pytest.mark.parametrize("name", GUIDE_FIXTURES)
def test_guide_fixture_keys_and_values(ckpts, name):
    prefix = ckpts.prefix(name)
    assert _keys(prefix) == fx.expected_keys(name)
    reader = _reader(prefix)
    for key, value in fx.GUIDE_VALUES[name].items():
        assert reader.get_tensor(key) == value, (name, key)


def test_tf1_ckpt(ckpts):
    prefix = ckpts("tf1")
    assert os.path.basename(prefix) == "tf1-ckpt"
    assert os.path.exists(prefix + ".index")
    assert os.path.exists(prefix + ".meta")
    assert GRAPH not in _keys(prefix)
    dtypes = _reader(prefix).get_variable_to_dtype_map()
    assert {k: d.name for k, d in dtypes.items()} == {"a": "float32", "b": "float32", "scoped/c": "float32"}


def test_tf2_ckpt_object_graph_names(ckpts):
    prefix = ckpts("tf2")
    assert prefix.endswith("tf2-ckpt-1")
    assert _object_graph_names(prefix) == {
        "variables/0" + VV: "a",
        "variables/1" + VV: "b",
        "variables/2" + VV: "scoped/c",
        SAVE_COUNTER: "save_counter",
    }


def test_nested_ckpt_all_named_variable(ckpts):
    prefix = ckpts("nested")
    assert prefix.endswith("root-tf2-ckpt-1")
    names = _object_graph_names(prefix)
    assert names.pop(SAVE_COUNTER) == "save_counter"
    assert set(names.values()) == {"Variable"}
    assert set(names) == {"v/a" + VV, "v/b" + VV, "c" + VV, "module/d" + VV}


def test_duplicate_names_ckpt(ckpts):
    prefix = ckpts("duplicate_names")
    names = _object_graph_names(prefix)
    assert names["vars/0" + VV] == names["vars/1" + VV] == "Variable"


def test_session_var_list_ckpt_names(ckpts):
    prefix = ckpts("session_var_list")
    assert prefix.endswith("tf2-ckpt-saved-in-session-1")
    names = _object_graph_names(prefix)
    assert names["var_list/scoped.Sc" + VV] == "scoped/c"
    assert names["var_list/a" + VV] == "a"


def test_unscoped_scoped_ckpt_names(ckpts):
    names = _object_graph_names(ckpts("unscoped_scoped"))
    assert names["scoped/0" + VV] == "scoped/c"
    assert names["unscoped/0" + VV] == "a"
    assert names["unscoped/1" + VV] == "b"


@pytest.mark.estimator
def test_estimator_tf1_dir(ckpts):
    import tensorflow as tf

    model_dir = ckpts("estimator_tf1")
    assert os.path.basename(model_dir) == "est-tf1"
    latest = tf.train.latest_checkpoint(model_dir)
    assert os.path.basename(latest) == "model.ckpt-1"
    assert _keys(latest) == {"var", "global_step"}
    assert _reader(latest).get_tensor("var") == 2.0
    assert len(_data_files(latest)) == 1


@pytest.mark.estimator
def test_estimator_tf2_dir_sharded(ckpts):
    import tensorflow as tf

    model_dir = ckpts("estimator_tf2")
    assert os.path.basename(model_dir) == "est-tf2"
    latest = tf.train.latest_checkpoint(model_dir)
    assert os.path.basename(latest) == "model.ckpt-1"
    # Like the guide: built next to a warm-start source est-tf1.
    assert tf.train.latest_checkpoint(os.path.join(os.path.dirname(model_dir), "est-tf1"))
    assert _keys(latest) == {"var_list/var" + VV, "step" + VV, GRAPH}
    reader = _reader(latest)
    assert reader.get_tensor("var_list/var" + VV) == 4.0
    assert reader.get_tensor("step" + VV) == 1
    shards = [os.path.basename(p) for p in _data_files(latest)]
    assert shards == ["model.ckpt-1.data-00000-of-00002", "model.ckpt-1.data-00001-of-00002"]
    assert _object_graph_names(latest) == {"var_list/var" + VV: "var", "step" + VV: "global_step"}


@pytest.mark.estimator
def test_estimator_tf2_get_variable_value(ckpts):
    import tensorflow as tf

    est = tf.estimator.Estimator(fx._model_fn_tf2_ckpt, ckpts("estimator_tf2"))
    assert est.get_variable_value("var_list/var" + VV) == 4


def test_partitioned_ckpt(ckpts):
    prefix = ckpts("partitioned")
    assert _keys(prefix) == {"emb", "dense/kernel"}
    reader = _reader(prefix)
    assert reader.get_variable_to_shape_map()["emb"] == [10, 4]
    np.testing.assert_array_equal(reader.get_tensor("emb"), np.arange(40, dtype=np.float32).reshape(10, 4))
    np.testing.assert_array_equal(
        reader.get_tensor("dense/kernel"), np.arange(8, dtype=np.float32).reshape(4, 2) + 100
    )
    # The raw bundle also holds one entry per slice (hidden by the reader's
    # maps but listed by debug_string) with shapes 4/3/3 rows.
    from tensorflow.python.training import py_checkpoint_reader

    debug = py_checkpoint_reader.NewCheckpointReader(prefix).debug_string()
    assert debug.count(b"emb\x00") == 3
    assert debug.count(b"[4,4]") == 1 and debug.count(b"[3,4]") == 2


def test_partitioned_tf2_ckpt(ckpts):
    prefix = ckpts("partitioned_tf2")
    assert _keys(prefix) == {
        "var_list/emb.Spart_0" + VV,
        "var_list/emb.Spart_1" + VV,
        "var_list/emb.Spart_2" + VV,
        "var_list/dense.Skernel" + VV,
        SAVE_COUNTER,
        GRAPH,
    }
    reader = _reader(prefix)
    full = np.arange(40, dtype=np.float32).reshape(10, 4)
    parts = [reader.get_tensor(f"var_list/emb.Spart_{i}" + VV) for i in range(3)]
    assert [p.shape for p in parts] == [(4, 4), (3, 4), (3, 4)]
    np.testing.assert_array_equal(np.concatenate(parts), full)
    # Surprise: the object graph's full_name of every part is the
    # *partitioned* variable's name ('emb', from its SaveSliceInfo), not
    # 'emb/part_i'; parts are stored as whole (unsliced) tensors.
    names = _object_graph_names(prefix)
    assert [names[f"var_list/emb.Spart_{i}" + VV] for i in range(3)] == (["emb"] * 3)
    assert names["var_list/dense.Skernel" + VV] == "dense/kernel"


def test_adam_ckpt(ckpts):
    prefix = ckpts("adam")
    assert _keys(prefix) == {
        "w",
        "b",
        "w/Adam",
        "w/Adam_1",
        "b/Adam",
        "b/Adam_1",
        "beta1_power",
        "beta2_power",
        "global_step",
    }
    reader = _reader(prefix)
    assert reader.get_tensor("global_step") == 2
    np.testing.assert_allclose(reader.get_tensor("beta1_power"), 0.9**3, rtol=1e-6)
    assert reader.get_variable_to_shape_map()["w/Adam_1"] == [3, 2]


@pytest.mark.keras2
def test_adam_tf2_ckpt_has_optimizer_slots(ckpts):
    prefix = ckpts("adam_tf2")
    keys = _keys(prefix)
    slot = "/.OPTIMIZER_SLOT/optimizer/"
    expected_slots = {
        f"model/layer_with_weights-{i}/{w}{slot}{s}" + VV
        for i in (0, 1)
        for w in ("kernel", "bias")
        for s in ("m", "v")
    }
    assert expected_slots <= keys
    assert {f"model/layer_with_weights-{i}/{w}" + VV for i in (0, 1) for w in ("kernel", "bias")} <= keys
    assert "optimizer/iter" + VV in keys
    assert _reader(prefix).get_tensor("optimizer/iter" + VV) == 2
    assert len(keys) == 4 + 8 + 5 + 2


@pytest.mark.keras2
def test_keras_functional_ckpt(ckpts):
    prefix = ckpts("keras_functional")
    assert _keys(prefix) == {
        "model/layer_with_weights-0/kernel" + VV,
        "model/layer_with_weights-0/bias" + VV,
        "model/layer_with_weights-1/kernel" + VV,
        "model/layer_with_weights-1/bias" + VV,
        SAVE_COUNTER,
        GRAPH,
    }
    shapes = _reader(prefix).get_variable_to_shape_map()
    assert shapes["model/layer_with_weights-0/kernel" + VV] == [4, 3]
    assert shapes["model/layer_with_weights-1/kernel" + VV] == [3, 1]


def _check_dtypes(prefix, key_fmt):
    reader = _reader(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    values = fx.dtype_values()
    assert len(values) == len(fx.DTYPE_VALUES_SPEC)
    for name in fx.DTYPE_VALUES_SPEC:
        key = key_fmt.format(f"t_{name}")
        assert key in dtypes, key
        expected_dtype = "string" if name == "string_scalar" else name
        assert dtypes[key].name == expected_dtype
        got = reader.get_tensor(key)
        want = values[f"t_{name}"]
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_dtypes_ckpt(ckpts):
    prefix = ckpts("dtypes")
    assert _keys(prefix) == {f"t_{n}" for n in fx.DTYPE_VALUES_SPEC}
    _check_dtypes(prefix, "{}")


def test_dtypes_tf2_ckpt(ckpts):
    prefix = ckpts("dtypes_tf2")
    assert _keys(prefix) == ({f"var_list/t_{n}" + VV for n in fx.DTYPE_VALUES_SPEC} | {SAVE_COUNTER, GRAPH})
    _check_dtypes(prefix, "var_list/{}" + VV)


def test_dotted_names_ckpt(ckpts):
    prefix = ckpts("dotted_names")
    assert _keys(prefix) == {
        "var_list/a..b.Sc" + VV,
        "var_list/x....S.Sy" + VV,
        "var_list/S..S.S..S" + VV,
        "var_list/plain" + VV,
        SAVE_COUNTER,
        GRAPH,
    }
    names = _object_graph_names(prefix)
    assert names["var_list/x....S.Sy" + VV] == "x..S/y"
    np.testing.assert_array_equal(_reader(prefix).get_tensor("var_list/S..S.S..S" + VV), [2.0, 2.5])


def test_dotted_names_tf1_ckpt(ckpts):
    prefix = ckpts("dotted_names_tf1")
    assert os.path.basename(os.path.dirname(prefix)) == "tf1"
    assert _keys(prefix) == set(fx.DOTTED_NAMES)
    np.testing.assert_array_equal(_reader(prefix).get_tensor("x..S/y"), [1.0, 1.5])


def test_many_vars_ckpt(ckpts):
    prefix = ckpts("many_vars")
    keys = _keys(prefix)
    assert len(keys) == 200
    assert "layer_0/var_0" in keys and "layer_19/var_199" in keys
    assert list(_reader(prefix).get_tensor("layer_3/var_37")) == [37.0] * 4
    small = ckpts("many_vars", n=15)
    assert small != prefix
    assert _keys(small) == {f"layer_{i // 10}/var_{i}" for i in range(15)}


def test_ckpts_cache_and_unknown(ckpts):
    assert ckpts("tf1") is ckpts("tf1")
    with pytest.raises(KeyError):
        ckpts("no-such-fixture")


def test_named_fixture(tf1_ckpt, ckpts):
    assert tf1_ckpt == ckpts("tf1")


def test_builders_rerunnable_in_same_process(tmp_path):
    # Graph-mode and eager builders must not leak state into each other.
    first = fx.build_tf1_ckpt(str(tmp_path / "one"))
    fx.build_tf2_ckpt(str(tmp_path / "two"))
    again = fx.build_tf1_ckpt(str(tmp_path / "three"))
    assert _keys(first) == _keys(again) == {"a", "b", "scoped/c"}


def test_conftest_and_fixtures_do_not_import_tensorflow():
    """Importing the fixture modules does not import TensorFlow (builders import it lazily)."""
    code = (
        f"import sys; sys.path.insert(0, {ROOT!r})\n"
        "import tests.fixtures, tests.conftest\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
