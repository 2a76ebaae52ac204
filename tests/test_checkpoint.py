"""`read_checkpoint` and `resolve_checkpoint` on every fixture, cross-checked against TF's own reader."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import est_ckpt
from est_ckpt import errors
from est_ckpt.format import keys
from tests.fixtures import FIXTURES, GUIDE_VALUES, VV, expected_keys


def _tf_view(prefix):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    return reader, {k: (dtypes[k].name, tuple(shapes[k])) for k in shapes}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_keys_dtypes_shapes_match_tensorflow(ckpts, name):
    """Every fixture reads with the same keys, dtypes and shapes as `tf.train.load_checkpoint`."""
    prefix = ckpts.prefix(name)
    info = est_ckpt.read_checkpoint(prefix)
    _, tf_view = _tf_view(prefix)
    ours = {k: (t.dtype, t.shape) for k, t in info.tensors.items()}
    assert ours == tf_view
    assert info.format == ("tf2" if keys.OBJECT_GRAPH_KEY in tf_view else "tf1")
    guide = expected_keys(name)
    if guide is not None:
        assert set(info.tensors) == guide


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_values_match_tensorflow(ckpts, name):
    """Every tensor value read without TF equals TF's `get_tensor`, bit for bit."""
    prefix = ckpts.prefix(name)
    info = est_ckpt.read_checkpoint(prefix)
    reader, tf_view = _tf_view(prefix)
    for key in tf_view:
        if key == keys.OBJECT_GRAPH_KEY:
            continue
        ours, theirs = info.read_tensor(key), reader.get_tensor(key)
        if info.tensors[key].dtype == "string":
            assert np.asarray(ours).tolist() == np.asarray(theirs, dtype=object).tolist(), key
        else:
            theirs = np.asarray(theirs)
            assert ours.shape == theirs.shape, key
            assert ours.tobytes() == theirs.tobytes(), key


@pytest.mark.parametrize("name", sorted(GUIDE_VALUES))
def test_guide_values(ckpts, name):
    """The values the migration guide prints are the values read back."""
    info = est_ckpt.read_checkpoint(ckpts.prefix(name))
    for key, value in GUIDE_VALUES[name].items():
        assert info.read_tensor(key).item() == value


def test_tf2_full_names_and_object_paths(ckpts):
    """A tf2 checkpoint maps each key to its object path and the TF1 name recorded at save time."""
    info = est_ckpt.read_checkpoint(ckpts("tf2"))
    names = {k: (t.object_path, t.name) for k, t in info.tensors.items()}
    assert names["variables/0" + VV] == ("variables/0", "a")
    assert names["variables/2" + VV] == ("variables/2", "scoped/c")
    assert names[keys.OBJECT_GRAPH_KEY] == (None, None)
    info = est_ckpt.read_checkpoint(ckpts("session_var_list"))
    assert info.tensors["var_list/scoped.Sc" + VV].name == "scoped/c"
    assert info.tensors["var_list/scoped.Sc" + VV].object_path == "var_list/scoped.Sc"


def test_tf1_names_are_keys(ckpts):
    """In a name-based checkpoint the name of each tensor is its key."""
    info = est_ckpt.read_checkpoint(ckpts("tf1"))
    assert info.format == "tf1" and info.object_graph is None
    assert {k: t.name for k, t in info.tensors.items()} == {"a": "a", "b": "b", "scoped/c": "scoped/c"}


def test_duplicate_names_are_listed(ckpts):
    """Eager variables all named `Variable` show up as one name held by several keys."""
    info = est_ckpt.read_checkpoint(ckpts("duplicate_names"))
    assert info.duplicate_names == {"Variable": ["vars/0" + VV, "vars/1" + VV]}
    nested = est_ckpt.read_checkpoint(ckpts("nested"))
    assert sorted(nested.duplicate_names["Variable"]) == sorted(
        ["c" + VV, "module/d" + VV, "v/a" + VV, "v/b" + VV]
    )


def test_partitioned_variable_full_shape_and_slices(ckpts):
    """A name-based partitioned variable is one entry with its full shape and every slice."""
    info = est_ckpt.read_checkpoint(ckpts("partitioned"))
    emb = info.tensors["emb"]
    assert emb.shape == (10, 4)
    assert emb.slices == (((0, 4), (0, 4)), ((4, 3), (0, 4)), ((7, 3), (0, 4)))
    np.testing.assert_array_equal(info.read_tensor("emb"), np.arange(40, dtype=np.float32).reshape(10, 4))


def test_partitioned_parts_in_tf2_share_a_full_name(ckpts):
    """Parts saved one by one into a tf2 checkpoint all record `emb` as their name."""
    info = est_ckpt.read_checkpoint(ckpts("partitioned_tf2"))
    assert sorted(info.duplicate_names["emb"]) == [f"var_list/emb.Spart_{i}{VV}" for i in range(3)]


@pytest.mark.keras2
def test_slot_variables(ckpts):
    """Slot variables record their variable's path, the optimizer's path and the slot name."""
    info = est_ckpt.read_checkpoint(ckpts("adam_tf2"))
    key = "model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m" + VV
    slot = info.tensors[key].slot
    assert slot == est_ckpt.format.checkpoint.SlotInfo("model/layer_with_weights-0/kernel", "optimizer", "m")
    assert info.tensors["model/layer_with_weights-0/kernel" + VV].slot is None
    assert sum(t.slot is not None for t in info.tensors.values()) == 8


@pytest.mark.keras2
def test_keras_functional_keys(ckpts):
    """A Keras functional model's variables are tracked as `layer_with_weights-N`."""
    info = est_ckpt.read_checkpoint(ckpts("keras_functional"))
    assert "model/layer_with_weights-0/kernel" + VV in info.tensors
    assert info.tensors["model/layer_with_weights-1/bias" + VV].shape == (1,)


def test_dtype_names(ckpts):
    """Dtypes are reported by TF's names, bfloat16 and string included."""
    info = est_ckpt.read_checkpoint(ckpts("dtypes"))
    assert info.tensors["t_bfloat16"].dtype == "bfloat16"
    assert info.tensors["t_string"].dtype == "string"
    assert info.tensors["t_bool"].dtype == "bool"
    assert info.tensors["t_complex128"].dtype == "complex128"


@pytest.mark.estimator
def test_estimator_tf2_dir_has_two_shards(ckpts):
    """The guide's TF2 Estimator checkpoint is sharded in two data files and reads whole."""
    info = est_ckpt.read_checkpoint(ckpts("estimator_tf2"))
    assert info.bundle.header.num_shards == 2
    assert info.tensors["var_list/var" + VV].name == "var"
    assert info.tensors["step" + VV].name == "global_step"


class TestResolve:
    @pytest.mark.estimator
    def test_model_dir_prefix_index_and_data(self, ckpts):
        """A model dir, a prefix and its `.index` / `.data-*` files all resolve to the prefix."""
        import tensorflow as tf

        model_dir = ckpts("estimator_tf2")
        prefix = tf.train.latest_checkpoint(model_dir)
        assert est_ckpt.resolve_checkpoint(model_dir) == prefix
        assert est_ckpt.resolve_checkpoint(prefix) == prefix
        assert est_ckpt.resolve_checkpoint(prefix + ".index") == prefix
        assert est_ckpt.resolve_checkpoint(prefix + ".data-00001-of-00002") == prefix

    def _copy_dir(self, ckpts, tmp_path):
        dst = tmp_path / "model"
        shutil.copytree(ckpts("estimator_tf1"), dst)
        return str(dst)

    @pytest.mark.estimator
    def test_missing_state_file_falls_back_to_newest_complete_prefix(self, ckpts, tmp_path):
        """Without a `checkpoint` file the newest complete prefix on disk is used."""
        d = self._copy_dir(ckpts, tmp_path)
        os.remove(os.path.join(d, "checkpoint"))
        assert est_ckpt.resolve_checkpoint(d) == os.path.join(d, "model.ckpt-1")

    @pytest.mark.estimator
    def test_stale_state_file_falls_back(self, ckpts, tmp_path):
        """A state file naming a deleted checkpoint does not hide the ones on disk."""
        d = self._copy_dir(ckpts, tmp_path)
        with open(os.path.join(d, "checkpoint"), "w") as f:
            f.write('model_checkpoint_path: "model.ckpt-99"\nall_model_checkpoint_paths: "model.ckpt-99"\n')
        assert est_ckpt.resolve_checkpoint(d) == os.path.join(d, "model.ckpt-1")

    @pytest.mark.estimator
    def test_incomplete_newest_prefix_is_skipped(self, ckpts, tmp_path):
        """A newer prefix whose data shard is missing is not taken as the latest."""
        d = self._copy_dir(ckpts, tmp_path)
        os.remove(os.path.join(d, "checkpoint"))
        for name in os.listdir(d):
            if name.startswith("model.ckpt-1."):
                shutil.copy(os.path.join(d, name), os.path.join(d, name.replace("ckpt-1", "ckpt-7")))
        os.remove(os.path.join(d, "model.ckpt-7.data-00000-of-00001"))
        assert est_ckpt.resolve_checkpoint(d) == os.path.join(d, "model.ckpt-1")

    def test_errors(self, tmp_path):
        """Nothing there, an empty directory and a non-checkpoint file each get a typed error."""
        with pytest.raises(errors.CheckpointNotFoundError, match="no such checkpoint"):
            est_ckpt.resolve_checkpoint(str(tmp_path / "nope"))
        with pytest.raises(errors.CheckpointNotFoundError, match="holds no checkpoint"):
            est_ckpt.resolve_checkpoint(str(tmp_path))
        (tmp_path / "notes.txt").write_text("hello")
        with pytest.raises(errors.CorruptCheckpointError, match="is not a checkpoint"):
            est_ckpt.resolve_checkpoint(str(tmp_path / "notes.txt"))
        assert issubclass(errors.CheckpointNotFoundError, FileNotFoundError)
        assert issubclass(errors.CorruptCheckpointError, ValueError)


def test_truncated_and_bit_flipped_index(ckpts, tmp_path):
    """A damaged index is a CorruptCheckpointError naming the index file."""
    src = ckpts("tf1")
    for name in os.listdir(os.path.dirname(src)):
        shutil.copy(os.path.join(os.path.dirname(src), name), tmp_path / name)
    prefix = str(tmp_path / os.path.basename(src))
    data = open(prefix + ".index", "rb").read()
    with open(prefix + ".index", "wb") as f:
        f.write(data[:-10])
    with pytest.raises(errors.CorruptCheckpointError, match=r"\.index"):
        est_ckpt.read_checkpoint(prefix)
    flipped = bytearray(data)
    flipped[5] ^= 0x10
    with open(prefix + ".index", "wb") as f:
        f.write(bytes(flipped))
    with pytest.raises(errors.CorruptCheckpointError, match="CRC32C"):
        est_ckpt.read_checkpoint(prefix)


def test_missing_data_shard(ckpts, tmp_path):
    """A missing data shard is a CheckpointNotFoundError naming the shard."""
    src = ckpts("tf1")
    shutil.copy(src + ".index", tmp_path / "c.index")
    with pytest.raises(errors.CheckpointNotFoundError, match=r"c\.data-00000-of-00001"):
        est_ckpt.read_checkpoint(str(tmp_path / "c"))


def test_rewritten_index_reads_identically_in_tensorflow(ckpts, tmp_path):
    """An index re-serialized by `bundle.build_index` is read by TF exactly like the original."""
    import tensorflow as tf

    from est_ckpt.format import bundle
    from est_ckpt.format.reader import read_bundle

    src = ckpts.prefix("partitioned")
    b = read_bundle(src)
    rows = [(k.encode(), e.raw) for k, e in b.entries.items()]
    rows += [(s.raw_key, s.entry.raw) for s in b.slice_entries]
    dst = str(tmp_path / "copy")
    with open(dst + ".index", "wb") as f:
        f.write(bundle.build_index(b.header.raw, rows))
    shutil.copy(b.data_path(0), bundle.data_path(dst, 0, 1))
    a, z = tf.train.load_checkpoint(src), tf.train.load_checkpoint(dst)
    assert a.get_variable_to_shape_map() == z.get_variable_to_shape_map()
    np.testing.assert_array_equal(a.get_tensor("emb"), z.get_tensor("emb"))
    assert open(dst + ".index", "rb").read() == open(src + ".index", "rb").read()


def test_multi_block_index_written_by_us_reads_in_tensorflow(ckpts, tmp_path):
    """An index split over many small blocks (with separator keys) reads in TF and back in est_ckpt."""
    import tensorflow as tf

    from est_ckpt.format import bundle, table
    from est_ckpt.format.reader import read_bundle

    src = ckpts.prefix("many_vars", n=300)
    b = read_bundle(src)
    rows = [(k.encode(), e.raw) for k, e in b.entries.items()]
    data = table.build_table([(b"", b.header.raw), *sorted(rows)], block_size=512)
    dst = str(tmp_path / "blocks")
    with open(dst + ".index", "wb") as f:
        f.write(data)
    shutil.copy(b.data_path(0), bundle.data_path(dst, 0, 1))
    assert len(table.read_table(data)) == 301
    reader = tf.train.load_checkpoint(dst)
    assert len(reader.get_variable_to_shape_map()) == 300
    assert reader.get_tensor("layer_29/var_299").tolist() == [299.0] * 4
    assert set(est_ckpt.read_checkpoint(dst).tensors) == set(b.entries)


def test_scheme_paths_go_through_gfile(ckpts):
    """A `scheme://` model dir (TF's in-memory `ram://` filesystem) resolves and reads through tf.io.gfile."""
    import tensorflow as tf

    src = ckpts("tf1")
    model_dir = "ram://est-ckpt-resolve/model"
    tf.io.gfile.makedirs(model_dir)
    base = os.path.basename(src)
    for name in os.listdir(os.path.dirname(src)):
        if name.startswith(base + "."):
            tf.io.gfile.copy(os.path.join(os.path.dirname(src), name), f"{model_dir}/{name}", overwrite=True)
    with tf.io.gfile.GFile(f"{model_dir}/checkpoint", "w") as f:
        f.write(f'model_checkpoint_path: "{base}"\n')
    assert est_ckpt.resolve_checkpoint(model_dir) == f"{model_dir}/{base}"
    info = est_ckpt.read_checkpoint(model_dir)
    assert info.format == "tf1" and info.read_tensor("scoped/c").item() == 3.0
    tf.io.gfile.remove(f"{model_dir}/checkpoint")
    assert est_ckpt.resolve_checkpoint(model_dir) == f"{model_dir}/{base}"
