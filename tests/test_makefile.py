"""The Makefile picks a Python that TensorFlow 2.15 supports, or stops with one line saying why."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stub(directory, name, body):
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def project(tmp_path):
    """A copy of the Makefile and pyproject.toml, and a PATH holding only `make` and stub Pythons."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("make"), bin_dir / "make")
    # A `python3` that is too new: it fails the Makefile's version check.
    _stub(bin_dir, "python3", "exit 1")
    return tmp_path, bin_dir


def _make(directory, bin_dir, target="test"):
    env = {"PATH": str(bin_dir), "HOME": str(directory)}
    return subprocess.run(
        ["make", "-s", target], cwd=directory, env=env, capture_output=True, text=True, timeout=60
    )


def test_stops_with_one_line_when_no_supported_python(project):
    """With only Python 3.12+ around, `make test` stops with one line naming the supported versions and why."""
    directory, bin_dir = project
    proc = _make(directory, bin_dir)
    assert proc.returncode != 0
    assert proc.stdout.strip() == (
        "est_ckpt's Estimator plugin needs Python 3.9, 3.10 or 3.11 (python3, python3.11, python3.10, python3.9 tried): "
        "TensorFlow 2.15, the last release with tf.estimator, has no wheels for Python 3.12 or newer."
    )
    assert not (directory / ".venv").exists()


def test_falls_back_to_an_older_python(project):
    """When `python3` is too new, the first of python3.11, python3.10, python3.9 found creates the venv."""
    directory, bin_dir = project
    _stub(bin_dir, "python3.10", 'case "$1" in -c) exit 0;; esac; echo "python3.10 $*"; exit 3')
    proc = _make(directory, bin_dir, "demo")
    assert "python3.10 -m venv .venv" in proc.stdout
    assert proc.returncode != 0
