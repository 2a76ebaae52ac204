"""What a new user meets first: damaged sources, wrong files, wrong paths, and output (issue 20, 3-10).

Every case is a real checkpoint written by TensorFlow, damaged or misnamed as users do by accident; the
CLI runs in a subprocess and must fail in one line naming the file or key, exit 1, and change nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import est_ckpt
from est_ckpt import convert_checkpoint, errors, read_checkpoint
from tests.cli import ROOT, assert_one_error_line, cli_env, mount_namespace, run_cli


def _copy_prefix(prefix: str, directory) -> str:
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(prefix)
    for name in os.listdir(os.path.dirname(prefix)):
        if name.startswith(base + "."):
            shutil.copy(os.path.join(os.path.dirname(prefix), name), os.path.join(directory, name))
    return os.path.join(str(directory), base)


def _digest(directory) -> dict[str, str]:
    return {
        n: hashlib.sha256(open(os.path.join(directory, n), "rb").read()).hexdigest()
        for n in sorted(os.listdir(directory))
    }


def _stored(prefix: str):
    """The key and entry of the stored tensor with the largest byte range."""
    info = read_checkpoint(prefix)
    key, entry = max(
        ((k, e) for k, e in info.bundle.entries.items() if not e.slices), key=lambda x: x[1].size
    )
    return key, entry, info.bundle.data_path(entry.shard_id)


# -- 3. convert checks the bytes it links ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["tf2", "like"])
def test_convert_refuses_a_source_whose_bytes_are_damaged(ckpts, tmp_path, mode):
    """One flipped byte in SRC's data: convert exits 1 naming the key and the data file; nothing is written."""
    src = _copy_prefix(ckpts("tf1"), tmp_path / "src")
    key, entry, shard = _stored(src)
    with open(shard, "r+b") as f:
        f.seek(entry.offset + entry.size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    before = _digest(tmp_path / "src")
    dst = tmp_path / "dst"
    args = (
        ["--to=tf2"]
        if mode == "tf2"
        else ["--like", convert_checkpoint(ckpts("tf1"), str(tmp_path / "t/"), to="tf2")]
    )
    proc = run_cli("convert", src, str(dst) + "/", *args)
    assert_one_error_line(proc, shard, f"'{key}'", "CRC32C", "Nothing was written")
    assert not dst.exists() or not any(n.endswith(".index") for n in os.listdir(dst))
    assert _digest(tmp_path / "src") == before
    kwargs = {"to": "tf2"} if mode == "tf2" else {"like": args[1]}
    with pytest.raises(errors.CorruptCheckpointError, match="CRC32C"):
        convert_checkpoint(src, str(tmp_path / "dst2/"), **kwargs)


# -- 4. a truncated data file is named as such ----------------------------------------------------


def test_a_truncated_data_file_is_named_with_the_range_it_lacks(ckpts, tmp_path):
    """Cut a .data file short: the error names that file, the key, the bytes it needs and the file's size."""
    src = _copy_prefix(ckpts("tf1"), tmp_path / "src")
    key, entry, shard = _stored(src)
    keep = entry.offset + entry.size - 1
    with open(shard, "r+b") as f:
        f.truncate(keep)
    with pytest.raises(errors.CorruptCheckpointError) as e:
        read_checkpoint(src)
    message = str(e.value)
    assert message.startswith(f"{shard}: ")
    for needle in (f"'{key}'", f"[{entry.offset}, {entry.offset + entry.size})", f"holds only {keep} bytes"):
        assert needle in message, (needle, message)
    assert "truncated" in message
    assert_one_error_line(run_cli("inspect", src), shard, f"'{key}'", "truncated")
    proc = run_cli("verify", src)
    assert proc.returncode == 1 and proc.stdout.startswith(f"{shard}: ") and "truncated" in proc.stdout


# -- 5. remote stores that do not answer, and Ctrl-C ----------------------------------------------


@pytest.fixture
def silent_endpoint():
    """An S3 endpoint on loopback that accepts connections and never answers; its environment."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    yield (
        endpoint,
        {
            "S3_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "est-ckpt-test",
            "AWS_SECRET_ACCESS_KEY": "est-ckpt-test",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


needs_s3 = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_io") is None, reason="s3:// needs tensorflow-io (the test extra)"
)


@needs_s3
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_store_that_never_answers_fails_in_bounded_time(silent_endpoint, how):
    """No answer from S3: one line naming the endpoint and what to set, after the timeout asked for."""
    endpoint, env = silent_endpoint
    if how == "flag":
        proc = run_cli("inspect", "s3://bucket/model", "--remote_timeout=2", env=env)
    else:
        proc = run_cli("inspect", "s3://bucket/model", env={**env, "EST_CKPT_REMOTE_TIMEOUT": "2"})
    line = assert_one_error_line(proc, "s3://bucket/model", "no answer within 2 s", f"S3_ENDPOINT={endpoint}")
    for setting in ("AWS_REGION", "AWS_ACCESS_KEY_ID", "--remote_timeout", "EST_CKPT_REMOTE_TIMEOUT"):
        assert setting in line


def test_a_bad_remote_timeout_is_a_usage_error():
    """`--remote_timeout=0` and a malformed EST_CKPT_REMOTE_TIMEOUT are usage errors (exit 2) naming them."""
    assert_one_error_line(run_cli("inspect", "x", "--remote_timeout=0"), "--remote_timeout", code=2)
    assert_one_error_line(
        run_cli("inspect", "x", env={"EST_CKPT_REMOTE_TIMEOUT": "soon"}), "EST_CKPT_REMOTE_TIMEOUT", code=2
    )


def _interrupt(args, env, after):
    """Starts `est-ckpt ARGS`, waits for `after(proc)`, sends SIGINT; returns (exit code, stdout, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "est_ckpt", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=cli_env(env),
        # As from a terminal, whatever launched the suite: a job started in the background by a
        # non-interactive shell (`make test &`) ignores SIGINT, and its children would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        after(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return proc.returncode, out, err


@needs_s3
def test_ctrl_c_while_a_store_does_not_answer(silent_endpoint):
    """Ctrl-C while waiting on a store: one line, exit 130, no traceback."""
    _, env = silent_endpoint
    code, out, err = _interrupt(
        ["verify", "s3://bucket/model", "--remote_timeout=600"], env, lambda proc: time.sleep(5)
    )
    assert (code, out, err) == (130, "", "est-ckpt: error: interrupted\n")


@pytest.mark.estimator
@pytest.mark.tensorflow
def test_ctrl_c_while_importing_tensorflow(tmp_path):
    """Ctrl-C as `demo` starts (its first line printed, TensorFlow being imported): one line, exit 130."""
    code, out, err = _interrupt(
        ["demo", f"--workdir={tmp_path / 'demo'}"], {}, lambda proc: proc.stdout.readline()
    )
    assert code == 130 and err == "est-ckpt: error: interrupted\n", (code, out, err)


# -- 6. Keras files and SavedModel directories -----------------------------------------------------


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """A small tf.keras model's files: weights as HDF5 (`.h5`), the model as `.keras`, and a SavedModel."""
    tf = pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("keras")
    model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(3, name="dense")])
    model.save(
        str(root / "model.h5")
    )  # HDF5, as Keras 2's `save_weights` and Keras 3's legacy `save` write it
    model.save(str(root / "model.keras"))
    shutil.copy(root / "model.h5", root / "weights_without_suffix")
    module = tf.Module()
    module.w = tf.Variable(tf.reshape(tf.range(6, dtype=tf.float32), [2, 3]), name="w")
    module.step = tf.Variable(7, dtype=tf.int64, name="global_step")
    tf.saved_model.save(module, str(root / "exported"))
    tf.train.Checkpoint(w=module.w, step=module.step).write(str(root / "ckpt" / "plain"))
    return root


@pytest.mark.parametrize(
    "name,kind",
    [
        ("model.h5", "a Keras HDF5 file (.h5)"),
        ("weights_without_suffix", "an HDF5 file (as Keras writes)"),
    ],
)
def test_a_keras_file_says_what_it_is_and_what_to_do(keras_files, name, kind):
    """A Keras file is named as such, with the way to a checkpoint, from the library and every command."""
    path = str(keras_files / name)
    with pytest.raises(errors.CorruptCheckpointError) as e:
        read_checkpoint(path)
    assert str(e.value).startswith(f"{path}: is {kind}, not a TensorFlow checkpoint.")
    assert "model.load_weights" in str(e.value) and "tf.train.Checkpoint(model=model).write" in str(e.value)
    for args in (
        ["inspect", path],
        ["diff", path, path],
        ["convert", path, str(keras_files / "x/"), "--to=tf2"],
    ):
        assert_one_error_line(run_cli(*args), path, kind)


def test_a_keras_archive_is_read_where_a_template_is_and_named_where_a_checkpoint_is_needed(keras_files):
    """A `.keras` archive is inspected like a checkpoint; `convert --to` (which needs one) names it and the way."""
    path = str(keras_files / "model.keras")
    assert run_cli("inspect", path).returncode == 0
    message = assert_one_error_line(
        run_cli("convert", path, str(keras_files / "x/"), "--to=tf2"), path, "a Keras model archive (.keras)"
    )
    assert "--like" in message


def test_a_saved_model_directory_is_a_checkpoint_everywhere(keras_files, tmp_path):
    """inspect, verify, diff, map, convert and warm_start read a SavedModel's `variables/variables`."""
    exported = str(keras_files / "exported")
    prefix = os.path.join(exported, "variables", "variables")
    assert est_ckpt.resolve_checkpoint(exported) == prefix
    info = read_checkpoint(exported)
    assert info.format == "tf2" and {"w", "global_step"} <= set(info.duplicate_names) | {
        t.name for t in info.tensors.values()
    }
    proc = run_cli("inspect", exported, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["prefix"] == prefix, proc.stderr
    assert run_cli("verify", exported).returncode == 0
    assert est_ckpt.diff_checkpoints(exported, str(keras_files / "ckpt" / "plain")).equal
    proc = run_cli("diff", exported, str(keras_files / "ckpt" / "plain"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    converted = convert_checkpoint(exported, str(tmp_path / "tf1/"), to="tf1")
    assert run_cli("map", exported, "--target", converted).returncode == 0

    tf = pytest.importorskip("tensorflow")
    with tf.Graph().as_default():
        w = tf.compat.v1.get_variable("w", [2, 3])
        est_ckpt.warm_start(exported, vars_to_warm_start="w")
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            value = session.run(w)
    assert value.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_a_saved_model_without_variables_says_so(tmp_path):
    """A SavedModel directory with no variables is one error naming what is missing."""
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(errors.CheckpointNotFoundError, match="SavedModel without variables"):
        read_checkpoint(str(tmp_path))


# -- 7. a mistyped path --------------------------------------------------------------------------


def test_a_mistyped_path_lists_the_nearest_checkpoints(ckpts, tmp_path):
    """`model.ckpt-10` where `model.ckpt-100` is, or `legacy_dri` for `legacy_dir`: the error suggests them."""
    model = tmp_path / "legacy_dir"
    prefix = _copy_prefix(ckpts("tf1"), model)
    typo = prefix[:-1] + "X"
    line = assert_one_error_line(
        run_cli("inspect", typo), typo, "no such checkpoint", f"Did you mean '{prefix}'"
    )
    assert line.endswith("?")
    assert_one_error_line(run_cli("inspect", str(tmp_path / "legacy_dri")), f"Did you mean '{model}'")
    assert_one_error_line(run_cli("convert", typo, str(tmp_path / "out/"), "--to=tf2"), f"'{prefix}'")


# -- 8. messages that fit their caller ------------------------------------------------------------


def test_destination_exists_says_force_in_each_callers_words(ckpts, tmp_path):
    """Python says `force=True`, the CLI says `--force`; neither says both."""
    dst = str(tmp_path / "dst") + "/"
    convert_checkpoint(ckpts("tf1"), dst, to="tf2")
    with pytest.raises(errors.DestinationExistsError) as e:
        convert_checkpoint(ckpts("tf1"), dst, to="tf2")
    assert str(e.value).endswith("; pass force=True to replace it.") and "--force" not in str(e.value)
    line = assert_one_error_line(run_cli("convert", ckpts("tf1"), dst, "--to=tf2"), "already exists")
    assert line.endswith("; pass --force to replace it.") and "force=True" not in line


def test_a_read_only_destination_names_its_directory(ckpts, tmp_path):
    """DST in a read-only directory: the error names that directory and says it is not writable."""
    unshare = mount_namespace()
    target = tmp_path / "readonly"
    target.mkdir()
    script = (
        f"mount --bind {target} {target} && mount -o remount,bind,ro {target} || exit 99\n"
        f"TF_CPP_MIN_LOG_LEVEL=3 {sys.executable} -m est_ckpt convert {ckpts('tf1')} {target}/out --to=tf2\n"
    )
    proc = subprocess.run(
        [*unshare, "sh", "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if proc.returncode == 99:
        pytest.skip(f"cannot make a read-only bind mount here: {proc.stderr.strip()}")
    line = assert_one_error_line(proc, f"{target}: the destination directory is not writable")
    assert ".tmp-est-ckpt-" not in line
    assert os.listdir(target) == []


# -- 10. output -------------------------------------------------------------------------------------


def test_state_file_updated_only_when_the_state_file_changed(ckpts, tmp_path):
    """`convert --json`: true for a new latest; false when --force rewrites the latest it already names."""
    dst = str(tmp_path / "dst") + "/"
    first = json.loads(run_cli("convert", ckpts("tf1"), dst, "--to=tf2", "--json").stdout)
    assert first["state_file_updated"] is True
    state = (tmp_path / "dst" / "checkpoint").read_text()
    again = run_cli("convert", ckpts("tf1"), dst, "--to=tf2", "--json", "--force")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["state_file_updated"] is False
    assert (tmp_path / "dst" / "checkpoint").read_text().splitlines()[:2] == state.splitlines()[:2]
    text = run_cli("convert", ckpts("tf1"), dst, "--to=tf2", "--force")
    assert text.stdout.endswith("(already the latest in its 'checkpoint' state file)\n")


def test_a_copy_across_file_systems_is_said(ckpts, tmp_path):
    """Where no hard link can be made (DST on another file system), convert says it copied, and how much."""
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system (/dev/shm) to copy across")
    dst = tempfile.mkdtemp(dir=shm)
    try:
        proc = run_cli("convert", ckpts("tf1"), dst + "/", "--to=tf2", "--json")
        assert proc.returncode == 0, proc.stderr
        assert "est-ckpt: note: copied " in proc.stderr and "another file system" in proc.stderr
        assert est_ckpt.diff_checkpoints(ckpts("tf1"), dst).equal
        quiet = run_cli("convert", ckpts("tf1"), str(tmp_path / "same") + "/", "--to=tf2")
        assert "copied" not in quiet.stderr
    finally:
        shutil.rmtree(dst)


# -- 9. a scaffold outside a graph ----------------------------------------------------------------


@pytest.mark.parametrize("make", ["make_tf2_scaffold", "make_tf1_scaffold"])
def test_a_scaffold_made_eagerly_says_where_to_make_it(make):
    """The README's one-liner run at top level (eager TF2) says to call it in model_fn or a tf.Graph."""
    tf = pytest.importorskip("tensorflow")
    kwargs = {"also_save_tf1": True} if make == "make_tf2_scaffold" else {}
    assert tf.executing_eagerly()
    with pytest.raises(errors.GraphModeError) as e:
        getattr(est_ckpt, make)(**kwargs)
    assert isinstance(e.value, RuntimeError)
    assert str(e.value).startswith(f"{make}() builds a Saver for a graph")
    assert "model_fn" in str(e.value) and "tf.Graph().as_default()" in str(e.value)
    with tf.Graph().as_default():
        tf.compat.v1.get_variable("w", [1])
        assert getattr(est_ckpt, make)(**kwargs) is not None


@pytest.fixture(scope="module")
def values_ckpt(tmp_path_factory):
    """A checkpoint of a long float tensor, an int scalar, strings, bfloat16 and bool, written by TF."""
    tf = pytest.importorskip("tensorflow")
    prefix = str(tmp_path_factory.mktemp("values") / "ckpt")
    tf.train.Checkpoint(
        long=tf.Variable(tf.range(1000, dtype=tf.float32) / 4 - 7),
        step=tf.Variable(tf.constant(42, tf.int64)),
        words=tf.Variable(tf.constant(["short", "x" * 100])),
        half=tf.Variable(tf.constant([1.5, -2.0], tf.bfloat16)),
        flags=tf.Variable(tf.constant([True, False])),
    ).write(prefix)
    return prefix


def test_inspect_values_are_readable_and_bounded(values_ckpt):
    """`inspect --values` shows each tensor's first values, its size and min/max; --all_values shows all."""
    proc = run_cli("inspect", values_ckpt, "--values")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
    assert lines["long/.ATTRIBUTES/VARIABLE_VALUE"].endswith(
        "= [-7, -6.75, -6.5, -6.25, -6, -5.75, ... (1000 values)] min=-7 max=242.75"
    )
    assert lines["step/.ATTRIBUTES/VARIABLE_VALUE"].endswith("= 42")
    assert lines["words/.ATTRIBUTES/VARIABLE_VALUE"].endswith(f"= ['short', '{'x' * 37}...']")
    assert lines["half/.ATTRIBUTES/VARIABLE_VALUE"].endswith("= [1.5, -2]")
    assert lines["flags/.ATTRIBUTES/VARIABLE_VALUE"].endswith("= [True, False]")
    assert "array(" not in proc.stdout and max(len(line) for line in proc.stdout.splitlines()) < 300
    full = run_cli("inspect", values_ckpt, "--values", "--all_values")
    long_line = next(line for line in full.stdout.splitlines() if line.startswith("long/"))
    assert long_line.endswith("241.75, 242, 242.25, 242.5, 242.75]") and "..." not in long_line
    assert_one_error_line(run_cli("inspect", values_ckpt, "--all_values"), "--all_values", code=2)


def test_inspect_into_a_closed_pipe_is_quiet(values_ckpt):
    """`est-ckpt inspect --values PATH | head -1`: the reader goes away; no traceback, exit 141."""
    proc = subprocess.run(
        f"{sys.executable} -m est_ckpt inspect {values_ckpt} --values --all_values | head -c 10; "
        "echo; echo ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
        timeout=120,
    )
    assert proc.stdout.splitlines()[-1] in ("0", "141") and proc.stderr == "", proc


# -- without TensorFlow (issue 21) ----------------------------------------------------------------


@pytest.mark.without_tensorflow
def test_without_tensorflow_each_tf_feature_names_the_extra(tmp_path, real_imports):
    """With only the core installed: the file tools work; demo, scheme:// paths and est_ckpt.tf say what to install."""
    prefix = str(tmp_path / "ckpt")
    # A checkpoint written by est_ckpt's own writer (no TensorFlow here), then read back by every tool.
    convert_checkpoint(_written_without_tf(tmp_path), prefix, to="tf2")
    assert run_cli("inspect", prefix).returncode == 0
    assert run_cli("verify", prefix).returncode == 0
    assert_one_error_line(run_cli("demo", f"--workdir={tmp_path / 'demo'}"), "est-ckpt[estimator]")
    assert not (tmp_path / "demo").exists()
    assert_one_error_line(run_cli("inspect", "gs://bucket/model"), "gs://", "est-ckpt[estimator]")
    with pytest.raises(errors.MissingDependencyError, match=r"est-ckpt\[estimator\]"):
        importlib.import_module("est_ckpt.tf")
    with pytest.raises(ImportError, match=r"est-ckpt\[estimator\]"):
        est_ckpt.warm_start  # noqa: B018 - the lazy name imports est_ckpt.tf


def _written_without_tf(tmp_path) -> str:
    """A one-variable TF1 checkpoint, written with est_ckpt's format layer alone."""
    from est_ckpt.format import bundle, dtypes, tensors

    data = struct.pack("<4f", 1, 2, 3, 4)
    prefix = str(tmp_path / "tf1")
    header = bundle.encode_header(1)
    rows = {b"w": tensors.new_entry(dtypes.DT_FLOAT, (2, 2), 0, 0, data)}
    with open(bundle.data_path(prefix, 0, 1), "wb") as f:
        f.write(data)
    with open(bundle.index_path(prefix), "wb") as f:
        f.write(bundle.build_index(header, rows.items()))
    return prefix
