"""What `est-ckpt` writes where: reports on stdout, errors on stderr, no TensorFlow noise, quiet broken pipes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from est_ckpt.commands import main as cli
from est_ckpt.format import bundle

# One line of TensorFlow's C++ logging: `2026-01-02 03:04:05.678901: E external/.../cuda_dnn.cc:9261] ...`.
TF_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\]", re.M)


def est_ckpt_cli(*args: str, env: dict | None = None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """Runs the CLI in a subprocess, as the console script does."""
    return subprocess.run(
        [sys.executable, "-m", "est_ckpt", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env=env,
    )


def _damaged_copy(prefix: str, directory) -> str:
    """A copy of `prefix` whose data shard has one byte flipped (a CRC32C problem, not an error)."""
    directory.mkdir()
    for name in os.listdir(os.path.dirname(prefix)):
        if name.startswith(os.path.basename(prefix) + "."):
            shutil.copy(os.path.join(os.path.dirname(prefix), name), directory / name)
    copy = str(directory / os.path.basename(prefix))
    data = bytearray(open(bundle.data_path(copy, 0, 1), "rb").read())
    data[0] ^= 0xFF
    open(bundle.data_path(copy, 0, 1), "wb").write(bytes(data))
    return copy


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_verify_reports_on_stdout_and_errors_on_stderr(ckpts, tmp_path, as_json):
    """`verify`: the report (OK or one line per problem, or the JSON) is on stdout with stderr empty; a
    path with nothing to verify is one error line on stderr with stdout empty."""
    flags = ["--json"] if as_json else []
    sound = est_ckpt_cli("verify", ckpts("tf1"), *flags)
    assert sound.returncode == 0 and sound.stderr == ""
    damaged = est_ckpt_cli("verify", _damaged_copy(ckpts("tf1"), tmp_path / "d"), *flags)
    assert damaged.returncode == 1 and damaged.stderr == ""
    problems = json.loads(damaged.stdout)["problems"] if as_json else damaged.stdout.splitlines()
    assert len(problems) == 1 and "CRC32C" in problems[0]
    missing = est_ckpt_cli("verify", str(tmp_path / "nothing"), *flags)
    assert missing.returncode == 1 and missing.stdout == ""
    assert len(missing.stderr.splitlines()) == 1 and missing.stderr.startswith("est-ckpt: error: ")


def _closed_pipe() -> int:
    """The write end of a pipe whose reader is already gone: every write to it fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    return write_end


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["inspect", "--help"], ["inspect", "TF1"]])
def test_broken_pipe_exits_quietly(ckpts, args):
    """A reader that went away (`est-ckpt --help | head -1`) ends the command quietly: no traceback, exit 141."""
    args = [ckpts("tf1") if a == "TF1" else a for a in args]
    stdout = _closed_pipe()
    try:
        proc = est_ckpt_cli(*args, stdout=stdout)
    finally:
        os.close(stdout)
    assert proc.stderr == "", proc.stderr
    # argparse prints a command's --help itself and ignores a failed write: that exits 0.
    expected = (0, cli.EXIT_BROKEN_PIPE) if args == ["inspect", "--help"] else (cli.EXIT_BROKEN_PIPE,)
    assert proc.returncode in expected


def test_output_cut_short_by_head(ckpts):
    """`est-ckpt inspect PATH | head -1` prints one line and no traceback, however the race between them ends."""
    command = f"{sys.executable} -m est_ckpt inspect {ckpts('many_vars', n=200)} | head -1"
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1
    assert proc.stderr == ""


def _without_tf_log_level() -> dict:
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.tensorflow
def test_no_tensorflow_noise_when_the_cli_loads_tensorflow():
    """A CLI run that imports TensorFlow (a `ram://` path) prints only its own line: no cuda_dnn or oneDNN logs.

    A user's own `TF_CPP_MIN_LOG_LEVEL=0` is respected: then TF logs what it
    logs on this machine (if it logs anything at all at import).
    """
    path = "ram://est-ckpt-noise/none"
    quiet = est_ckpt_cli("inspect", path, env=_without_tf_log_level())
    assert quiet.returncode == 1, quiet.stderr
    assert quiet.stderr == f"est-ckpt: error: {path}: no such checkpoint, file or directory.\n"
    loud = est_ckpt_cli("inspect", path, env=dict(_without_tf_log_level(), TF_CPP_MIN_LOG_LEVEL="0"))
    assert loud.returncode == 1 and loud.stderr.endswith(quiet.stderr)
    if not TF_LOG_LINE.search(loud.stderr):
        pytest.skip("this TensorFlow logs nothing at import even at TF_CPP_MIN_LOG_LEVEL=0")
    assert "oneDNN" in loud.stderr or "cuda" in loud.stderr, loud.stderr


def test_quiet_native_logs_keeps_the_users_level():
    """`quiet_native_logs()` (the CLI's, `est_ckpt.commands.entry`) sets TF's C++ log level only when the user has not set one."""
    code = (
        "import os; from est_ckpt.commands.entry import quiet_native_logs; quiet_native_logs(); "
        "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    )
    for preset, expected in ((None, "3"), ("0", "0"), ("1", "1")):
        env = _without_tf_log_level()
        if preset is not None:
            env["TF_CPP_MIN_LOG_LEVEL"] = preset
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        assert out.stdout.strip() == expected


_CTRL_C_DURING_IMPORT = r"""
import os, signal, sys
from est_ckpt.commands.process import quiet_native_logs
quiet_native_logs()

class Interrupt:
    # Sends this process SIGINT as TensorFlow's native bindings start to load (deep inside `import tensorflow`).
    def find_spec(self, name, path, target=None):
        if name == "tensorflow.python.pywrap_tensorflow":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, Interrupt())
try:
    import tensorflow
except KeyboardInterrupt:
    # Raised once TF's package had run to its end (its last imports are in sys.modules), not inside it.
    print("interrupted after import:", "tensorflow.python.ops.array_ops" in sys.modules)
"""


@pytest.mark.tensorflow
@pytest.mark.parametrize("level", ["3", "0"])
def test_ctrl_c_during_the_tensorflow_import_is_held_then_delivered(level):
    """The CLI's import of TensorFlow holds a Ctrl-C until TF is loaded, then raises it: never lost inside TF."""
    env = dict(_without_tf_log_level(), TF_CPP_MIN_LOG_LEVEL=level)
    out = subprocess.run(
        [sys.executable, "-c", _CTRL_C_DURING_IMPORT],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal starts it
    )
    assert out.stdout == "interrupted after import: True\n", (out.returncode, out.stderr[-2000:])
