"""Every flagfile in configs/ runs the example launch script for real (subprocess, tiny training runs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from est_ckpt.format import checkpoint

pytestmark = [pytest.mark.tensorflow, pytest.mark.estimator]  # runs the example launch script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")
LEGACY_STEPS = 30
CONFIG_STEPS = 20  # --train_steps of the training configs
KERNEL = "classifier/hidden/kernel"


def run_train(*args: str, expect_rc: int = 0) -> subprocess.CompletedProcess:
    """Runs `python -m est_ckpt.examples.train ARGS` from the repository root."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-m", "est_ckpt.examples.train", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == expect_rc, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc


def result_of(proc: subprocess.CompletedProcess) -> dict:
    """The JSON summary the script prints last."""
    return json.loads(proc.stdout.strip().splitlines()[-1])


def config(name: str) -> str:
    return f"--flagfile={os.path.join(CONFIGS, name)}"


def values(prefix: str) -> dict:
    """`{tf1 name: value}` of a checkpoint of either format, read without TensorFlow (no `save_counter`)."""
    info = checkpoint.read_checkpoint(prefix)
    return {
        t.name: info.read_tensor(k)
        for k, t in info.variables.items()
        if t.name and t.object_path != "save_counter"
    }


def checkpoint_files(model_dir: str) -> list[str]:
    return sorted(n for n in os.listdir(model_dir) if n.startswith("model.ckpt") or n == "checkpoint")


@pytest.fixture(scope="module")
def legacy_dir(tmp_path_factory) -> str:
    """A model dir the example script trained with name-based (TF1) checkpoints."""
    model_dir = str(tmp_path_factory.mktemp("configs") / "legacy")
    result = result_of(
        run_train(f"--model_dir={model_dir}", "--ckpt_format=tf1", f"--train_steps={LEGACY_STEPS}")
    )
    assert (result["format"], result["step"]) == ("tf1", LEGACY_STEPS)
    return model_dir


def copy_of(model_dir: str, tmp_path) -> str:
    dst = str(tmp_path / os.path.basename(model_dir))
    shutil.copytree(model_dir, dst)
    return dst


TESTED = {
    "migrate_in_place.flags",
    "warm_start_renames.flags",
    "dual_save.flags",
    "evaluate_only.flags",
    "preemptible.flags",
}


def test_every_config_has_a_test():
    """Each flagfile in configs/ is exercised by a test of this module."""
    assert set(n for n in os.listdir(CONFIGS) if n.endswith(".flags")) == TESTED


@pytest.mark.parametrize("name", sorted(TESTED))
def test_config_is_a_commented_flagfile(name):
    """Each config holds only `#` comments, blank lines and `--flag=value` lines, and says how to run it."""
    with open(os.path.join(CONFIGS, name)) as f:
        lines = f.read().splitlines()
    for line in lines:
        assert not line.strip() or line.startswith("#") or re.match(r"^--[a-z_]+=\S+$", line), line
    assert sum(line.startswith("#") for line in lines) >= 3
    assert any(f"--flagfile=configs/{name}" in line for line in lines)


def test_migrate_in_place(legacy_dir, tmp_path):
    """migrate_in_place.flags continues a legacy model dir from its name-based checkpoint and saves object-based."""
    model_dir = copy_of(legacy_dir, tmp_path)
    legacy_prefix = checkpoint.latest_in_directory(model_dir)
    before = values(legacy_prefix)

    result = result_of(run_train(config("migrate_in_place.flags"), f"--model_dir={model_dir}"))

    # The global step was restored by name: training went on from the legacy step.
    assert (result["format"], result["step"]) == ("tf2", LEGACY_STEPS + CONFIG_STEPS)
    # Estimator saves the restored step again when training starts (object-based now, TF's
    # choice of prefix): it holds exactly the legacy values, so the restore by name was exact.
    resaved = values(legacy_prefix)
    assert set(resaved) == set(before)
    for name, value in before.items():
        np.testing.assert_array_equal(resaved[name], value)
    after = values(result["checkpoint"])
    assert after["global_step"] == LEGACY_STEPS + CONFIG_STEPS
    assert set(before) == set(after)  # same variables, now object-based
    with open(os.path.join(model_dir, "flags.txt")) as f:
        assert "--ckpt_format=tf2\n" in f.read()
    with open(os.path.join(model_dir, "flags.txt.1")) as f:
        assert "--ckpt_format=tf1\n" in f.read()  # the legacy run's flags are kept


def test_warm_start_renames(legacy_dir, tmp_path):
    """warm_start_renames.flags starts the renamed model from the old one's trained weights, not its slots or step."""
    model_dir = str(tmp_path / "renamed")
    result = result_of(
        run_train(
            config("warm_start_renames.flags"), f"--model_dir={model_dir}", f"--warm_start_from={legacy_dir}"
        )
    )
    assert (result["format"], result["step"]) == ("tf2", CONFIG_STEPS)
    legacy = values(checkpoint.latest_in_directory(legacy_dir))
    start = values(os.path.join(model_dir, "model.ckpt-0"))  # saved before the first step
    for name in ("hidden/kernel", "hidden/bias", "logits/kernel", "logits/bias"):
        np.testing.assert_array_equal(start[f"v2/classifier/{name}"], legacy[f"classifier/{name}"])
    assert not np.any(start["v2/classifier/hidden/kernel/Adam"])  # optimizer slots start fresh
    assert start["global_step"] == 0
    assert not any(n.startswith("classifier/") for n in start)


@pytest.fixture(scope="module")
def dual_run(tmp_path_factory) -> tuple[str, dict]:
    """A run of dual_save.flags (with one flag overridden): its model dir and summary."""
    model_dir = str(tmp_path_factory.mktemp("configs") / "dual")
    proc = run_train(config("dual_save.flags"), f"--model_dir={model_dir}", "--learning_rate=0.02")
    return model_dir, result_of(proc)


def test_dual_save(dual_run):
    """dual_save.flags writes each checkpoint object-based and, at the same step, name-based under tf1/."""
    model_dir, result = dual_run
    assert (result["format"], result["step"]) == ("tf2", CONFIG_STEPS)
    tf1_prefix = result["tf1_copy"]["checkpoint"]
    assert tf1_prefix == os.path.join(model_dir, "tf1", f"model.ckpt-{CONFIG_STEPS}")
    assert checkpoint.read_checkpoint(os.path.join(model_dir, "tf1")).format == "tf1"

    import tensorflow as tf

    # TF's own reader: the tf1 copy's keys are the variable names, with the same values as the tf2 checkpoint.
    reader = tf.train.load_checkpoint(tf1_prefix)
    tf2 = values(result["checkpoint"])
    assert reader.get_tensor("global_step") == CONFIG_STEPS
    assert set(reader.get_variable_to_shape_map()) == set(tf2)
    for name, value in tf2.items():
        np.testing.assert_array_equal(reader.get_tensor(name), value)


def test_preemptible(tmp_path):
    """preemptible.flags saves in the background (both layouts) and returns with the last step on disk, twice."""
    model_dir = str(tmp_path / "preemptible")
    for run in (1, 2):
        result = result_of(run_train(config("preemptible.flags"), f"--model_dir={model_dir}"))
        assert (result["format"], result["step"]) == ("tf2", CONFIG_STEPS * run)
        assert result["tf1_copy"]["checkpoint"] == os.path.join(
            model_dir, "tf1", f"model.ckpt-{CONFIG_STEPS * run}"
        )
    named = checkpoint.read_state_file(model_dir)
    assert named[-1] == os.path.join(model_dir, f"model.ckpt-{2 * CONFIG_STEPS}")
    tf2, copy = values(named[-1]), values(os.path.join(model_dir, "tf1"))
    assert sorted(copy) == sorted(tf2)
    for name, value in tf2.items():
        np.testing.assert_array_equal(copy[name], value)


def test_flags_txt_reproduces_a_run(dual_run, tmp_path):
    """`--flagfile=<model_dir>/flags.txt` replays a run: the replay resolves to the same flags."""
    first, _ = dual_run
    second = str(tmp_path / "second")
    result = result_of(run_train(f"--flagfile={first}/flags.txt", f"--model_dir={second}", "--train_steps=2"))
    assert (result["step"], result["tf1_copy"]["format"]) == (2, "tf1")
    with open(os.path.join(first, "flags.txt")) as f:
        a = f.read()
    with open(os.path.join(second, "flags.txt")) as f:
        b = f.read()
    assert "--learning_rate=0.02\n" in a
    assert a.replace(first, second).replace(f"--train_steps={CONFIG_STEPS}", "--train_steps=2") == b


def test_evaluate_only(legacy_dir, tmp_path):
    """evaluate_only.flags scores a legacy model dir's trained weights and writes no checkpoint."""
    model_dir = copy_of(legacy_dir, tmp_path)
    files = checkpoint_files(model_dir)
    with open(os.path.join(model_dir, "flags.txt")) as f:
        flags_txt = f.read()

    result = result_of(run_train(config("evaluate_only.flags"), f"--model_dir={model_dir}"))

    assert result["mode"] == "evaluate"
    assert result["metrics"]["global_step"] == LEGACY_STEPS
    # The score of the legacy weights themselves (read by TF, the network run in numpy): they
    # were restored by name. One borderline example of the 300 may round the other way.
    import tensorflow as tf

    from est_ckpt import examples

    w = tf.train.load_checkpoint(model_dir).get_tensor
    x, y = examples.blobs(300, seed=1)
    hidden = np.maximum(x @ w(KERNEL) + w("classifier/hidden/bias"), 0)
    logits = hidden @ w("classifier/logits/kernel") + w("classifier/logits/bias")
    expected = float(np.mean(logits.argmax(-1) == y))
    assert abs(result["metrics"]["accuracy"] - expected) <= 1 / 300 + 1e-6
    assert checkpoint_files(model_dir) == files
    with open(os.path.join(model_dir, "flags.txt")) as f:
        assert f.read() == flags_txt


def test_initial_weights_depend_only_on_seed(tmp_path):
    """--seed fixes the initial weights across processes (Keras alone draws a new seed in each)."""
    first = {}
    for run, seed in (("a", 0), ("b", 0), ("c", 1)):
        model_dir = str(tmp_path / run)
        run_train(f"--model_dir={model_dir}", "--ckpt_format=tf1", "--train_steps=1", f"--seed={seed}")
        # The checkpoint Estimator writes before the first step holds the initial weights.
        first[run] = values(os.path.join(model_dir, "model.ckpt-0"))
    assert set(first["a"]) == set(first["b"]) and KERNEL in first["a"]
    for name, value in first["a"].items():
        np.testing.assert_array_equal(first["b"][name], value)
    assert not np.array_equal(first["c"][KERNEL], first["a"][KERNEL])


def test_evaluate_only_refuses_an_empty_model_dir(tmp_path):
    """evaluate_only.flags on a model dir without checkpoints is a usage error (exit 2) naming the dir."""
    proc = run_train(config("evaluate_only.flags"), f"--model_dir={tmp_path}", expect_rc=2)
    assert f"--model_dir={tmp_path} holds no checkpoint to evaluate" in proc.stderr
