"""What a new user meets first: damaged sources, wrong files, wrong paths, and output (issue 20, 3-10).

Every case is a real checkpoint written by TensorFlow, damaged or misnamed as users do by accident; the
CLI runs in a subprocess and must fail in one line naming the file or key, exit 1, and change nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from est_ckpt import convert_checkpoint, errors, read_checkpoint
from tests.cli import ROOT, assert_one_error_line, cli_env, run_cli


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


def test_ctrl_c_while_importing_tensorflow(tmp_path):
    """Ctrl-C as `demo` starts (its first line printed, TensorFlow being imported): one line, exit 130."""
    code, out, err = _interrupt(
        ["demo", f"--workdir={tmp_path / 'demo'}"], {}, lambda proc: proc.stdout.readline()
    )
    assert code == 130 and err == "est-ckpt: error: interrupted\n", (code, out, err)
