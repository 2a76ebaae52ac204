"""`est-ckpt export`: every tensor of a real TF checkpoint into `.safetensors` / `.npz`, checked against TF's reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli import assert_one_error_line, run_cli

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def tf1_ckpt(tmp_path_factory):
    """A TF1 graph with Adam, a variable partitioned in 3, and a string: saved by `tf.compat.v1.train.Saver`."""
    tf1 = tf.compat.v1
    root = tmp_path_factory.mktemp("tf1")
    with tf.Graph().as_default():
        emb = tf1.get_variable(
            "emb", shape=[7, 3], partitioner=tf1.fixed_size_partitioner(3),
            initializer=tf1.random_normal_initializer(seed=1),
        )  # fmt: skip
        w = tf1.get_variable("dense/kernel", initializer=np.arange(6, dtype=np.float32).reshape(2, 3))
        tf1.get_variable("vocab", initializer=tf.constant(["a", "bc"]), trainable=False)
        loss = tf.reduce_sum(tf.nn.embedding_lookup(emb, [0, 5]) @ tf.transpose(w))
        step = tf1.train.get_or_create_global_step()
        train = tf1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
        with tf1.Session() as s:
            s.run(tf1.global_variables_initializer())
            s.run(train)
            prefix = tf1.train.Saver().save(s, str(root / "model.ckpt"), global_step=step)
    return prefix


def _numeric(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {
        k: reader.get_tensor(k)
        for k, dtype in reader.get_variable_to_dtype_map().items()
        if dtype != tf.string and k != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def test_npz_holds_every_number_as_tf_reads_it(tf1_ckpt, tmp_path):
    out = tmp_path / "w.npz"
    proc = run_cli("export", tf1_ckpt, out, "--json", expect=0)
    report = json.loads(proc.stdout)
    assert report["left_out"] == [
        {"key": "vocab", "why": "holds string, which safetensors and .npz files do not"}
    ]
    expected = _numeric(tf1_ckpt)
    with np.load(out) as z:
        assert sorted(z.files) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(z[key], value, err_msg=key)
        assert z["emb"].shape == (7, 3)  # the three parts, joined


def test_safetensors_loads_with_the_safetensors_library(tf1_ckpt, tmp_path):
    safetensors = pytest.importorskip("safetensors.numpy")
    out = tmp_path / "w.safetensors"
    proc = run_cli("export", tf1_ckpt, out, expect=0)
    assert "left out 'vocab'" in proc.stderr
    loaded = safetensors.load_file(str(out))
    expected = _numeric(tf1_ckpt)
    assert sorted(loaded) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def test_object_based_checkpoint_by_tf1_name_and_by_path(tmp_path):
    module = tf.Module()
    module.dense = tf.Module()
    module.dense.kernel = tf.Variable(np.ones((2, 2), np.float32), name="dense/kernel")
    prefix = tf.train.Checkpoint(model=module).write(str(tmp_path / "ckpt"))
    run_cli("export", prefix, tmp_path / "a.npz", expect=0)
    run_cli("export", prefix, tmp_path / "b.npz", "--names=path", expect=0)
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a.files == ["dense/kernel"] and b.files == ["model/dense/kernel"]
        np.testing.assert_array_equal(a["dense/kernel"], np.ones((2, 2)))


def test_bad_requests_are_one_error_and_write_nothing(tf1_ckpt, tmp_path):
    assert_one_error_line(run_cli("export", tf1_ckpt, tmp_path / "w.bin"), ".safetensors or .npz")
    (tmp_path / "w.npz").write_bytes(b"keep")
    assert_one_error_line(run_cli("export", tf1_ckpt, tmp_path / "w.npz"), "--force")
    assert (tmp_path / "w.npz").read_bytes() == b"keep"
    run_cli("export", tf1_ckpt, tmp_path / "w.npz", "--force", expect=0)
    assert_one_error_line(run_cli("export", tf1_ckpt), "SRC and OUT", code=2)


def test_a_damaged_shard_exports_nothing(tf1_ckpt, tmp_path):
    import glob
    import shutil

    for path in glob.glob(tf1_ckpt + ".*"):
        shutil.copy(path, tmp_path)
    prefix = str(tmp_path / tf1_ckpt.rpartition("/")[2])
    data = glob.glob(prefix + ".data-*")[0]
    raw = bytearray(open(data, "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(data, "wb").write(bytes(raw))
    out = tmp_path / "out" / "w.npz"
    assert_one_error_line(run_cli("export", prefix, out), "CRC32C")
    assert not out.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def _rules(tmp_path, *rules):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"est_ckpt_rules": 1, "rules": list(rules)}))
    return path


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_rules_rename_and_transform_what_they_reach(tf1_ckpt, tmp_path, suffix):
    """A PyTorch-style export: the kernel transposed under a new name, the partitioned embedding renamed whole,
    each Adam slot by a grouped rule; what no rule reaches keeps its TF1 name."""
    rules = _rules(
        tmp_path,
        {"target": "model\\.dense\\.weight", "source": "dense/kernel", "transforms": [{"transpose": [1, 0]}]},
        {"target": "model\\.embedding\\.weight", "source": "emb"},
        {"target": "adam\\.(\\w+)\\.m", "source": "\\1/Adam"},
        {"target": "adam\\.(?P<var>\\w+)\\.v", "source": "\\g<var>/Adam_1"},
    )
    out = tmp_path / f"w{suffix}"
    proc = run_cli("export", tf1_ckpt, out, f"--rules={rules}", "--json", expect=0)
    names = json.loads(proc.stdout)["tensors"]
    expected = _numeric(tf1_ckpt)
    want = {
        "model.dense.weight": expected["dense/kernel"].T,
        "model.embedding.weight": expected["emb"],  # TF's reader joins the parts
        "adam.emb.m": expected["emb/Adam"],
        "adam.emb.v": expected["emb/Adam_1"],
    }
    for key in ("beta1_power", "beta2_power", "global_step"):
        want[key] = expected[key]
    want["dense/kernel/Adam"] = expected["dense/kernel/Adam"]  # \\w+ reaches one scope, not 'dense/kernel'
    want["dense/kernel/Adam_1"] = expected["dense/kernel/Adam_1"]
    if suffix == ".npz":
        with np.load(out) as z:
            got = {k: z[k] for k in z.files}
    else:
        got = pytest.importorskip("safetensors.numpy").load_file(str(out))
    assert sorted(got) == sorted(want) == sorted(names)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_rules_that_cannot_name_or_reach_a_tensor_are_one_error(tf1_ckpt, tmp_path):
    out = tmp_path / "w.npz"
    loose = _rules(tmp_path, {"target": "model/.*", "source": "dense/kernel"})
    assert_one_error_line(run_cli("export", tf1_ckpt, out, f"--rules={loose}"), "cannot be spelled out")
    astray = _rules(tmp_path, {"target": "x", "source": "no/such/variable"})
    assert_one_error_line(run_cli("export", tf1_ckpt, out, f"--rules={astray}"), "reaches a tensor")
    wrong = _rules(
        tmp_path, {"target": "x", "source": "dense/kernel", "transforms": [{"transpose": [0, 1, 2]}]}
    )
    assert_one_error_line(run_cli("export", tf1_ckpt, out, f"--rules={wrong}"), "'x'")
    assert_one_error_line(run_cli("export", tf1_ckpt, out, "--rule_param", "a=1"), "--rules", code=2)
    assert not out.exists()
