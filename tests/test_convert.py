"""Tests of `est_ckpt.convert_checkpoint` and `est-ckpt convert`, checked with TF's own readers."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

import est_ckpt
from est_ckpt import fileio
from est_ckpt.errors import ConversionError, DestinationExistsError
from est_ckpt.format import bundle, checkpoint, keys, object_graph, reader, tensors
from est_ckpt.mapping import tf1_names
from est_ckpt.tools import convert, publish
from tests import fixtures as fx
from tests.fixtures import VV

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EST_CKPT = os.path.join(os.path.dirname(sys.executable), "est-ckpt")

TF1_FIXTURES = ["tf1", "estimator_tf1", "partitioned", "adam", "dtypes", "dotted_names_tf1", "many_vars"]
TF2_FIXTURES = [
    "tf2",
    "session_var_list",
    "unscoped_scoped",
    "estimator_tf2",
    "partitioned_tf2",
    "adam_tf2",
    "keras_functional",
    "dtypes_tf2",
    "dotted_names",
]


@pytest.fixture(scope="module")
def tf():
    tf, _ = fx._tf()
    return tf


def _reader_values(tf, prefix: str) -> dict:
    reader = tf.train.load_checkpoint(prefix)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_dtype_map()}


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return list(a.reshape(-1)) == list(b.reshape(-1))
    return a.tobytes() == b.tobytes()


def _tf2_key(name: str) -> str:
    return "step" + VV if name == "global_step" else keys.variable_key(["var_list", name])


def _files(directory: str) -> dict:
    return {n: os.stat(os.path.join(directory, n)).st_mtime_ns for n in sorted(os.listdir(directory))}


@pytest.mark.parametrize("name", TF1_FIXTURES)
def test_tf1_to_tf2_reads_back_identically_through_tf(ckpts, tf, tmp_path, name):
    """Every name-based fixture converts to the var_list/step layout with bit-identical values per TF's reader."""
    src = ckpts.prefix(name)
    dst = est_ckpt.convert_checkpoint(src, str(tmp_path / "out"), to="tf2")
    assert dst == str(tmp_path / "out")
    before, after = _reader_values(tf, src), _reader_values(tf, dst)
    assert set(after) == {_tf2_key(k) for k in before} | {keys.OBJECT_GRAPH_KEY, "save_counter" + VV}
    for key, value in before.items():
        assert _same_bits(after[_tf2_key(key)], value), key
    assert after["save_counter" + VV] == 1  # as tf.train.Checkpoint after one save
    # TF's name-based readers still find every name through the object graph.
    info = checkpoint.read_checkpoint(dst)
    assert {t.name for t in info.variables.values()} == set(before) | {"save_counter"}


def test_the_destination_by_keyword_dst_or_dst_prefix(ckpts, tmp_path):
    """`convert_checkpoint(src, dst=...)` (the issue's spelling) and `dst_prefix=` write the same; one is required."""
    src = ckpts.prefix("tf1")
    a = est_ckpt.convert_checkpoint(src, dst=str(tmp_path / "a"), to="tf2")
    b = est_ckpt.convert_checkpoint(src, dst_prefix=str(tmp_path / "b"), to="tf2")
    assert (a, b) == (str(tmp_path / "a"), str(tmp_path / "b"))
    assert est_ckpt.diff_checkpoints(a, b).equal
    for kwargs in ({}, {"dst_prefix": str(tmp_path / "x"), "dst": str(tmp_path / "y")}):
        with pytest.raises(ConversionError, match="give the destination once"):
            est_ckpt.convert_checkpoint(src, to="tf2", **kwargs)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(("x", "y"))]


@pytest.mark.parametrize("name", TF2_FIXTURES)
def test_tf2_to_tf1_keys_are_full_names(ckpts, tf, tmp_path, name):
    """Every object-based fixture converts to keys named by full_name, values bit-identical (parts reassembled)."""
    src = ckpts.prefix(name)
    info = checkpoint.read_checkpoint(src)
    dst = est_ckpt.convert_checkpoint(src, str(tmp_path / "out"), to="tf1")
    before, after = _reader_values(tf, src), _reader_values(tf, dst)
    expected = {}
    for key, t in info.variables.items():
        if key == "save_counter" + VV:
            continue
        name_ = "global_step" if key == "step" + VV else t.name
        expected.setdefault(name_, []).append(key)
    assert set(after) == set(expected)
    for name_, source_keys in expected.items():
        if len(source_keys) == 1:
            assert _same_bits(after[name_], before[source_keys[0]]), name_
        else:  # a partitioned variable saved part by part
            parts = sorted(source_keys, key=lambda k: int(k.split("part_")[1].split("/")[0]))
            assert _same_bits(after[name_], np.concatenate([before[k] for k in parts])), name_


@pytest.mark.estimator
def test_estimator_layout_matches_tf_object_graph_bytes(ckpts, tf, tmp_path):
    """Converting the guide's TF1 Estimator checkpoint writes the object graph bytes TF writes for the same objects.

    Those of `tf.train.Checkpoint(var_list={'var': var}, step=global_step).save()`: the guide's TF2 scaffold
    (without save_counter, which only `save` adds) plus the root's `save_counter`.
    """
    dst = convert_checkpoint_dir(ckpts("estimator_tf1"), tmp_path)
    info = checkpoint.read_checkpoint(dst)
    graph = info.read_tensor(keys.OBJECT_GRAPH_KEY).item()
    var, step = tf.Variable(2.0, name="var"), tf.Variable(1, dtype=tf.int64, name="global_step")
    saved = tf.train.Checkpoint(var_list={"var": var}, step=step).save(str(tmp_path / "tf" / "ckpt"))
    assert graph == tf.train.load_checkpoint(saved).get_tensor(keys.OBJECT_GRAPH_KEY)
    assert sorted(info.tensors) == [
        keys.OBJECT_GRAPH_KEY,
        "save_counter" + VV,
        "step" + VV,
        "var_list/var" + VV,
    ]


def convert_checkpoint_dir(model_dir: str, tmp_path) -> str:
    return est_ckpt.convert_checkpoint(model_dir, str(tmp_path / "model") + "/", to="tf2")


@pytest.mark.estimator
def test_estimator_with_tf2_scaffold_continues_from_converted_legacy_dir(ckpts, tf, tmp_path):
    """An Estimator whose scaffold saves `Checkpoint(var_list=..., step=...)` resumes a converted legacy model dir."""
    dst = convert_checkpoint_dir(ckpts("estimator_tf1"), tmp_path)
    model_dir = str(tmp_path / "model")
    assert dst == os.path.join(model_dir, "model.ckpt-1")
    assert tf.train.latest_checkpoint(model_dir) == dst
    est = tf.estimator.Estimator(fx._model_fn_tf2_ckpt, model_dir)
    est.train(fx._estimator_train_fn, steps=1)
    assert est.get_variable_value("step" + VV) == 2  # the global step continues from 1
    assert est.get_variable_value("var_list/var" + VV) == 4.0  # 2.0 restored, +2 trained


def test_eager_checkpoint_restores_converted_output(ckpts, tf, tmp_path):
    """An eager `tf.train.Checkpoint(var_list={...})` restores converted output, every value consumed, partitioned too.

    `restore()`, which matches the `save_counter` convert writes (`read()` leaves it unmatched, as for any
    checkpoint `tf.train.Checkpoint.save` writes).
    """
    dst = est_ckpt.convert_checkpoint(ckpts.prefix("partitioned"), str(tmp_path / "p"), to="tf2")
    emb = tf.Variable(tf.zeros([10, 4]))
    kernel = tf.Variable(tf.zeros([4, 2]))
    ckpt = tf.train.Checkpoint(var_list={"emb": emb, "dense/kernel": kernel})
    status = ckpt.restore(dst)
    status.assert_existing_objects_matched()
    status.assert_consumed()
    assert ckpt.save_counter.numpy() == 1
    np.testing.assert_array_equal(emb.numpy(), np.arange(40, dtype=np.float32).reshape(10, 4))
    np.testing.assert_array_equal(kernel.numpy(), np.arange(8, dtype=np.float32).reshape(4, 2) + 100)

    dst = est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "t"), to="tf2")
    values = {n: tf.Variable(0.0) for n in ("a", "b", "scoped/c")}
    tf.train.Checkpoint(var_list=values).restore(dst).assert_nontrivial_match()
    assert {n: v.numpy() for n, v in values.items()} == {"a": 1.0, "b": 2.0, "scoped/c": 3.0}


def test_tf1_saver_restores_tf2_to_tf1_output(ckpts, tf, tmp_path):
    """The guide's TF1 Saver restore of a converted `var_list` checkpoint gets a, b, scoped/c back."""
    dst = est_ckpt.convert_checkpoint(ckpts.prefix("session_var_list"), str(tmp_path / "c"), to="tf1")
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        a = tf1.get_variable("a", shape=[], initializer=tf1.zeros_initializer())
        b = tf1.get_variable("b", shape=[], initializer=tf1.zeros_initializer())
        c = tf1.get_variable("scoped/c", shape=[], initializer=tf1.zeros_initializer())
        with tf1.Session() as sess:
            tf1.train.Saver([a, b, c]).restore(sess, dst)
            assert sess.run([a, b, c]) == [1.0, 2.0, 3.0]


def test_round_trip_keeps_every_dtype_and_key(ckpts, tf, tmp_path):
    """tf1 -> tf2 -> tf1 gives back the same keys and bit-identical values for every dtype."""
    src = ckpts.prefix("dtypes")
    mid = est_ckpt.convert_checkpoint(src, str(tmp_path / "mid"), to="tf2")
    back = est_ckpt.convert_checkpoint(mid, str(tmp_path / "back"), to="tf1")
    before, after = _reader_values(tf, src), _reader_values(tf, back)
    assert set(before) == set(after) == set(fx.dtype_values())
    for key in before:
        assert _same_bits(before[key], after[key]), key
    assert reader.read_bundle(back).header.num_shards == 1  # the object graph shard is gone again


def test_partitioned_slices_are_kept(ckpts, tmp_path):
    """A partitioned variable keeps its slices under the new key, both ways, with the source's stored bytes."""
    src = ckpts.prefix("partitioned")
    dst = est_ckpt.convert_checkpoint(src, str(tmp_path / "p"), to="tf2")
    b = reader.read_bundle(dst)
    key = "var_list/emb" + VV
    assert b.entries[key].slices == reader.read_bundle(src).entries["emb"].slices
    assert sorted(s.extents for s in b.slice_entries if s.name == key) == [
        ((0, 4), (0, 4)),
        ((4, 3), (0, 4)),
        ((7, 3), (0, 4)),
    ]
    back = est_ckpt.convert_checkpoint(ckpts.prefix("partitioned_tf2"), str(tmp_path / "b"), to="tf1")
    assert reader.read_bundle(back).entries["emb"].slices == b.entries[key].slices


def test_parts_split_along_axis_1_become_the_sliced_entry_tf_writes(ckpts, tmp_path, tf):
    """Parts saved one by one along axis 1 convert to the sliced entry TF's own Saver writes, which TF reads whole.

    Convert used to join parts along axis 0 only and refused these as duplicate names.
    """
    saver = ckpts.prefix("partitioned", axis=1)  # TF's name-based Saver: one sliced `emb` [10, 4]
    parts = ckpts.prefix("partitioned_tf2", axis=1)  # emb/part_0..2: [10, 2], [10, 1], [10, 1]
    back = est_ckpt.convert_checkpoint(parts, str(tmp_path / "b"), to="tf1")
    assert reader.read_bundle(back).entries["emb"].slices == reader.read_bundle(saver).entries["emb"].slices
    theirs = _reader_values(tf, saver)
    ours = _reader_values(tf, back)
    assert set(ours) == set(theirs) == {"emb", "dense/kernel"}
    for name in theirs:
        assert _same_bits(ours[name], theirs[name]), name
    np.testing.assert_array_equal(ours["emb"], np.arange(40, dtype=np.float32).reshape(10, 4))
    whole = est_ckpt.convert_checkpoint(parts, str(tmp_path / "t"), to="tf2")
    assert _same_bits(_reader_values(tf, whole)["var_list/emb" + VV], theirs["emb"])


def test_data_shards_are_hard_links_and_source_is_untouched(ckpts, tmp_path):
    """Locally the data shards are hard links of the source's; forcing a re-conversion never changes the source."""
    src = ckpts.prefix("adam")
    src_dir = os.path.dirname(src)
    before = _files(src_dir)
    with open(bundle.data_path(src, 0, 1), "rb") as f:
        src_bytes = f.read()
    dst = est_ckpt.convert_checkpoint(src, str(tmp_path / "x"), to="tf2")
    assert os.stat(bundle.data_path(dst, 0, 2)).st_ino == os.stat(bundle.data_path(src, 0, 1)).st_ino
    est_ckpt.convert_checkpoint(src, dst, to="tf1", force=True)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "x.data-00000-of-00001", "x.index"]
    assert _files(src_dir) == before
    with open(bundle.data_path(src, 0, 1), "rb") as f:
        assert f.read() == src_bytes


def test_existing_destination_without_force_is_an_error_and_untouched(ckpts, tmp_path):
    """An existing DST without `force` raises `DestinationExistsError` and leaves every file as it was."""
    dst = est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "d"), to="tf2")
    before = _files(str(tmp_path))
    with pytest.raises(DestinationExistsError, match=r"d already exists.*force"):
        est_ckpt.convert_checkpoint(ckpts.prefix("adam"), dst, to="tf2")
    assert _files(str(tmp_path)) == before
    est_ckpt.convert_checkpoint(ckpts.prefix("adam"), dst, to="tf2", force=True)
    assert "w" + "" in {t.name for t in checkpoint.read_checkpoint(dst).variables.values()}


def test_failure_before_publishing_leaves_nothing(ckpts, tmp_path, monkeypatch):
    """A failure while publishing leaves no readable DST and no temporary files."""
    real_rename = fileio.rename

    def failing_rename(a, b):
        if b.endswith(".index"):
            raise OSError("disk full")
        real_rename(a, b)

    monkeypatch.setattr(fileio, "rename", failing_rename)
    with pytest.raises(OSError, match="disk full"):
        est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "f"), to="tf2")
    assert not os.path.exists(str(tmp_path / "f.index"))
    assert not [n for n in os.listdir(tmp_path) if "tmp" in n]

    def failing_verify(*args):
        raise ConversionError("bad read back")

    monkeypatch.setattr(publish, "verify_written", failing_verify)
    with pytest.raises(ConversionError):
        est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "g"), to="tf2")
    assert not [n for n in os.listdir(tmp_path) if n.startswith((".g", "g"))]


def test_state_file_makes_destination_the_latest(ckpts, tf, tmp_path):
    """Writing into a directory that holds checkpoints appends DST to its `checkpoint` state file, keeping the rest."""
    first = est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "dir") + "/", to="tf2")
    assert tf.train.latest_checkpoint(str(tmp_path / "dir")) == first
    second = est_ckpt.convert_checkpoint(ckpts.prefix("adam"), str(tmp_path / "dir" / "adam-2"), to="tf2")
    state = tf.train.get_checkpoint_state(str(tmp_path / "dir"))
    assert state.model_checkpoint_path == second
    assert list(state.all_model_checkpoint_paths) == [first, second]
    lonely = est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "new" / "only"), to="tf2")
    state = tf.train.get_checkpoint_state(str(tmp_path / "new"))
    assert state.model_checkpoint_path == lonely and list(state.all_model_checkpoint_paths) == [lonely]


@pytest.mark.estimator
def test_conversion_into_a_new_directory_writes_its_state_file(ckpts, tf, tmp_path, monkeypatch):
    """DST in a directory that does not exist yet gets a `checkpoint` state file: TF finds it, Estimator continues."""
    monkeypatch.chdir(tmp_path)
    dst = est_ckpt.convert_checkpoint(ckpts("estimator_tf1"), "new/model.ckpt-1", to="tf2")
    assert dst == "new/model.ckpt-1"
    with open("new/checkpoint") as f:  # what `Saver.save` writes: paths relative to the directory
        assert (
            f.read() == 'model_checkpoint_path: "model.ckpt-1"\nall_model_checkpoint_paths: "model.ckpt-1"\n'
        )
    assert tf.train.latest_checkpoint("new") == dst
    est = tf.estimator.Estimator(fx._model_fn_tf2_ckpt, "new")
    est.train(fx._estimator_train_fn, steps=1)
    assert est.get_variable_value("step" + VV) == 2  # the global step continues from 1, not from scratch
    assert tf.train.latest_checkpoint("new") == "new/model.ckpt-2"


def test_destination_equal_to_source_is_refused(ckpts, tmp_path):
    """Converting onto the source prefix itself is refused, even with `force`."""
    src = est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "s"), to="tf1")
    with pytest.raises(ConversionError, match="is the source"):
        est_ckpt.convert_checkpoint(src, src, to="tf2", force=True)


def test_duplicate_and_empty_names_are_listed(ckpts, tmp_path):
    """Duplicate full_names are a `ConversionError` naming them and their keys; `names='path'` converts anyway."""
    with pytest.raises(ConversionError) as e:
        est_ckpt.convert_checkpoint(ckpts.prefix("nested"), str(tmp_path / "n"), to="tf1")
    message = str(e.value)
    assert "'Variable' held by c" + VV in message and "module/d" + VV in message and "names='path'" in message
    assert not os.listdir(tmp_path)
    dst = est_ckpt.convert_checkpoint(ckpts.prefix("nested"), str(tmp_path / "n"), to="tf1", names="path")
    assert sorted(checkpoint.read_checkpoint(dst).tensors) == ["c", "module/d", "v/a", "v/b"]


@pytest.mark.keras2
def test_underivable_slots_are_skipped_only_on_request(ckpts, tmp_path):
    """Slots whose names are duplicates get TF1 slot names derived from their variable; others need the skip flag."""
    info = checkpoint.read_checkpoint(ckpts.prefix("adam_tf2"))
    slot = checkpoint.SlotInfo("model/layer_with_weights-0/kernel", "optimizer", "m")
    assert tf1_names._derive_slot_name("dense/kernel", slot, "", ["m", "v"]) == "dense/kernel/Adam"
    slot_v = checkpoint.SlotInfo("model/layer_with_weights-0/kernel", "optimizer", "v")
    assert tf1_names._derive_slot_name("w", slot_v, "w/Adam", ["m", "v"]) == "w/Adam_1"
    assert tf1_names._derive_slot_name("w", checkpoint.SlotInfo("w", "o", "zeta"), "", ["zeta"]) is None
    # Blank every slot's full_name in a copy of the object graph: Adam's m/v still get TF1 names.
    dst = _with_blank_slot_names(info, str(tmp_path / "blank"))
    out = est_ckpt.convert_checkpoint(dst, str(tmp_path / "o"), to="tf1")
    names = set(checkpoint.read_checkpoint(out).tensors)
    # Keras numbers layer names per process (dense, dense_1, ...): take them from the checkpoint.
    kernel = info.tensors[f"model/layer_with_weights-0/kernel{VV}"].name
    bias = info.tensors[f"model/layer_with_weights-1/bias{VV}"].name
    assert {f"{kernel}/Adam", f"{kernel}/Adam_1", f"{bias}/Adam_1"} <= names


def _with_blank_slot_names(info: checkpoint.CheckpointInfo, prefix: str) -> str:
    """Writes a copy of `info` whose slot variables record no full_name (as some savers leave them)."""
    graph = info.object_graph
    slot_nodes = {s.slot_variable_node_id for n in graph.nodes for s in n.slot_variables}
    nodes = []
    for i, node in enumerate(graph.nodes):
        if i in slot_nodes:
            node = object_graph.ObjectNode(
                node.children,
                tuple(object_graph.SerializedTensor(a.name, "", a.checkpoint_key) for a in node.attributes),
                node.slot_variables,
            )
        nodes.append(node)
    data = tensors.encode_string_tensor(
        [object_graph.encode_object_graph(object_graph.ObjectGraph(tuple(nodes)))]
    )
    b = info.bundle
    rows = {k.encode(): e.raw for k, e in b.entries.items() if k != keys.OBJECT_GRAPH_KEY}
    n = b.header.num_shards
    rows[keys.OBJECT_GRAPH_KEY.encode()] = tensors.new_entry(7, (), n, 0, data)
    for shard in range(n):
        fileio.link_or_copy(b.data_path(shard), bundle.data_path(prefix, shard, n + 1))
    fileio.write_new(bundle.data_path(prefix, n, n + 1), data)
    fileio.write_new(bundle.index_path(prefix), bundle.build_index(bundle.encode_header(n + 1), rows.items()))
    return prefix


def test_bad_arguments_are_conversion_errors(ckpts, tmp_path):
    """`to` and `names` outside their choices raise `ConversionError` quoting the value."""
    with pytest.raises(ConversionError, match=r"`to` must be one of \('tf1', 'tf2'\) \(got 'tf3'\)"):
        est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "x"), to="tf3")
    with pytest.raises(ConversionError, match="`names`"):
        est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "x"), to="tf1", names="id")


def test_conversion_path_imports_no_tensorflow(ckpts, tmp_path):
    """A local conversion never imports TensorFlow."""
    code = (
        "import sys, est_ckpt; "
        f"est_ckpt.convert_checkpoint({ckpts.prefix('partitioned')!r}, {str(tmp_path / 'o')!r}, to='tf2'); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_remote_filesystem_copies_through_gfile(ckpts, tf, tmp_path):
    """A `scheme://` destination gets its shards by gfile copy and reads back through TF."""
    src = ckpts.prefix("tf1")
    dst = "ram://est-ckpt-test/converted"
    report = convert.convert(src, dst, to="tf2")
    assert report.copied_bytes == os.path.getsize(bundle.data_path(src, 0, 1))
    # `load_checkpoint` takes a ram:// prefix for a directory; the reader it wraps does not.
    reader = tf.compat.v1.train.NewCheckpointReader(dst)
    assert reader.get_tensor("var_list/scoped.Sc" + VV) == 3.0
    assert keys.OBJECT_GRAPH_KEY in reader.get_variable_to_dtype_map()


def test_cli_convert(ckpts, tmp_path):
    """`est-ckpt convert` writes DST, refuses an existing one (exit 1) and needs --to (exit 2)."""
    src = ckpts.prefix("session_var_list")
    dst = str(tmp_path / "cli")

    def run(*args):
        return subprocess.run([EST_CKPT, "convert", *args], capture_output=True, text=True, cwd=ROOT)

    done = run(src, dst, "--to=tf1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "prefix": dst,
        "dropped": ["save_counter" + VV],
        "skipped_slots": [],
        "state_file_updated": True,
    }
    again = run(src, dst, "--to=tf1")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert run(src, dst, "--to=tf2", "--force").returncode == 0
    assert run(src, dst).returncode == 2
    assert run(src, "--to=tf2").returncode == 2


def test_tf2_source_is_relaid_out_as_var_list(ckpts, tf, tmp_path):
    """An object-based checkpoint of another layout (`variables/0`...) converts to `var_list/<full_name>`."""
    dst = est_ckpt.convert_checkpoint(ckpts.prefix("tf2"), str(tmp_path / "v"), to="tf2")
    values = _reader_values(tf, dst)
    assert {k: v for k, v in values.items() if k != keys.OBJECT_GRAPH_KEY} == {
        "var_list/a" + VV: 5.0,
        "var_list/b" + VV: 6.0,
        "var_list/scoped.Sc" + VV: 7.0,
        "save_counter" + VV: 1,
    }


def test_tf_warm_start_finds_every_name_in_converted_output(ckpts, tf, tmp_path):
    """TF's own `warm_start` maps TF1 names through the object graph of converted output, partitioned included."""
    dst = est_ckpt.convert_checkpoint(ckpts.prefix("partitioned"), str(tmp_path / "w"), to="tf2")
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        emb = tf1.get_variable("emb", shape=[10, 4], partitioner=tf1.fixed_size_partitioner(2))
        kernel = tf1.get_variable("dense/kernel", shape=[4, 2])
        tf1.train.warm_start(dst, vars_to_warm_start=".*")
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            got_emb, got_kernel = sess.run([tf.concat(list(emb), 0), kernel])
    np.testing.assert_array_equal(got_emb, np.arange(40, dtype=np.float32).reshape(10, 4))
    np.testing.assert_array_equal(got_kernel, np.arange(8, dtype=np.float32).reshape(4, 2) + 100)


@pytest.mark.estimator
def test_make_tf2_scaffold_resumes_converted_partitioned_model_dir(tf, tmp_path):
    """An Estimator using `make_tf2_scaffold()` resumes a converted legacy dir whose variable is partitioned."""
    pytest.importorskip("est_ckpt.tf.scaffold")
    tf1 = tf.compat.v1

    def model_fn(features, labels, mode, params):
        step = tf1.train.get_or_create_global_step()
        emb = tf1.get_variable(
            "emb",
            shape=[10, 4],
            partitioner=tf1.fixed_size_partitioner(3),
            initializer=tf1.zeros_initializer(),
        )
        train_op = tf.group(*[p.assign_add(tf.ones_like(p)) for p in emb], step.assign_add(1))
        scaffold = est_ckpt.make_tf2_scaffold() if params["tf2"] else None
        return tf.estimator.EstimatorSpec(
            mode, predictions=tf.constant(0.0), loss=tf.constant(1.0), train_op=train_op, scaffold=scaffold
        )

    legacy, new = str(tmp_path / "legacy"), str(tmp_path / "new")
    tf.estimator.Estimator(model_fn, legacy, params={"tf2": False}).train(fx._estimator_train_fn, steps=1)
    est_ckpt.convert_checkpoint(legacy, new + "/", to="tf2")
    est = tf.estimator.Estimator(model_fn, new, params={"tf2": True})
    est.train(fx._estimator_train_fn, steps=1)
    info = checkpoint.read_checkpoint(new)
    assert info.prefix.endswith("model.ckpt-2")  # the global step went on from 1
    for key in info.keys_for_name("emb"):
        assert (info.read_tensor(key) == 2.0).all()  # 1.0 restored from the converted checkpoint, +1 trained


_KILL_AT = """
import os, sys
import est_ckpt
from est_ckpt import fileio
src, dst, where, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
real = getattr(fileio, where)
calls = [0]
def dying(*args, **kwargs):
    if calls[0] == k:
        os._exit(9)  # as abrupt as SIGKILL: no cleanup, no finally
    calls[0] += 1
    return real(*args, **kwargs)
setattr(fileio, where, dying)
est_ckpt.convert_checkpoint(src, dst, to="tf2", force=True)
"""


@pytest.mark.parametrize(
    "where,k",
    [("write_new_with", 0), ("write_new", 0), ("remove", 0), ("rename", 0), ("rename", 1), ("rename", 2)],
)
def test_kill_at_any_point_leaves_old_new_or_no_destination(ckpts, tf, tmp_path, where, k):
    """A process killed anywhere in a forced conversion leaves DST old, new or absent, never partial; SRC intact."""
    src = ckpts.prefix("adam")
    dst = est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), str(tmp_path / "d"), to="tf1")
    old_keys = set(_reader_values(tf, dst))
    src_files = _files(os.path.dirname(src))
    done = subprocess.run([sys.executable, "-c", _KILL_AT, src, dst, where, str(k)], cwd=ROOT)
    assert done.returncode == 9
    assert _files(os.path.dirname(src)) == src_files
    if os.path.exists(dst + ".index"):
        got = set(_reader_values(tf, dst))
        assert got == old_keys or got == {_tf2_key(n) for n in _reader_values(tf, src)} | {
            keys.OBJECT_GRAPH_KEY
        }
    assert est_ckpt.convert_checkpoint(src, dst, to="tf2", force=True) == dst  # and it can be redone


def test_unused_shards_are_dropped_and_the_rest_renumbered(tf, tmp_path):
    """A shard left holding nothing kept (here only `save_counter`) is dropped and later shards renumbered."""
    graph = object_graph.ObjectGraph(
        (
            object_graph.ObjectNode(((1, "save_counter"), (2, "var_list")), (), ()),
            object_graph.ObjectNode(
                (),
                (object_graph.SerializedTensor(keys.VARIABLE_VALUE, "save_counter", "save_counter" + VV),),
                (),
            ),
            object_graph.ObjectNode(((3, "x"),), (), ()),
            object_graph.ObjectNode(
                (), (object_graph.SerializedTensor(keys.VARIABLE_VALUE, "x", "var_list/x" + VV),), ()
            ),
        )
    )
    shards = [
        np.int64(1).tobytes(),
        np.array([1.5, -2.5], np.float32).tobytes(),
        tensors.encode_string_tensor([object_graph.encode_object_graph(graph)]),
    ]
    rows = {
        ("save_counter" + VV).encode(): tensors.new_entry(9, (), 0, 0, shards[0]),
        ("var_list/x" + VV).encode(): tensors.new_entry(1, (2,), 1, 0, shards[1]),
        keys.OBJECT_GRAPH_KEY.encode(): tensors.new_entry(7, (), 2, 0, shards[2]),
    }
    src = str(tmp_path / "src")
    for i, data in enumerate(shards):
        fileio.write_new(bundle.data_path(src, i, 3), data)
    fileio.write_new(bundle.index_path(src), bundle.build_index(bundle.encode_header(3), rows.items()))
    assert _reader_values(tf, src)["var_list/x" + VV].tolist() == [1.5, -2.5]

    tf1 = est_ckpt.convert_checkpoint(src, str(tmp_path / "one"), to="tf1")
    assert reader.read_bundle(tf1).header.num_shards == 1
    assert os.stat(bundle.data_path(tf1, 0, 1)).st_ino == os.stat(bundle.data_path(src, 1, 3)).st_ino
    assert {k: v.tolist() for k, v in _reader_values(tf, tf1).items()} == {"x": [1.5, -2.5]}
    tf2 = est_ckpt.convert_checkpoint(src, str(tmp_path / "two"), to="tf2")
    assert reader.read_bundle(tf2).header.num_shards == 2
    assert _reader_values(tf, tf2)["var_list/x" + VV].tolist() == [1.5, -2.5]


def _dead_pid() -> int:
    """A pid no process has: above the kernel's `pid_max` (certain), else that of a reaped child."""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read()) + 1
    except OSError:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        return dead.pid


def _as_pid(tmp: str, pid: int) -> str:
    """`tmp`, a temporary name of this process, as process `pid` of the same host would name it."""
    head, mark, tail = tmp.rpartition(f"-{os.getpid()}-")
    assert mark, tmp
    return f"{head}-{pid}-{tail}"


def test_temporary_files_of_killed_conversions_are_removed(ckpts, tmp_path):
    """A conversion removes this host's temporary files whose process is gone, and keeps those of live ones."""
    dead = _dead_pid()
    abandoned = _as_pid(fileio.temp_prefix(str(tmp_path / "x")), dead) + ".data-00000-of-00001"
    in_flight = _as_pid(fileio.temp_prefix(str(tmp_path / "y")), os.getppid()) + ".index"
    abandoned_state = _as_pid(fileio.temp_path(str(tmp_path / "checkpoint")), dead)
    with open(abandoned, "wb") as f:
        f.write(b"left by a killed conversion")
    with open(abandoned_state, "wb") as f:
        f.write(b"left by a conversion killed while it updated the state file")
    with open(in_flight, "wb") as f:
        f.write(b"another conversion, still running")
    est_ckpt.convert_checkpoint(ckpts("tf1"), str(tmp_path / "out"), to="tf2")
    assert not os.path.exists(abandoned) and not os.path.exists(abandoned_state)
    assert os.path.exists(in_flight)


def test_temporary_files_of_other_hosts_and_of_the_pid_only_naming_are_kept(ckpts, tmp_path, monkeypatch):
    """A pid dead on this host says nothing of another host's temporary file, nor of one naming no host."""
    dead = _dead_pid()
    ours = _as_pid(fileio.temp_prefix(str(tmp_path / "x")), dead) + ".index"
    with monkeypatch.context() as m:
        m.setattr(socket, "gethostname", lambda: "worker-1.cluster")
        kept = [
            _as_pid(fileio.temp_prefix(str(tmp_path / "x")), dead) + ".data-00000-of-00001",
            _as_pid(fileio.temp_path(str(tmp_path / "checkpoint")), dead),
        ]
    assert all(".tmp-est-ckpt-worker-1.cluster-" in name for name in kept), kept
    # The pid-only naming of earlier versions: which host wrote it cannot be told.
    kept += [
        str(tmp_path / f"checkpoint.tmp-est-ckpt-{dead}"),
        str(tmp_path / f".y.tmp-est-ckpt-{dead}-0123abcd.index"),
    ]
    for name in [*kept, ours]:
        with open(name, "wb") as f:
            f.write(b"a temporary file")
    est_ckpt.convert_checkpoint(ckpts("tf1"), str(tmp_path / "out"), to="tf2")
    assert not os.path.exists(ours)
    assert sorted(n for n in os.listdir(tmp_path) if ".tmp-est-ckpt-" in n) == sorted(
        map(os.path.basename, kept)
    )


@pytest.mark.parametrize(
    "host",
    ["vm", "worker-0.ps.svc.cluster.local", "h\u00f6st name/with:odd*chars", "a" * 300, ""],
)
def test_temporary_names_carry_a_safe_bounded_host_tag(host, monkeypatch):
    """Any host name becomes a tag of `[A-Za-z0-9._-]`, at most 48 characters; long names keep apart."""
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    name = fileio.temp_path("checkpoint")
    m = re.fullmatch(r"checkpoint\.tmp-est-ckpt-([A-Za-z0-9._-]{1,48})-(\d+)-[0-9a-f]{8}", name)
    assert m and int(m[2]) == os.getpid(), name
    if len(host) <= 48 and re.fullmatch(r"[A-Za-z0-9._-]+", host):
        assert m[1] == host
    monkeypatch.setattr(socket, "gethostname", lambda: host + "b")
    assert fileio.temp_path("checkpoint").split("-")[:-2] != name.split("-")[:-2]
    prefix = fileio.temp_prefix(os.path.join("d", "model.ckpt-3"))
    assert os.path.dirname(prefix) == "d" and os.path.basename(prefix).startswith(
        ".model.ckpt-3.tmp-est-ckpt-"
    )


def test_forced_reconversion_of_the_same_source_leaves_no_temporary_file(ckpts, tmp_path):
    """Renaming a hard link onto a link of the same file is a no-op in POSIX: the temporary name must still go."""
    dst = est_ckpt.convert_checkpoint(ckpts("tf1"), str(tmp_path / "out"), to="tf2")
    data = bundle.data_path(dst, 0, 2)
    inode = os.stat(data).st_ino
    assert est_ckpt.convert_checkpoint(ckpts("tf1"), dst, to="tf2", force=True) == dst
    assert os.stat(data).st_ino == inode  # the same source bytes, linked again
    assert [n for n in os.listdir(tmp_path) if ".tmp-est-ckpt-" in n] == []
    assert est_ckpt.verify_checkpoint(dst).ok


def test_forced_replacement_of_the_only_named_checkpoint_keeps_it_named(ckpts, tmp_path):
    """Replacing the one checkpoint a state file names unnames it meanwhile, and names it again after."""
    directory = str(tmp_path / "d")
    dst = est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), directory + "/", to="tf1")
    assert checkpoint.read_state_file(directory) == [dst]
    assert est_ckpt.convert_checkpoint(ckpts.prefix("tf1"), dst, to="tf2", force=True) == dst
    assert checkpoint.read_state_file(directory) == [dst]
    assert est_ckpt.read_checkpoint(directory).format == "tf2"
