"""`est-ckpt inspect` as users run it: a subprocess, stdout, stderr and exit codes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from est_ckpt.format import keys
from tests.fixtures import VV


def est_ckpt(*args, check_rc=None):
    """Runs the CLI in a subprocess (as the console script does) and returns the result."""
    proc = subprocess.run(
        [sys.executable, "-m", "est_ckpt", *args], capture_output=True, text=True, timeout=60
    )
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr
    return proc


def test_import_does_not_import_tensorflow():
    """`import est_ckpt` and importing the CLI load neither TensorFlow nor numpy."""
    code = (
        "import sys, est_ckpt, est_ckpt.commands.main, est_ckpt.commands.inspect;"
        "print(sorted(m for m in ('tensorflow', 'numpy', 'tensorflow_estimator') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_file_tools_never_import_tensorflow():
    """The TF-free layers and every subcommand but `demo` import without TensorFlow."""
    modules = [
        "est_ckpt.tools.convert",
        "est_ckpt.tools.diff",
        "est_ckpt.tools.verify",
        "est_ckpt.tools.onto",
        "est_ckpt.tools.publish",
        "est_ckpt.mapping",
        "est_ckpt.mapping.optimizer_state",
        # Defining flags needs no TensorFlow import, where TensorFlow is installed (`est_ckpt.tf` asks for it).
        *(["est_ckpt.tf.flags"] if importlib.util.find_spec("tensorflow") else []),
        *(f"est_ckpt.commands.{c}" for c in ("inspect", "convert", "diff", "map", "verify")),
    ]
    code = f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_inspect_json_shape(ckpts):
    """`--json` prints exactly the documented object for a tf2 checkpoint with duplicate names."""
    prefix = ckpts("duplicate_names")
    out = json.loads(est_ckpt("inspect", prefix, "--json", check_rc=0).stdout)
    assert set(out) == {"prefix", "format", "tensors", "duplicate_names"}
    assert out["prefix"] == prefix and out["format"] == "tf2"
    by_key = {t["key"]: t for t in out["tensors"]}
    assert by_key["vars/0" + VV] == {
        "key": "vars/0" + VV,
        "dtype": "float32",
        "shape": [],
        "name": "Variable",
    }
    assert by_key[keys.OBJECT_GRAPH_KEY]["name"] is None
    assert out["duplicate_names"] == {"Variable": ["vars/0" + VV, "vars/1" + VV]}


def test_inspect_json_tf1_names_are_keys(ckpts):
    """For tf1 each tensor's name is its key and nothing is duplicated."""
    out = json.loads(est_ckpt("inspect", ckpts("partitioned"), "--json", check_rc=0).stdout)
    assert out["format"] == "tf1" and out["duplicate_names"] == {}
    assert {t["key"]: (t["name"], t["shape"]) for t in out["tensors"]} == {
        "dense/kernel": ("dense/kernel", [4, 2]),
        "emb": ("emb", [10, 4]),
    }


def test_inspect_values(ckpts):
    """`--values` adds every value, matching what TF reads."""
    out = json.loads(est_ckpt("inspect", ckpts("tf1"), "--json", "--values", check_rc=0).stdout)
    assert {t["key"]: t["value"] for t in out["tensors"]} == {"a": 1.0, "b": 2.0, "scoped/c": 3.0}
    out = json.loads(est_ckpt("inspect", ckpts("dtypes"), "--json", "--values", check_rc=0).stdout)
    values = {t["key"]: t["value"] for t in out["tensors"]}
    assert values["t_string"] == ["a", "bc", ""]
    human = est_ckpt("inspect", ckpts("tf1"), "--values", check_rc=0).stdout
    assert "scoped/c" in human and human.splitlines()[-1].endswith("scoped/c  = 3")
    every_dtype = est_ckpt("inspect", ckpts("dtypes"), "--values", check_rc=0).stdout
    assert "t_string" in every_dtype and "array(" not in every_dtype


@pytest.mark.estimator
def test_inspect_human_output(ckpts):
    """The text output is a line with prefix and format, then key, dtype, shape and name."""
    model_dir = ckpts("estimator_tf2")
    lines = est_ckpt("inspect", model_dir, check_rc=0).stdout.splitlines()
    assert lines[0].startswith(os.path.join(model_dir, "model.ckpt-1")) and "format=tf2" in lines[0]
    assert lines[1].split() == ["KEY", "DTYPE", "SHAPE", "NAME"]
    row = next(line for line in lines if line.startswith("var_list/var/"))
    assert row.split() == ["var_list/var" + VV, "float32", "[]", "var"]


@pytest.mark.parametrize(
    "make_path, message",
    [
        (lambda tmp: str(tmp / "missing"), "no such checkpoint"),
        (lambda tmp: str(tmp), "holds no checkpoint"),
    ],
)
def test_bad_paths_exit_1_with_one_line(tmp_path, make_path, message):
    """A bad path is one line on stderr, exit code 1, no traceback and no stdout."""
    proc = est_ckpt("inspect", make_path(tmp_path), check_rc=1)
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_corrupt_index_exits_1(ckpts, tmp_path):
    """A bit-flipped index is reported in one line naming the file."""
    src = ckpts("tf1")
    data = bytearray(open(src + ".index", "rb").read())
    data[3] ^= 0xFF
    (tmp_path / "c.index").write_bytes(bytes(data))
    (tmp_path / "c.data-00000-of-00001").write_bytes(open(src + ".data-00000-of-00001", "rb").read())
    proc = est_ckpt("inspect", str(tmp_path / "c"), check_rc=1)
    assert "c.index" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["inspect"], ["inspect", "a", "b"], ["inspect", "x", "--nope"], [], ["frobnicate"]]
)
def test_usage_errors_exit_2(args):
    """Missing or extra arguments, unknown flags and unknown commands exit 2."""
    proc = est_ckpt(*args, check_rc=2)
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("est-ckpt: error:")


def test_help_lists_commands_and_each_command_its_flags():
    """`--help` prints every command, and `COMMAND --help` its usage and flags, with exit code 0."""
    overview = est_ckpt("--help", check_rc=0).stdout
    for command in ("inspect", "convert", "diff", "map", "verify", "demo"):
        assert f"\n  {command} " in overview
    detail = est_ckpt("convert", "--help", check_rc=0).stdout
    assert detail.startswith("usage: est-ckpt convert SRC DST --to=tf2|tf1")
    assert "--force:" in detail and "--json:" in detail
    assert "--values" not in detail
