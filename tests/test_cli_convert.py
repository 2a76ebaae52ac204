"""`est-ckpt convert` as a user sees it: the progress bar the CLI draws, and a full disk named in one line."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from est_ckpt.commands import convert as convert_command
from est_ckpt.format import bundle
from est_ckpt.tools import convert
from tests.cli import mount_namespace


def test_progress_bar_only_over_threshold(capsys):
    """The copy progress bar prints to stderr only for files over 100 MB."""
    progress = convert_command.progress_bar()
    progress(10, 1000)
    assert capsys.readouterr().err == ""
    progress(200_000_000, 200_000_000)
    assert capsys.readouterr().err == f"\rcopying [{'#' * 30}] 200/200 MB\n"


def test_progress_callback_sees_each_copied_shard(ckpts, tmp_path):
    """`convert(progress=...)` is called with (bytes done, shard size) while a shard is copied, never for a link."""
    pytest.importorskip("tensorflow")  # `ram://` goes through tf.io.gfile
    src = ckpts.prefix("tf1")
    size = os.path.getsize(bundle.data_path(src, 0, 1))
    calls = []
    convert.convert(src, "ram://est-ckpt-progress/c", to="tf2", progress=lambda *a: calls.append(a))
    assert calls and calls[-1] == (size, size)
    assert all(total == size and 0 < done <= size for done, total in calls)
    calls.clear()
    convert.convert(src, str(tmp_path / "local"), to="tf2", progress=lambda *a: calls.append(a))
    assert calls == []  # hard-linked: nothing to copy


def test_full_disk_names_the_file(ckpts, tmp_path):
    """On a full disk, convert fails with one line naming the file it was writing; fileio's writers name theirs."""
    unshare = mount_namespace()
    src = ckpts.prefix("tf1")
    small = tmp_path / "small"
    small.mkdir()
    writers = (
        "from est_ckpt import fileio\n"
        "for write in (fileio.write_new, fileio.write_atomic):\n"
        "    try:\n"
        f"        write({str(small / 'x')!r} + write.__name__, b'x' * 100000)\n"
        "    except OSError as e:\n"
        "        print(e.errno, e.filename)\n"
    )
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {small} || exit 99\n"
        f"head -c 1M /dev/zero > {small}/filler 2>/dev/null\n"
        f"{sys.executable} -m est_ckpt convert {src} {small}/out --to=tf2\n"
        f"echo rc=$?\n"
        f"{sys.executable} -c {shlex.quote(writers)}\n"
    )
    proc = subprocess.run([*unshare, "sh", "-c", script], capture_output=True, text=True, timeout=120)
    if proc.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace: {proc.stderr.strip()}")
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("est-ckpt: error: [Errno 28] No space left on device"), (
        lines
    )
    assert f"'{small}/" in lines[0] and "Traceback" not in proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "rc=1"
    assert out[1] == f"28 {small}/xwrite_new"
    assert out[2].startswith(f"28 {small}/xwrite_atomic") and len(out) == 3  # its temporary name
