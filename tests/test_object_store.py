"""Remote model directories on a real object store: `s3://` against moto's S3 server on loopback.

The server (`tests/object_store.py`) runs in its own process on 127.0.0.1 for the
whole session and is stopped at the end. TensorFlow reaches it through
tensorflow-io's `s3://` plugin, the way a training job on S3 does; est_ckpt's
tools reach it through `fileio` (`tf.io.gfile`). Why S3 and not `gs://`, and what
the atomicity promise is on a store without atomic rename: docs/remote.md.
Everything written is read back with TensorFlow's own reader or
est_ckpt's verifier; the largest objects are fetched whole with boto3 (one GET)
to be checked locally, because reading through `tf.io.gfile` costs one ranged GET
per 512 KiB, and each of those costs moto time proportional to the object's size.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

import est_ckpt  # noqa: E402
from est_ckpt import fileio  # noqa: E402
from est_ckpt.errors import CheckpointNotFoundError, DestinationExistsError  # noqa: E402
from tests import fixtures  # noqa: E402
from tests.cli import cli_argv, run_cli  # noqa: E402
from tests.object_store import S3Server, ServerUnavailable  # noqa: E402
from tests.test_crash_consistency import _tree_digest  # noqa: E402
from tests.test_scaffold import VV, _values, _var_estimator, _var_input_fn  # noqa: E402
from tests.test_warm_start import _input_fn as _new_scope_input_fn  # noqa: E402
from tests.test_warm_start import _model_fn as _new_scope_model_fn  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TEMP_MARK = ".tmp-est-ckpt-"
# The CLI prints its progress bar for files over 100 MB (decimal).
_BIG_ELEMENTS = 25_100_000  # float32: 100.4 MB in one data file


@pytest.fixture(scope="session")
def store():
    """moto's S3 server on loopback, its environment set for this process and its children."""
    for module in ("moto", "flask", "flask_cors", "tensorflow_io", "boto3"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(
                f"{module} is missing: `pip install -e '.[test]'` installs the object-store tests' packages"
            )
    server = S3Server()
    try:
        server.start()
    except ServerUnavailable as e:
        server.close()
        pytest.skip(str(e))
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in server.env.items():
                mp.setenv(name, value)
            # What a training job on S3 does: tensorflow-io registers `s3://` with tf.io.gfile.
            import tensorflow_io  # noqa: F401

            yield server
    finally:
        server.close()


def _legacy_model_dir(store, name: str) -> str:
    """An Estimator model dir on S3 trained one step by the guide's TF1 model_fn: var = 2, global_step = 1."""
    model_dir = store.url(name)
    fixtures._train_estimator(fixtures._model_fn_tf1_ckpt, model_dir)
    return model_dir


@pytest.fixture(scope="module")
def dual_dir(store):
    """A model dir on S3 trained by `make_tf2_scaffold(also_save_tf1=True)`: 1 step, then 1 more in a new train()."""
    model_dir = store.url("dual")
    est = _var_estimator(lambda: est_ckpt.make_tf2_scaffold(also_save_tf1=True), model_dir)
    est.train(_var_input_fn, steps=1)
    est.train(_var_input_fn, steps=1)
    return model_dir


def test_async_saves_to_an_s3_model_dir_hold_what_synchronous_ones_do(store, dual_dir):
    """async_save=True writes to S3 in the background: train() returns with it there, and a new train() resumes."""
    model_dir = store.url("async")
    est = _var_estimator(lambda: est_ckpt.make_tf2_scaffold(also_save_tf1=True, async_save=True), model_dir)
    est.train(_var_input_fn, steps=1)
    est.train(_var_input_fn, steps=1)
    assert tf.train.latest_checkpoint(model_dir) == f"{model_dir}/model.ckpt-2"
    # As the synchronous saves of `dual_dir` (the step restored and saved again at start-up is counted, not
    # rewritten).
    assert (
        _values(model_dir)
        == _values(dual_dir)
        == {"var_list/var" + VV: 4.0, "step" + VV: 2, "save_counter" + VV: 4}
    )
    assert tf.train.latest_checkpoint(f"{model_dir}/tf1") == f"{model_dir}/tf1/model.ckpt-2"
    assert est_ckpt.verify_checkpoint(model_dir).ok
    assert not [p for p in fileio.listdir(model_dir) if _TEMP_MARK in p]


def test_tf2_scaffold_trains_in_an_s3_model_dir_and_keeps_a_tf1_copy(store, dual_dir):
    """make_tf2_scaffold(also_save_tf1=True) saves object-based to S3, resumes from it, and copies each save to tf1/."""
    # Step 2 and var 4 only if the second train() restored the first one's checkpoint from S3.
    assert tf.train.latest_checkpoint(dual_dir) == f"{dual_dir}/model.ckpt-2"
    assert est_ckpt.read_checkpoint(dual_dir).format == "tf2"
    assert _values(dual_dir) == {"var_list/var" + VV: 4.0, "step" + VV: 2, "save_counter" + VV: 4}
    tf1_dir = f"{dual_dir}/tf1"
    assert tf.train.latest_checkpoint(tf1_dir) == f"{tf1_dir}/model.ckpt-2"
    assert est_ckpt.read_checkpoint(tf1_dir).format == "tf1"
    assert _values(f"{tf1_dir}/model.ckpt-1") == {"var": 2.0, "global_step": 1}
    with tf.Graph().as_default():
        v = tf1.get_variable("var", shape=[])
        step = tf1.train.get_or_create_global_step()
        with tf1.Session() as sess:
            tf1.train.Saver().restore(sess, tf.train.latest_checkpoint(tf1_dir))
            assert sess.run([v, step]) == [4.0, 2]
    names = store.objects("dual")
    assert not [n for n in names if _TEMP_MARK in n], names


def test_legacy_s3_model_dir_continues_object_based(store):
    """A name-based model dir on S3 continues with make_tf2_scaffold: step and values go on, saves are object-based."""
    model_dir = _legacy_model_dir(store, "legacy-continue")
    legacy_prefix = tf.train.latest_checkpoint(model_dir)
    assert est_ckpt.read_checkpoint(legacy_prefix).format == "tf1"
    est = _var_estimator(est_ckpt.make_tf2_scaffold, model_dir)
    est.train(_var_input_fn, steps=2)
    latest = tf.train.latest_checkpoint(model_dir)
    assert latest == f"{model_dir}/model.ckpt-3"
    assert est_ckpt.read_checkpoint(latest).format == "tf2"
    assert _values(latest) == {"var_list/var" + VV: 6.0, "step" + VV: 3, "save_counter" + VV: 2}
    assert est.evaluate(_var_input_fn, steps=1, checkpoint_path=legacy_prefix)["global_step"] == 1


@pytest.mark.parametrize("kind, value", [("tf1", 2.0), ("tf2", 4.0)])
def test_warm_start_from_an_s3_model_dir(store, dual_dir, tmp_path, kind, value):
    """warm_start_settings reads a name-based or object-based model dir on S3 and renames its scope."""
    source = _legacy_model_dir(store, "warm-source") if kind == "tf1" else dual_dir
    settings = est_ckpt.warm_start_settings(source, assignment_map={"/": "new_scope/"})
    est = tf.estimator.Estimator(_new_scope_model_fn, str(tmp_path / "model"), warm_start_from=settings)
    est.train(_new_scope_input_fn, steps=1)
    assert est.get_variable_value("new_scope/var") == value


def test_cli_inspects_and_converts_remote_paths_then_they_verify_and_diff_equal(store, dual_dir, ckpts):
    """`est-ckpt inspect` and `convert --to=tf1` take s3:// paths; the copy verifies and diffs equal to its source.

    A store error (here a bucket that does not exist) is one line naming the object, exit 1.
    """
    tf1_out = store.url("cli-tf1") + "/"
    commands = {
        "inspect": ("inspect", dual_dir, "--json"),
        "convert": ("convert", dual_dir, tf1_out, "--to=tf1"),
        "no_bucket": ("convert", ckpts("tf1"), "s3://no-such-bucket/m/model.ckpt", "--to=tf2"),
    }
    # Independent commands, run side by side: each pays for importing TensorFlow.
    procs = {
        name: subprocess.Popen(
            cli_argv(*args), cwd=_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for name, args in commands.items()
    }
    results = {name: (*p.communicate(timeout=180), p.returncode) for name, p in procs.items()}
    _, err, rc = results.pop("no_bucket")
    assert rc == 1 and "Traceback" not in err, err
    assert re.search(
        r"^est-ckpt: error: \[Errno 2\] .*'s3://no-such-bucket/m/[^']*'$", err.strip().splitlines()[-1]
    )
    for name, (_, err, rc) in results.items():
        assert rc == 0, f"{name}: {err}"
    inspected = json.loads(results["inspect"][0])
    assert inspected["prefix"] == f"{dual_dir}/model.ckpt-2" and inspected["format"] == "tf2"
    assert {t["name"] for t in inspected["tensors"]} >= {"var", "global_step"}
    # The converted copy: name-based, the latest of its new directory, equal to its source.
    dst = tf1_out + "model.ckpt-2"
    assert results["convert"][0].startswith(f"wrote {dst}")
    assert tf.train.latest_checkpoint(tf1_out.rstrip("/")) == dst
    assert _values(dst) == {"var": 4.0, "global_step": 2}
    report = est_ckpt.verify_checkpoint(tf1_out)
    assert report.ok and report.prefix == dst, report.problems
    assert est_ckpt.diff_checkpoints(dual_dir, dst).equal
    assert est_ckpt.diff_checkpoints(dual_dir, f"{dual_dir}/tf1").equal


@pytest.fixture(scope="module")
def big_ckpt(tmp_path_factory):
    """A local name-based checkpoint whose one data file holds 100.4 MB (`big`) plus a small `w`."""
    directory = tmp_path_factory.mktemp("big")
    with tf.Graph().as_default():
        # Computed in the session, not a 100 MB constant in the graph; not constant, so a misplaced byte shows.
        tf1.get_variable("big", initializer=tf.cast(tf.range(_BIG_ELEMENTS) % 251, tf.float32))
        tf1.get_variable("w", initializer=np.array([1.0, 2.0], np.float32))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return tf1.train.Saver().save(sess, str(directory / "model.ckpt"), write_meta_graph=False)


def test_cli_converts_a_big_local_checkpoint_into_s3_with_progress(store, big_ckpt, tmp_path):
    """`est-ckpt convert LOCAL s3://.../ --to=tf2` copies a 100.4 MB data file (over the progress bar's 100 MB); DST verifies."""
    dst_dir = store.url("big")
    proc = run_cli("convert", big_ckpt, dst_dir + "/", "--to=tf2", timeout=300)
    # Whether and how the progress bar shows (stderr is a pipe here) belongs to the CLI: only no traceback.
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    prefix = f"{dst_dir}/model.ckpt"
    assert tf.train.latest_checkpoint(dst_dir) == prefix
    assert est_ckpt.read_checkpoint(prefix).format == "tf2"
    local = os.path.join(store.download("big", tmp_path / "big"), "model.ckpt")
    report = est_ckpt.verify_checkpoint(local)
    assert report.ok, report.problems
    assert report.bytes_checked >= 4 * _BIG_ELEMENTS
    assert est_ckpt.diff_checkpoints(big_ckpt, local).equal


def _publishing(requests, dst_key: str, num_shards: int):
    """Positions in the server's log of the writes that publish DST: its data files, its index, its old index's removal."""
    data = [f"{dst_key}.data-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]
    index = f"{dst_key}.index"
    written = {
        name: [i for i, (m, p, s) in enumerate(requests) if m == "PUT" and p == name and s == 200]
        for name in [*data, index]
    }
    removed = [i for i, (m, p, s) in enumerate(requests) if m == "DELETE" and p == index]
    return [w for name in data for w in written[name]], written[index], removed


def test_convert_on_s3_writes_the_index_last_in_one_put(store, tmp_path):
    """On S3 (rename = copy + delete) convert's DST index is one PUT, after every DST data file, also under --force."""
    src = fixtures.build_estimator_tf1_dir(str(tmp_path))
    dst_prefix = store.url("order", "model.ckpt-1")
    dst_key = f"/{store.bucket}/order/model.ckpt-1"
    for force in (False, True):
        mark = len(store.requests())
        est_ckpt.convert_checkpoint(src, dst_prefix, to="tf2", force=force)
        requests = store.requests()[mark:]
        data, index, removed = _publishing(requests, dst_key, num_shards=2)
        assert len(data) == 2 and len(index) == 1, requests
        assert max(data) < index[0]
        if force:  # the old index goes first: while data is replaced there is no index to read
            assert len(removed) == 1 and removed[0] < min(data)
        assert est_ckpt.verify_checkpoint(dst_prefix).ok
        assert _values(dst_prefix) == {"var_list/var" + VV: 2.0, "step" + VV: 1, "save_counter" + VV: 1}
    assert not [n for n in store.objects("order") if _TEMP_MARK in n]


def test_convert_failing_to_publish_its_index_on_s3_leaves_no_checkpoint(store, tmp_path, monkeypatch):
    """A convert into S3 that fails at the index (after its data files are in place) leaves no readable DST."""
    src = fixtures.build_estimator_tf1_dir(str(tmp_path))
    dst_prefix = store.url("failed", "model.ckpt-1")
    rename = fileio.rename

    def rename_failing_at_the_index(old, new):
        if new.endswith(".index"):
            raise OSError(errno.EIO, "connection reset by the store", new)
        rename(old, new)

    monkeypatch.setattr(fileio, "rename", rename_failing_at_the_index)
    with pytest.raises(OSError, match="connection reset"):
        est_ckpt.convert_checkpoint(src, dst_prefix, to="tf2")
    monkeypatch.undo()
    # Orphan data files, no index, no temporary objects: no reader sees a checkpoint.
    orphans = ["model.ckpt-1.data-00000-of-00002", "model.ckpt-1.data-00001-of-00002"]
    assert sorted(store.objects("failed")) == orphans
    with pytest.raises(CheckpointNotFoundError):
        est_ckpt.read_checkpoint(dst_prefix)
    assert tf.train.latest_checkpoint(store.url("failed")) is None
    with pytest.raises(DestinationExistsError, match=r"model\.ckpt-1\.data-0000[01]-of-00002"):
        est_ckpt.convert_checkpoint(src, dst_prefix, to="tf2")
    est_ckpt.convert_checkpoint(src, dst_prefix, to="tf2", force=True)
    # The data files replaced, the index published, and (as `Saver.save` does) a state file naming DST.
    assert sorted(store.objects("failed")) == ["checkpoint", *orphans, "model.ckpt-1.index"]
    assert tf.train.latest_checkpoint(store.url("failed")) == dst_prefix
    assert est_ckpt.verify_checkpoint(dst_prefix).ok


def test_convert_killed_on_s3_leaves_no_index_or_a_whole_one(store, big_ckpt, tmp_path):
    """SIGKILL while a convert publishes into S3 leaves DST's index absent or whole; other leftovers are data or temp objects."""
    dst_prefix = store.url("killed", "model.ckpt")
    src_digest = _tree_digest(os.path.dirname(big_ckpt))
    mark = len(store.requests())
    proc = subprocess.Popen(
        cli_argv("convert", big_ckpt, dst_prefix, "--to=tf2"),
        cwd=_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill as soon as DST is being published: its first data file copied into place (the index comes last).
    published = f"/{store.bucket}/killed/model.ckpt.data-"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if any(m == "PUT" and p.startswith(published) for m, p, _ in store.requests()[mark:]):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _tree_digest(os.path.dirname(big_ckpt)) == src_digest, "the source changed"
    names = store.objects("killed")
    if "model.ckpt.index" in names:
        local = os.path.join(store.download("killed", tmp_path / "whole"), "model.ckpt")
        assert est_ckpt.verify_checkpoint(local).ok and est_ckpt.diff_checkpoints(big_ckpt, local).equal
        outcome = "whole"
    else:
        assert all(n.startswith("model.ckpt.data-") or _TEMP_MARK in n for n in names), names
        with pytest.raises(CheckpointNotFoundError):
            est_ckpt.read_checkpoint(dst_prefix)
        if any(n.startswith("model.ckpt.data-") for n in names):
            with pytest.raises(DestinationExistsError):
                est_ckpt.convert_checkpoint(big_ckpt, dst_prefix, to="tf2")
        outcome = f"no index; left {sorted(names)}"
    sys.stderr.write(f"\nconvert into S3 killed: {outcome}\n")
    est_ckpt.convert_checkpoint(big_ckpt, dst_prefix, to="tf2", force=True)
    local = os.path.join(store.download("killed", tmp_path / "rerun"), "model.ckpt")
    assert est_ckpt.verify_checkpoint(local).ok and est_ckpt.diff_checkpoints(big_ckpt, local).equal


def test_a_checkpoint_with_an_empty_data_file_cannot_be_converted_into_s3(store, tmp_path):
    """tensorflow-io's S3 plugin never writes nor renames an empty object: convert stops with an OSError naming it."""
    with tf.Graph().as_default():
        tf1.get_variable("empty", shape=[0])
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            src = tf1.train.Saver().save(sess, str(tmp_path / "model.ckpt"), write_meta_graph=False)
    assert os.path.getsize(src + ".data-00000-of-00001") == 0
    with pytest.raises(
        FileNotFoundError, match=r"s3://[^ ]*/empty/\.model\.ckpt\.tmp-est-ckpt-.*\.data-00000"
    ):
        est_ckpt.convert_checkpoint(src, store.url("empty", "model.ckpt"), to="tf2")
    assert "model.ckpt.index" not in store.objects("empty")


def test_local_paths_never_import_tensorflow_or_tensorflow_io(ckpts, tmp_path):
    """read, verify, convert and diff on local paths import neither TensorFlow nor tensorflow-io."""
    src = ckpts("tf1")
    code = (
        "import sys, est_ckpt\n"
        f"src, dst = {src!r}, {str(tmp_path / 'out' / 'model.ckpt')!r}\n"
        "est_ckpt.read_checkpoint(src); assert est_ckpt.verify_checkpoint(src).ok\n"
        "est_ckpt.convert_checkpoint(src, dst, to='tf2'); assert est_ckpt.diff_checkpoints(src, dst).equal\n"
        "print(sorted(m for m in ('tensorflow', 'tensorflow_io') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
