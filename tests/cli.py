"""Running `est-ckpt` in tests as users do: a subprocess, bounded in time, and what a clean failure is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_estimator_job(script: str, *args: str) -> None:
    """Runs `tests/SCRIPT ARGS` with the Estimator environment's Python (`EST_CKPT_ESTIMATOR_PYTHON`, which
    `make test` sets for the newest environment, where Estimator cannot be installed); skips without it."""
    python = os.environ.get("EST_CKPT_ESTIMATOR_PYTHON")
    if not python:
        pytest.skip(
            "needs the Estimator environment's Python in EST_CKPT_ESTIMATOR_PYTHON (`make test` sets it)"
        )
    proc = subprocess.run(
        [python, os.path.join(ROOT, "tests", script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def cli_env(env: Optional[dict] = None) -> dict:
    """The environment of a user's shell: TensorFlow's C++ logs as `est-ckpt` leaves them (conftest lowers it)."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}


def cli_argv(*args: str) -> list[str]:
    """The command line of `est-ckpt ARGS` as this interpreter runs it (`python -m est_ckpt`)."""
    return [sys.executable, "-m", "est_ckpt", *map(str, args)]


def run_cli(
    *args: str, env: Optional[dict] = None, timeout: float = 120, expect: Optional[int] = None, **kwargs
) -> subprocess.CompletedProcess:
    """Runs `python -m est_ckpt ARGS` from the repository root; text output captured.

    Args:
      expect: the exit code to assert, if any.
    """
    proc = subprocess.run(
        cli_argv(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=cli_env(env),
        **kwargs,
    )
    if expect is not None:
        assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def outcome(*args: str, **kwargs) -> tuple[int, str, str]:
    """`(exit code, stdout, stderr)` of `run_cli(*args, **kwargs)`."""
    proc = run_cli(*args, **kwargs)
    return proc.returncode, proc.stdout, proc.stderr


def run_cli_in_process(argv: list[str]) -> tuple[int, str, str]:
    """`(exit code, stdout, stderr)` of the command line run in this process (fast: for fuzzing many inputs)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from est_ckpt.commands import main as cli

    out, err = io.StringIO(), io.StringIO()
    code = None
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(cli.parse(["est-ckpt", *argv]))
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(proc: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    """The CLI failed cleanly: exit `code`, one stderr line naming each needle, no traceback, no stdout."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("est-ckpt: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert proc.stdout == "", proc.stdout
    return lines[0]


def mount_namespace() -> list[str]:
    """The `unshare` command that gives a child its own mount namespace (so it may mount a tmpfs), or skips."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed: no private mount namespace for a small tmpfs")
    for command in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        probe = subprocess.run([*command, "true"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return command
    pytest.skip("cannot make a mount namespace here (needs root or unprivileged user namespaces)")
