"""`make_tf2_scaffold` under distribution: MirroredStrategy over two CPUs, and a real chief/worker/ps cluster.

The model is the guide's `var` trained by gradient descent on `loss = var`
(learning rate 1): each step lowers `var` by 1, so every checkpoint tells
whether restore and resume were right (`var == 3 - step` from the legacy
fixture's `var = 2` at step 1).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.fixtures import VV

tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

import est_ckpt  # noqa: E402

pytestmark = pytest.mark.estimator

GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER_BUDGET_SECS = 600  # a bound for a hung cluster on two loaded cores, not a speed claim


def _values(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k != GRAPH}


def _model_fn(features, labels, mode):
    v = tf1.get_variable("var", shape=[], initializer=tf1.constant_initializer(0))
    step = tf1.train.get_or_create_global_step()
    loss = v * tf.reduce_mean(features["x"])
    train_op = tf1.train.GradientDescentOptimizer(1.0).minimize(loss, global_step=step)
    return tf.estimator.EstimatorSpec(
        mode, loss=loss, train_op=train_op, scaffold=est_ckpt.make_tf2_scaffold()
    )


def _input_fn():
    return tf.data.Dataset.from_tensors(({"x": [1.0]}, [1.0])).repeat()


def test_mirrored_strategy_two_cpus_restores_legacy_and_resumes(ckpts, tmp_path):
    """With MirroredStrategy over two CPUs, a legacy model dir is restored by name, then training resumes object-based."""
    model_dir = str(tmp_path / "mirrored")
    shutil.copytree(ckpts("estimator_tf1"), model_dir)  # var = 2, global_step = 1
    # Built in a graph: in eager, MirroredStrategy probes its devices and there is one logical CPU.
    with tf.Graph().as_default():
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    config = tf.estimator.RunConfig(
        train_distribute=strategy,
        session_config=tf1.ConfigProto(device_count={"CPU": 2}),
        save_summary_steps=10**9,
        log_step_count_steps=None,
    )
    est = tf.estimator.Estimator(_model_fn, model_dir, config=config)
    est.train(_input_fn, steps=2)
    assert est_ckpt.read_checkpoint(model_dir).format == "tf2"
    assert _values(model_dir) == {"var_list/var" + VV: 0.0, "step" + VV: 3, "save_counter" + VV: 2}
    est.train(_input_fn, steps=1)
    assert _values(model_dir) == {"var_list/var" + VV: -1.0, "step" + VV: 4, "save_counter" + VV: 4}


# -- a real cluster ----------------------------------------------------------------------------

_TASK = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.path.insert(0, {root!r})
    import tensorflow as tf
    import est_ckpt
    tf1 = tf.compat.v1
    tf.get_logger().setLevel("ERROR")
    model_dir, max_steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

    task_type = json.loads(os.environ["TF_CONFIG"])["task"]["type"]
    ran = os.path.join(os.path.dirname(model_dir), "{{}}_ran")

    class Pace(tf1.train.SessionRunHook):
        # With a pause, chief and worker each wait for the other's first step, so both surely train
        # however slowly either starts (at most 300 s: then the test's assertions say who did not).
        steps = 0
        def after_run(self, run_context, run_values):
            Pace.steps += 1
            open(ran.format(task_type), "w").close()
            if pause:
                other = ran.format("worker" if task_type == "chief" else "chief")
                deadline = time.monotonic() + 300
                while not os.path.exists(other) and time.monotonic() < deadline:
                    time.sleep(0.1)
            time.sleep(pause)

    def model_fn(features, labels, mode):
        v = tf1.get_variable("var", shape=[], initializer=tf1.constant_initializer(0))
        step = tf1.train.get_or_create_global_step()
        loss = v * tf.reduce_mean(features["x"])
        train_op = tf1.train.GradientDescentOptimizer(1.0, use_locking=True).minimize(loss, global_step=step)
        return tf.estimator.EstimatorSpec(
            mode, loss=loss, train_op=train_op, scaffold=est_ckpt.make_tf2_scaffold(), training_hooks=[Pace()]
        )

    def input_fn():
        return tf.data.Dataset.from_tensors(({{"x": [1.0]}}, [1.0])).repeat()

    config = tf.estimator.RunConfig(save_summary_steps=None, log_step_count_steps=None,
                                    save_checkpoints_steps=10**6, session_creation_timeout_secs=60)
    est = tf.estimator.Estimator(model_fn, model_dir, config=config)
    tf.estimator.train_and_evaluate(
        est, tf.estimator.TrainSpec(input_fn, max_steps=max_steps),
        tf.estimator.EvalSpec(input_fn, steps=1, start_delay_secs=0, throttle_secs=10**6))
    print(json.dumps({{"task": config.task_type, "local_steps": Pace.steps}}), flush=True)
    """
)


def _free_ports(count):
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class _Cluster:
    """Starts cluster tasks as subprocesses and kills whatever is left on exit."""

    def __init__(self, workdir, script, deadline):
        self.workdir, self.script, self.deadline = workdir, script, deadline
        self.procs = {}

    def start(self, name, cluster, task_type, model_dir, max_steps, pause):
        env = dict(
            os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": task_type, "index": 0}})
        )
        log = open(os.path.join(self.workdir, f"{name}.log"), "w")
        self.procs[name] = (
            subprocess.Popen(
                [sys.executable, self.script, model_dir, str(max_steps), str(pause)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            ),
            log,
        )

    def log(self, name):
        with open(os.path.join(self.workdir, f"{name}.log")) as f:
            return f.read()

    def wait(self, name):
        proc, _ = self.procs[name]
        try:
            code = proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} did not finish within the time budget; its log:\n{self.log(name)[-3000:]}")
        assert code == 0, f"{name} exited with {code}; its log:\n{self.log(name)[-3000:]}"
        return [json.loads(line) for line in self.log(name).splitlines() if line.startswith('{"task"')][-1]

    def wait_for(self, predicate, what):
        while not predicate():
            dead = {n: p.returncode for n, (p, _) in self.procs.items() if p.poll() not in (None, 0)}
            if dead:
                name = next(iter(dead))
                pytest.fail(f"{name} died ({dead[name]}) while waiting for {what}:\n{self.log(name)[-3000:]}")
            if time.monotonic() > self.deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.2)

    def kill(self, name):
        proc, log = self.procs.pop(name)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()

    def close(self):
        for name in list(self.procs):
            self.kill(name)


@pytest.mark.parametrize("saving", ["sync", "async"])
def test_chief_worker_ps_cluster_saves_object_based_and_restarted_chief_resumes(ckpts, tmp_path, saving):
    """A chief/worker/ps cluster restores a legacy model dir, the chief saves object-based, a restarted chief resumes
    (`async`: saves written in the background, with `save_on_signal` on every task)."""
    try:
        ports = _free_ports(5)
    except OSError as e:
        pytest.skip(f"cannot open loopback TCP ports in this sandbox: {e}")
    model_dir = str(tmp_path / "cluster")
    shutil.copytree(ckpts("estimator_tf1"), model_dir)  # name-based: var = 2, global_step = 1
    script = str(tmp_path / "task.py")
    task = _TASK.format(root=ROOT)
    if saving == "async":
        scaffold = "scaffold=est_ckpt.make_tf2_scaffold()"
        assert scaffold in task
        task = task.replace(
            scaffold, "scaffold=est_ckpt.make_tf2_scaffold(async_save=True, save_on_signal=(15,))"
        )
    with open(script, "w") as f:
        f.write(task)
    addr = [f"127.0.0.1:{p}" for p in ports]
    cluster = _Cluster(str(tmp_path), script, time.monotonic() + CLUSTER_BUDGET_SECS)
    try:
        # Phase 1: chief + worker + ps. The worker starts once the chief has initialized the
        # variables (its first save), so it joins at once instead of sleeping 30 s between polls.
        spec = {"chief": [addr[0]], "worker": [addr[1]], "ps": [addr[2]]}
        cluster.start("ps", spec, "ps", model_dir, 21, 0.0)
        cluster.start("chief", spec, "chief", model_dir, 21, 0.05)
        state = os.path.join(model_dir, "checkpoint")
        mtime = os.path.getmtime(state)
        cluster.wait_for(lambda: os.path.getmtime(state) != mtime, "the chief's first save")
        cluster.start("worker", spec, "worker", model_dir, 21, 0.05)
        chief = cluster.wait("chief")
        worker = cluster.wait("worker")
        cluster.kill("ps")
        assert chief["local_steps"] >= 1 and worker["local_steps"] >= 1, (chief, worker)

        latest = tf.train.latest_checkpoint(model_dir)
        assert est_ckpt.read_checkpoint(latest).format == "tf2"
        saved = _values(latest)
        assert set(saved) == {"var_list/var" + VV, "step" + VV, "save_counter" + VV}
        step, var = int(saved["step" + VV]), float(saved["var_list/var" + VV])
        named = int(latest.rsplit("-", 1)[1])
        # The chief names a save after the step it read just before saving; the worker may run steps
        # during the save, so only bounds are certain: the saved step is at least the name's, and since
        # every step lowers var by 1 before raising the step (from var 2 at step 1), var <= 3 - named.
        assert step >= named >= 21 and var <= 3 - named, (latest, saved)

        # Phase 2: a restarted chief (fresh ps: the variables live only in the checkpoint) resumes.
        spec = {"chief": [addr[3]], "ps": [addr[4]]}
        cluster.start("ps2", spec, "ps", model_dir, step + 3, 0.0)
        cluster.start("chief2", spec, "chief", model_dir, step + 3, 0.0)
        cluster.wait("chief2")
        cluster.kill("ps2")
        resumed = _values(model_dir)
        # The restarted chief's saves are counted on from the checkpoint's count.
        assert resumed.pop("save_counter" + VV) > saved["save_counter" + VV]
        assert resumed == {"var_list/var" + VV: var - 3, "step" + VV: step + 3}
    finally:
        cluster.close()
