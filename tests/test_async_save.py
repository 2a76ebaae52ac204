"""Saves that never stall training (`async_save=True`) and never lose work (`save_on_signal`), on real Estimators.

An asynchronous save copies the saved state to host memory and writes it with
est_ckpt's own writer in the background: every checkpoint it leaves must hold,
key by key and bit by bit, what TF's own Saver writes at the same step (the
synchronous scaffold saves through it), in both layouts, with a partitioned
variable, Adam's slots, a hash table and the name-based copy. A SIGTERM makes
the next step boundary save and training stop; a restarted job continues from
that step and ends where an uninterrupted run ends. (Kill -9 inside the
background write: `test_crash_consistency.py`.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import est_ckpt
from est_ckpt.errors import AsyncSaveError
from est_ckpt.format import checkpoint

pytestmark = pytest.mark.estimator
tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_estimator")
tf1 = tf.compat.v1
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model_fn(layout: str, async_save: bool):
    def model_fn(features, labels, mode, config):
        del labels
        w = tf1.get_variable("w", shape=[3, 2], initializer=tf1.random_normal_initializer(seed=1))
        emb = tf1.get_variable(
            "emb", shape=[7, 2], partitioner=tf1.fixed_size_partitioner(2),
            initializer=tf1.random_normal_initializer(seed=2),
        )  # fmt: skip
        table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=-1, name="vocab")
        step = tf1.train.get_or_create_global_step()
        loss = tf.reduce_sum(tf.matmul(features["x"], w) ** 2) + tf.reduce_sum(
            tf.nn.embedding_lookup(emb, [0, 6]) ** 2
        )
        minimize = tf1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
        with tf.control_dependencies([minimize]):  # the step after it, read once: the same in every run
            now = tf.reshape(step.read_value(), [1])
            train_op = table.insert(tf.strings.as_string(now), now)
        if layout == "tf2":
            scaffold = est_ckpt.make_tf2_scaffold(also_save_tf1=True, async_save=async_save, config=config)
        else:
            scaffold = est_ckpt.make_tf1_scaffold(async_save=async_save, config=config)
        return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op, scaffold=scaffold)

    return model_fn


def _input_fn():
    return tf.data.Dataset.from_tensors(({"x": np.ones((1, 3), np.float32)}, [[0.0]])).repeat()


def _estimator(model_dir, layout, async_save):
    config = tf.estimator.RunConfig(
        save_checkpoints_steps=2, keep_checkpoint_max=10, save_summary_steps=10**6, log_step_count_steps=10**6
    )
    return tf.estimator.Estimator(_model_fn(layout, async_save), str(model_dir), config=config)


def _contents(prefix: str) -> dict:
    reader = tf.train.load_checkpoint(prefix)
    out = {}
    for key in reader.get_variable_to_shape_map():
        if key == "_CHECKPOINTABLE_OBJECT_GRAPH":
            continue  # the same graph; its proto bytes may order fields differently
        out[key] = reader.get_tensor(key)
    return out


_COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


def _assert_same_checkpoints(sync_dir: str, async_dir: str, resaved: str = "") -> list[str]:
    """Both dirs name the same steps, each holding the same tensors. `resaved`: the step a restart saves again
    at start-up, which an asynchronous save keeps as it is on disk (TF rewrites it, counting one more save)."""
    sync_named = checkpoint.read_state_file(sync_dir)
    async_named = checkpoint.read_state_file(async_dir)
    assert [os.path.basename(p) for p in async_named] == [os.path.basename(p) for p in sync_named]
    for a, b in zip(sync_named, async_named):
        assert est_ckpt.verify_checkpoint(b).ok
        expected, got = _contents(a), _contents(b)
        assert sorted(got) == sorted(expected), b
        if os.path.basename(b) == resaved and _COUNTER in got:
            assert got.pop(_COUNTER) == expected.pop(_COUNTER) - 1
        # A table's export order is its own (`table-keys` / `table-values`; by name, `vocab-keys` / `vocab-values`).
        for keys in [k for k in expected if k.endswith("-keys") and k[: -len("keys")] + "values" in expected]:
            values = keys[: -len("keys")] + "values"
            assert dict(zip(got.pop(keys), got.pop(values))) == dict(
                zip(expected.pop(keys), expected.pop(values))
            )
        for key, value in expected.items():
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, (b, key)
            np.testing.assert_array_equal(got[key], value, err_msg=f"{b}: {key}")
    return [os.path.basename(p) for p in async_named]


@pytest.mark.parametrize("layout", ["tf2", "tf1"])
def test_async_checkpoints_hold_what_tfs_saver_writes_at_each_step(layout, tmp_path):
    sync_dir, async_dir = tmp_path / "sync", tmp_path / "async"
    for steps in (5, 2):  # then a restart continues, from the checkpoint written in the background
        _estimator(sync_dir, layout, False).train(_input_fn, steps=steps)
        _estimator(async_dir, layout, True).train(_input_fn, steps=steps)
        # train() returned with its last save on disk and named by the state file.
        resaved = "model.ckpt-5" if steps == 2 else ""
        named = _assert_same_checkpoints(str(sync_dir), str(async_dir), resaved=resaved)
        assert named[-1] == f"model.ckpt-{5 if steps == 5 else 7}"
    # The restart saves step 5 again at start-up, then every 2 steps from there: 7.
    assert named == ["model.ckpt-0", "model.ckpt-2", "model.ckpt-4", "model.ckpt-5", "model.ckpt-7"]
    for name in named:
        assert (async_dir / f"{name}.meta").exists()
    if layout == "tf2":  # the name-based copies, written after each background save
        assert _assert_same_checkpoints(str(sync_dir / "tf1"), str(async_dir / "tf1")) == named
        reader = tf.train.load_checkpoint(str(async_dir / "tf1"))
        assert reader.get_tensor("emb").shape == (7, 2) and int(reader.get_tensor("global_step")) == 7


def test_a_failed_background_write_stops_training_at_the_next_save(tmp_path):
    """The save of step 2 cannot be published (a directory holds its index's name): the save of step 4 raises
    it, and the state file never names step 2."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.ckpt-2.index").mkdir()
    with pytest.raises(
        AsyncSaveError, match=r"model\.ckpt-2: the checkpoint written in the background failed"
    ):
        _estimator(model_dir, "tf2", True).train(_input_fn, steps=5)
    assert [os.path.basename(p) for p in checkpoint.read_state_file(str(model_dir))] == ["model.ckpt-0"]
    assert est_ckpt.verify_checkpoint(str(model_dir / "model.ckpt-0")).ok


def test_bad_saving_arguments_are_one_clear_error():
    with tf.Graph().as_default():
        with pytest.raises(TypeError, match="async_save"):
            est_ckpt.make_tf2_scaffold(async_save="yes")
        with pytest.raises(TypeError, match="SIGKILL"):
            est_ckpt.make_tf2_scaffold(save_on_signal=(signal.SIGKILL,))
        with pytest.raises(TypeError, match="save_on_signal"):
            est_ckpt.make_tf1_scaffold(save_on_signal=("TERM",))
    errors = []

    def in_a_thread():
        with tf.Graph().as_default():
            try:
                est_ckpt.make_tf2_scaffold(save_on_signal=(signal.SIGUSR2,))
            except RuntimeError as e:
                errors.append(str(e))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "main thread" in errors[0]


# -- preemption ---------------------------------------------------------------------------------------------

_TRAIN = r"""
import json, os, sys, time
import numpy as np
import tensorflow as tf
import est_ckpt

model_dir, saving, pause_at, max_steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
tf1 = tf.compat.v1
tf.get_logger().setLevel("ERROR")


class PauseForTheSignal(tf1.train.SessionRunHook):
    # After step `pause_at`, says so and waits for the test's signal: the step the job is preempted at is known.
    def after_run(self, run_context, run_values):
        if run_context.session.run(tf1.train.get_global_step()) == pause_at:
            open(model_dir + ".ready", "w").close()
            while est_ckpt.preemption_signal() is None:
                time.sleep(0.01)


def model_fn(features, labels, mode, config):
    w = tf1.get_variable("w", shape=[3, 2], initializer=tf1.random_normal_initializer(seed=1))
    step = tf1.train.get_or_create_global_step()
    loss = tf.reduce_sum(tf.matmul(features["x"], w) ** 2)
    train_op = tf1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
    scaffold = est_ckpt.make_tf2_scaffold(async_save=saving == "async", save_on_signal=(15,), config=config)
    return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op, scaffold=scaffold)


def input_fn():
    return tf.data.Dataset.from_tensors(({"x": np.ones((1, 3), np.float32)}, [[0.0]])).repeat()


config = tf.estimator.RunConfig(save_checkpoints_steps=1000, save_summary_steps=10**6, log_step_count_steps=10**6)
hooks = [PauseForTheSignal()] if pause_at >= 0 else []
tf.estimator.Estimator(model_fn, model_dir, config=config).train(input_fn, max_steps=max_steps, hooks=hooks)
print(json.dumps({"signal": est_ckpt.preemption_signal(), "latest": tf.train.latest_checkpoint(model_dir)}))
"""


def _train(model_dir, mode: str, pause_at: int, max_steps: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _TRAIN, str(model_dir), mode, str(pause_at), str(max_steps)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=_ROOT,
        env=dict(os.environ, PYTHONPATH=_ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
    )


def _finish(proc: subprocess.Popen) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sigterm_saves_the_step_it_arrives_at_and_the_restart_ends_as_an_uninterrupted_run(mode, tmp_path):
    model_dir = tmp_path / "preempted"
    proc = _train(model_dir, mode, pause_at=4, max_steps=9)
    deadline = time.monotonic() + 600
    while not os.path.exists(f"{model_dir}.ready"):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the training process never reached step 4"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    result, log = _finish(proc)
    # It stopped cleanly at step 4 with that step saved, not at the last periodic save (step 0).
    assert result == {"signal": signal.SIGTERM, "latest": str(model_dir / "model.ckpt-4")}
    assert "est_ckpt: SIGTERM received" in log
    restarted, _ = _finish(_train(model_dir, mode, pause_at=-1, max_steps=9))
    assert restarted == {"signal": None, "latest": str(model_dir / "model.ckpt-9")}
    uninterrupted, _ = _finish(_train(tmp_path / "uninterrupted", mode, pause_at=-1, max_steps=9))
    expected, got = _contents(uninterrupted["latest"]), _contents(restarted["latest"])
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        if key != _COUNTER:  # the preempted job saved once more
            np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_a_process_that_saves_nothing_gets_the_signals_own_handler(tmp_path):
    """A worker or parameter server never opens a watched session: SIGTERM ends it as before."""
    script = (
        "import sys, time, tensorflow as tf, est_ckpt\n"
        "with tf.Graph().as_default():\n"
        "    tf.compat.v1.train.get_or_create_global_step()\n"
        "    est_ckpt.make_tf2_scaffold(save_on_signal=(15,))\n"
        f"open({str(tmp_path / 'ready')!r}, 'w').close()\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=_ROOT,
        env=dict(os.environ, PYTHONPATH=_ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    deadline = time.monotonic() + 300
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM
