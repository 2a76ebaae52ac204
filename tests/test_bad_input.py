"""Bad input gets a typed error naming the file, from the library and from the CLI.

Each case is checked three ways: `read_checkpoint` raises the right
`est_ckpt.errors` class (or, for a state file pointing nowhere, falls back to
the newest complete checkpoint); `est-ckpt inspect` run as a subprocess prints
one line to stderr and exits 1, never a traceback; `est-ckpt verify` exits 1
and says what is wrong.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from est_ckpt import errors, read_checkpoint, resolve_checkpoint, verify_checkpoint

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def est_ckpt(*args):
    """Runs the CLI as users do, in a subprocess, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "est_ckpt", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=_ROOT,
    )


def assert_one_error_line(proc, *needles):
    """The CLI failed cleanly: exit 1, one stderr line naming what is wrong, no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("est-ckpt: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def assert_verify_fails(path, *needles):
    """`est-ckpt verify` exits 1, and its output names each needle, without a traceback."""
    proc = est_ckpt("verify", str(path))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    text = proc.stdout + proc.stderr
    assert text.strip(), "verify said nothing"
    for needle in needles:
        assert needle in text, (needle, text)
    return proc


@pytest.fixture
def tf1_copy(ckpts, tmp_path):
    """A private copy of the guide's name-based checkpoint; returns its prefix."""
    src = ckpts("tf1")
    directory = tmp_path / "tf1"
    directory.mkdir()
    for name in os.listdir(os.path.dirname(src)):
        if name.startswith(os.path.basename(src) + "."):
            shutil.copy(os.path.join(os.path.dirname(src), name), directory / name)
    return str(directory / os.path.basename(src))


@pytest.fixture
def model_dir(ckpts, tmp_path):
    """A private copy of the TF2 Estimator model dir (two checkpoints, two shards each), relative state file."""
    src = ckpts("estimator_tf2")
    directory = tmp_path / "model"
    directory.mkdir()
    for name in os.listdir(src):
        if name.startswith("model.ckpt-") and not name.endswith(".meta"):
            shutil.copy(os.path.join(src, name), directory / name)
    (directory / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt-1"\n'
        'all_model_checkpoint_paths: "model.ckpt-0"\n'
        'all_model_checkpoint_paths: "model.ckpt-1"\n'
    )
    return str(directory)


def test_missing_path(tmp_path):
    """A path where nothing exists raises CheckpointNotFoundError naming it; the CLI says so in one line."""
    path = str(tmp_path / "no" / "such" / "ckpt")
    with pytest.raises(errors.CheckpointNotFoundError, match="no such checkpoint") as e:
        read_checkpoint(path)
    assert path in str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    with pytest.raises(errors.CheckpointNotFoundError):
        verify_checkpoint(path)
    assert_one_error_line(est_ckpt("inspect", path), path)
    assert_one_error_line(est_ckpt("verify", path), path)


def test_directory_without_checkpoint(tmp_path):
    """A directory holding no checkpoint raises CheckpointNotFoundError that says what to pass instead."""
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    with pytest.raises(errors.CheckpointNotFoundError, match="holds no checkpoint") as e:
        read_checkpoint(str(tmp_path))
    assert str(tmp_path) in str(e.value)
    assert_one_error_line(est_ckpt("inspect", str(tmp_path)), str(tmp_path), "holds no checkpoint")
    assert_one_error_line(est_ckpt("verify", str(tmp_path)), "holds no checkpoint")


@pytest.mark.parametrize("keep", [0, 10, 47, 100, -49, -1])
def test_truncated_index(tf1_copy, keep):
    """An .index cut short anywhere raises CorruptCheckpointError naming the .index."""
    index = tf1_copy + ".index"
    data = open(index, "rb").read()
    open(index, "wb").write(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(errors.CorruptCheckpointError) as e:
        read_checkpoint(tf1_copy)
    assert index in str(e.value)
    assert isinstance(e.value, ValueError)
    if keep in (0, -1):  # Two subprocess samples are enough; the library covers the rest.
        assert_one_error_line(est_ckpt("inspect", tf1_copy), index)
        assert_verify_fails(tf1_copy, index)
    else:
        assert not verify_checkpoint(tf1_copy).ok


def test_bit_flipped_index(tf1_copy):
    """A single flipped bit in an index block fails its CRC32C: CorruptCheckpointError naming the .index."""
    index = tf1_copy + ".index"
    data = bytearray(open(index, "rb").read())
    data[3] ^= 0x10
    open(index, "wb").write(bytes(data))
    with pytest.raises(errors.CorruptCheckpointError, match="CRC32C") as e:
        read_checkpoint(tf1_copy)
    assert index in str(e.value)
    assert_one_error_line(est_ckpt("inspect", tf1_copy), index, "CRC32C")
    assert_verify_fails(tf1_copy, index, "CRC32C")


def test_bit_flipped_data(tf1_copy):
    """A flipped bit in a tensor's bytes: listing works, reading the value and verify fail naming the key."""
    shard = tf1_copy + ".data-00000-of-00001"
    data = bytearray(open(shard, "rb").read())
    data[0] ^= 1
    open(shard, "wb").write(bytes(data))
    info = read_checkpoint(tf1_copy)
    key = next(k for k, e in info.bundle.entries.items() if e.offset == 0 and e.size)
    with pytest.raises(errors.CorruptCheckpointError, match="CRC32C"):
        info.read_tensor(key)
    assert est_ckpt("inspect", tf1_copy).returncode == 0
    assert_one_error_line(est_ckpt("inspect", tf1_copy, "--values"), shard, key)
    assert_verify_fails(tf1_copy, shard, f"'{key}'")


@pytest.mark.estimator
def test_missing_data_shard(model_dir):
    """A missing .data shard raises CheckpointNotFoundError naming the shard and what to copy."""
    shard = os.path.join(model_dir, "model.ckpt-1.data-00000-of-00002")
    os.remove(shard)
    with pytest.raises(errors.CheckpointNotFoundError, match="copy every .data-") as e:
        read_checkpoint(model_dir)
    assert shard in str(e.value)
    assert_one_error_line(est_ckpt("inspect", model_dir), shard)
    assert_verify_fails(model_dir, shard, "is missing")


@pytest.mark.parametrize("name", ["weights.bin", "model.index", "model.data-00000-of-00001"])
def test_file_that_is_not_a_checkpoint(tmp_path, name):
    """A file that is no checkpoint part raises CorruptCheckpointError naming it (not a traceback)."""
    path = tmp_path / name
    path.write_bytes(b"\x89PNG not a checkpoint at all\n" * 4)
    with pytest.raises(errors.CorruptCheckpointError) as e:
        read_checkpoint(str(path))
    assert str(tmp_path) in str(e.value)
    assert_one_error_line(est_ckpt("inspect", str(path)), str(tmp_path))
    if name == "weights.bin":
        proc = est_ckpt("verify", str(path))
        assert proc.returncode == 1 and "is not a checkpoint" in proc.stdout, proc


def test_index_that_is_a_directory(tmp_path):
    """A directory named like an .index is reported as such, not as an IsADirectoryError traceback."""
    (tmp_path / "x.index").mkdir()
    with pytest.raises(errors.EstCkptError):
        read_checkpoint(str(tmp_path / "x"))
    proc = est_ckpt("inspect", str(tmp_path / "x"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


@pytest.mark.estimator
def test_state_file_pointing_nowhere(model_dir):
    """A state file naming a missing checkpoint falls back to the newest complete one; verify flags the state file."""
    with open(os.path.join(model_dir, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "model.ckpt-9"\nall_model_checkpoint_paths: "model.ckpt-9"\n')
    expected = os.path.join(model_dir, "model.ckpt-1")
    assert resolve_checkpoint(model_dir) == expected
    assert read_checkpoint(model_dir).prefix == expected
    proc = est_ckpt("inspect", model_dir)
    assert proc.returncode == 0 and proc.stdout.startswith(expected), proc.stderr
    report = verify_checkpoint(model_dir)
    assert report.prefix == expected and not report.ok
    assert report.problems == [
        f"{os.path.join(model_dir, 'checkpoint')}: names checkpoint '{os.path.join(model_dir, 'model.ckpt-9')}', "
        "whose .index does not exist"
    ]
    assert_verify_fails(model_dir, "model.ckpt-9")


def test_state_file_naming_only_missing_checkpoints(tmp_path):
    """A directory whose state file names only missing checkpoints: verify's one error says so, naming both."""
    state = tmp_path / "checkpoint"
    state.write_text('model_checkpoint_path: "model.ckpt-9"\nall_model_checkpoint_paths: "model.ckpt-9"\n')
    with pytest.raises(errors.CheckpointNotFoundError) as info:
        verify_checkpoint(str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: directory holds no checkpoint")
    assert f"{state}: names checkpoint '{tmp_path / 'model.ckpt-9'}', whose .index does not exist" in message
    proc = est_ckpt("verify", str(tmp_path))
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert "model.ckpt-9" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.estimator
def test_stale_state_file_skips_an_incomplete_newest(model_dir):
    """With a stale state file, the newest prefix whose shards are all there is used, not a newer broken one."""
    with open(os.path.join(model_dir, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "gone-3"\n')
    os.remove(os.path.join(model_dir, "model.ckpt-1.data-00001-of-00002"))
    expected = os.path.join(model_dir, "model.ckpt-0")
    assert resolve_checkpoint(model_dir) == expected
    assert read_checkpoint(model_dir).prefix == expected
    proc = est_ckpt("inspect", model_dir, "--json")
    assert proc.returncode == 0 and expected in proc.stdout


@pytest.mark.estimator
def test_garbage_state_file(model_dir):
    """A state file that is not text, or whose value is not a string literal, is ignored, not a crash."""
    with open(os.path.join(model_dir, "checkpoint"), "wb") as f:
        f.write(b'model_checkpoint_path: "a", "b"\n' + bytes(range(256)))
    assert read_checkpoint(model_dir).prefix == os.path.join(model_dir, "model.ckpt-1")


@pytest.mark.estimator
def test_no_state_file_and_no_complete_checkpoint(model_dir):
    """When every checkpoint in a directory is incomplete, the error says so; verify reports the newest's damage."""
    os.remove(os.path.join(model_dir, "checkpoint"))
    for step in (0, 1):
        os.remove(os.path.join(model_dir, f"model.ckpt-{step}.data-00001-of-00002"))
    with pytest.raises(errors.CheckpointNotFoundError, match="holds no checkpoint"):
        read_checkpoint(model_dir)
    report = verify_checkpoint(model_dir)
    assert report.prefix == os.path.join(model_dir, "model.ckpt-1")
    assert any("model.ckpt-1.data-00001-of-00002: data shard 1 of 2 is missing" in p for p in report.problems)


@pytest.fixture
def alarm():
    """Fails a test whose library call blocks instead of raising (SIGALRM after 120 s).

    A FIFO blocks forever, so any bound tells a hang; this one leaves room for the
    test's CLI subprocesses on two loaded cores.
    """
    import signal

    def on_alarm(signum, frame):
        raise AssertionError("blocked for 120 s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("which", ["index-fifo", "index-dev-zero", "shard-fifo", "shard-directory"])
def test_special_files_neither_block_nor_exhaust_memory(tf1_copy, which, alarm):
    """A FIFO, /dev/zero or a directory in place of a checkpoint file is a typed error, not a hang or a blow-up."""
    path = tf1_copy + (".index" if which.startswith("index") else ".data-00000-of-00001")
    os.remove(path)
    if which.endswith("fifo"):
        os.mkfifo(path)
    elif which.endswith("dev-zero"):
        os.symlink("/dev/zero", path)
    else:
        os.mkdir(path)
    with pytest.raises(errors.CorruptCheckpointError, match="not a regular file") as e:
        read_checkpoint(tf1_copy)
    assert path in str(e.value)
    assert not verify_checkpoint(tf1_copy).ok
    assert_one_error_line(est_ckpt("inspect", tf1_copy), path, "not a regular file")
    assert_verify_fails(tf1_copy, path, "not a regular file")


@pytest.mark.estimator
def test_state_file_that_is_a_fifo_is_ignored(model_dir, alarm):
    """A `checkpoint` state file that is a FIFO is skipped (it would block), falling back to the newest checkpoint."""
    state = os.path.join(model_dir, "checkpoint")
    os.remove(state)
    os.mkfifo(state)
    assert read_checkpoint(model_dir).prefix == os.path.join(model_dir, "model.ckpt-1")
    assert est_ckpt("inspect", model_dir).returncode == 0


@pytest.mark.parametrize("where", ["path", "two-link-path", "index"])
def test_symlink_loop(tmp_path, where):
    """A loop of symbolic links says so, naming it ("symlink loop at PATH"), instead of "no such checkpoint"."""
    if where == "path":
        os.symlink("loop", tmp_path / "loop")
        path = looped = str(tmp_path / "loop")
    elif where == "two-link-path":
        os.symlink("b", tmp_path / "a")
        os.symlink("a", tmp_path / "b")
        path = looped = str(tmp_path / "a")
    else:
        os.symlink("ckpt.index", tmp_path / "ckpt.index")
        path, looped = str(tmp_path / "ckpt"), str(tmp_path / "ckpt.index")
    with pytest.raises(errors.SymlinkLoopError, match=f"symlink loop at {looped}:") as e:
        read_checkpoint(path)
    assert isinstance(e.value, OSError) and isinstance(e.value, errors.EstCkptError)
    needle = f"symlink loop at {looped}:"
    for args in (
        ["inspect", path],
        ["diff", path, path],
        ["convert", path, str(tmp_path / "out"), "--to=tf2"],
        ["map", path, "--target", path],
    ):
        assert_one_error_line(est_ckpt(*args), needle)
    # verify reports what is wrong with what PATH names as a problem, on stdout.
    assert assert_verify_fails(path, needle).stdout.splitlines() == [str(e.value)]
    assert not os.path.exists(tmp_path / "out.index")
