"""What a new user meets first: damaged sources, wrong files, wrong paths, and output (issue 20, 3-10).

Every case is a real checkpoint written by TensorFlow, damaged or misnamed as users do by accident; the
CLI runs in a subprocess and must fail in one line naming the file or key, exit 1, and change nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from est_ckpt import convert_checkpoint, errors, read_checkpoint
from tests.cli import assert_one_error_line, run_cli


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
    key, entry = max(((k, e) for k, e in info.bundle.entries.items() if not e.slices), key=lambda x: x[1].size)
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
    args = ["--to=tf2"] if mode == "tf2" else ["--like", convert_checkpoint(ckpts("tf1"), str(tmp_path / "t/"), to="tf2")]
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
