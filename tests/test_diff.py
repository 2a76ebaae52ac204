"""Tests of `est_ckpt.diff_checkpoints` and `est-ckpt diff`."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import est_ckpt
from est_ckpt.commands.diff import to_json
from est_ckpt.errors import InvalidArgumentError
from tests import fixtures as fx
from tests.cli import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EST_CKPT = os.path.join(os.path.dirname(sys.executable), "est-ckpt")


def _save(directory: str, name: str, values: dict) -> str:
    """Saves `{name: numpy value}` with a name-based Saver; returns the prefix."""
    tf, tf1 = fx._tf()
    with tf.Graph().as_default():
        variables = {k: tf1.Variable(v, name=k) for k, v in values.items()}
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return tf1.train.Saver(var_list=variables).save(sess, os.path.join(directory, name))


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    """Name-based checkpoints that differ from `base` in one way each."""
    d = str(tmp_path_factory.mktemp("diff"))
    base = {"x": np.array([1.0, 2.0, 3.0], np.float32), "s": np.array([b"a", b"b"], object)}
    base["n"] = np.array([np.nan, np.inf, 1.0])
    return {
        "base": _save(d, "base", base),
        "value": _save(d, "value", {**base, "x": np.array([1.0, 2.5, 3.0], np.float32)}),
        "dtype": _save(d, "dtype", {**base, "x": np.array([1.0, 2.0, 3.0], np.float64)}),
        "shape": _save(d, "shape", {**base, "x": np.array([1.0, 2.0], np.float32)}),
        "string": _save(d, "string", {**base, "s": np.array([b"a", b"c"], object)}),
        "nan": _save(d, "nan", {**base, "n": np.array([0.0, np.inf, 1.0])}),
        "extra": _save(d, "extra", {**base, "y": np.int64(3)}),
    }


def test_tf1_and_tf2_of_the_same_variables_are_equal(ckpts):
    """A Saver checkpoint equals the guide's object-based one of the same values (tf1 key vs full_name)."""
    result = est_ckpt.diff_checkpoints(ckpts.prefix("tf1"), ckpts.prefix("session_var_list"))
    assert result.equal
    assert to_json(result) == {"only_in_a": [], "only_in_b": [], "changed": []}


@pytest.mark.estimator
def test_step_matches_global_step_across_formats(ckpts, tmp_path):
    """`global_step` matches the TF2 root's `step`, and a conversion's output equals its source."""
    src = ckpts.prefix("estimator_tf1")
    dst = est_ckpt.convert_checkpoint(src, str(tmp_path / "c"), to="tf2")
    assert est_ckpt.diff_checkpoints(src, dst).equal
    tf2 = ckpts.prefix("estimator_tf2")  # var = 4.0 there, 2.0 in the TF1 dir
    result = est_ckpt.diff_checkpoints(src, tf2)
    assert to_json(result) == {
        "only_in_a": [],
        "only_in_b": [],
        "changed": [{"name": "var", "why": "value", "max_abs_diff": 2.0, "num_different": 1}],
    }


def test_partitioned_variable_matches_its_parts(ckpts):
    """A sliced `emb` equals the same variable saved object-based part by part."""
    assert est_ckpt.diff_checkpoints(ckpts.prefix("partitioned"), ckpts.prefix("partitioned_tf2")).equal


def test_parts_split_along_axis_1_match_their_variable(ckpts, tmp_path):
    """Parts saved one by one along axis 1 equal TF's sliced `emb`, and their conversion.

    Diff used to join parts along axis 0 only and reported these as `emb` only in A and three keys only in B.
    """
    saver = ckpts.prefix("partitioned", axis=1)
    parts = ckpts.prefix("partitioned_tf2", axis=1)
    assert to_json(est_ckpt.diff_checkpoints(saver, parts)) == {
        "only_in_a": [],
        "only_in_b": [],
        "changed": [],
    }
    converted = est_ckpt.convert_checkpoint(parts, str(tmp_path / "c"), to="tf1")
    assert est_ckpt.diff_checkpoints(converted, parts).equal
    other = _save(
        str(tmp_path), "other", {"emb": np.zeros((10, 4), np.float32), "dense/kernel": np.zeros((4, 2))}
    )
    changed = est_ckpt.diff_checkpoints(other, parts).changed
    assert [c["name"] for c in changed] == ["dense/kernel", "emb"]
    assert changed[1] == {"name": "emb", "why": "value", "max_abs_diff": 39.0, "num_different": 39}


def test_value_differences_and_atol(ckpts):
    """Values that differ report the max abs difference; `atol` at least that large makes them equal."""
    result = est_ckpt.diff_checkpoints(ckpts.prefix("tf1"), ckpts.prefix("tf2"))  # 1,2,3 vs 5,6,7
    assert [(c["name"], c["why"], c["max_abs_diff"]) for c in result.changed] == [
        ("a", "value", 4.0),
        ("b", "value", 4.0),
        ("scoped/c", "value", 4.0),
    ]
    assert est_ckpt.diff_checkpoints(ckpts.prefix("tf1"), ckpts.prefix("tf2"), atol=4.0).equal
    with pytest.raises(InvalidArgumentError, match="atol"):
        est_ckpt.diff_checkpoints(ckpts.prefix("tf1"), ckpts.prefix("tf2"), atol=-1)


def test_each_kind_of_change(variants):
    """dtype, shape, value, string and NaN changes and extra variables are each reported as such."""
    base = variants["base"]
    assert est_ckpt.diff_checkpoints(base, base).equal
    assert to_json(est_ckpt.diff_checkpoints(base, variants["value"]))["changed"] == [
        {"name": "x", "why": "value", "max_abs_diff": 0.5, "num_different": 1}
    ]
    assert to_json(est_ckpt.diff_checkpoints(base, variants["dtype"]))["changed"] == [
        {"name": "x", "why": "dtype", "a": "float32", "b": "float64"}
    ]
    assert to_json(est_ckpt.diff_checkpoints(base, variants["shape"]))["changed"] == [
        {"name": "x", "why": "shape", "a": [3], "b": [2]}
    ]
    assert to_json(est_ckpt.diff_checkpoints(base, variants["string"]))["changed"] == [
        {"name": "s", "why": "value", "max_abs_diff": None, "num_different": 1}
    ]
    nan = to_json(est_ckpt.diff_checkpoints(base, variants["nan"]))["changed"]
    assert nan == [{"name": "n", "why": "value", "max_abs_diff": float("inf"), "num_different": 1}]
    extra = est_ckpt.diff_checkpoints(variants["extra"], base)
    assert (extra.only_in_a, extra.only_in_b, extra.changed) == (("y",), (), ())


def test_duplicate_full_names_fall_back_to_keys(ckpts):
    """Variables whose full_name is shared are matched by key, so nothing is silently merged."""
    result = est_ckpt.diff_checkpoints(ckpts.prefix("duplicate_names"), ckpts.prefix("tf1"))
    assert result.only_in_a == ("vars/0/.ATTRIBUTES/VARIABLE_VALUE", "vars/1/.ATTRIBUTES/VARIABLE_VALUE")
    assert result.only_in_b == ("a", "b", "scoped/c")


def test_cli_exit_codes_and_json(ckpts, variants):
    """`est-ckpt diff` exits 0 when equal, 1 when different or unreadable, 2 on usage errors; --json has the contract's shape."""
    same = run_cli("diff", ckpts.prefix("tf1"), ckpts.prefix("session_var_list"))
    assert same.returncode == 0 and same.stdout.strip().endswith("equal")
    differ = run_cli("diff", variants["base"], variants["value"], "--json")
    assert differ.returncode == 1
    assert json.loads(differ.stdout) == {
        "only_in_a": [],
        "only_in_b": [],
        "changed": [{"name": "x", "why": "value", "max_abs_diff": 0.5, "num_different": 1}],
    }
    assert run_cli("diff", variants["base"], variants["value"], "--atol=0.5").returncode == 0
    text = run_cli("diff", variants["extra"], variants["dtype"]).stdout
    assert "only in A: y" in text and "changed x: dtype: float32 -> float64" in text
    assert run_cli("diff", variants["base"]).returncode == 2
    assert run_cli("diff", variants["base"], variants["value"], "--atol=-1").returncode == 2
    missing = run_cli("diff", variants["base"], variants["base"] + "-nope")  # bad input: exit 1, stderr only
    assert missing.returncode == 1 and "no such checkpoint" in missing.stderr and missing.stdout == ""


def test_every_dtype_compares_equal_across_formats(ckpts):
    """The Saver and object-based checkpoints of every dtype (strings, bfloat16, complex, uint64...) compare equal."""
    result = est_ckpt.diff_checkpoints(ckpts.prefix("dtypes"), ckpts.prefix("dtypes_tf2"))
    assert to_json(result) == {"only_in_a": [], "only_in_b": [], "changed": []}
