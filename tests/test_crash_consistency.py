"""Crash consistency: SIGKILL at random moments never leaves a checkpoint that lies.

Training: an Estimator whose `model_fn` uses `make_tf2_scaffold(also_save_tf1=True)`
and saves every step is killed with SIGKILL at random moments (during start-up,
restore, training and saves), `EST_CKPT_CRASH_KILLS` times (default 20). After
every kill the model dir and its `tf1/` dir each restore, with TensorFlow's own
reader, to their latest recorded step with the values of that step; their
`checkpoint` state files name only complete checkpoints; no step is ever lost
(the model dir's latest step never goes back, `tf1/` is at most one behind it);
and every `.index` on disk verifies. Then training resumes and finishes normally.

The same training is also killed before each step of the name-based copy in
`tf1/` in turn (every est_ckpt and TensorFlow file-system step there, as a first
instrumented run lists them), with the same checks, and resumes.

To pay TensorFlow's import once rather than per kill, a zygote process imports
it and forks one child per training run; a child is killed by its pid, or kills
itself at its crash point.

Conversion: `est-ckpt convert` is killed before each of its file-system steps
in turn (every temporary write, link, rename, remove and state-file write, as a
first instrumented run lists them): SRC stays unchanged, DST is the old one, absent
or whole, the state file names no partial checkpoint, and a rerun converts and
removes the temporary files left behind.

Distributed: the chief of a chief/worker/ps cluster on loopback (the scaffold
tests' task and helpers) is SIGKILLed right after a save and started again; it
resumes from that object-based checkpoint and the worker finishes without error.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from est_ckpt import convert_checkpoint, diff_checkpoints, verify_checkpoint
from est_ckpt.format import checkpoint
from tests.fixtures import VV

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLS = int(os.environ.get("EST_CKPT_CRASH_KILLS", "20"))
SEED = int(os.environ.get("EST_CKPT_CRASH_SEED", "7"))
KEEP = 3  # keep_checkpoint_max: old checkpoints are deleted while we kill

TF2_KEYS = ("step/.ATTRIBUTES/VARIABLE_VALUE", "var_list/w/.ATTRIBUTES/VARIABLE_VALUE")
TF1_KEYS = ("global_step", "w")

# Instruments a child process (never the library): each call of one of the named functions of a
# module is a file-system mutation step, logged before it runs; the `die_at`-th step never runs,
# the child SIGKILLs itself instead (0: never). Paths are logged relative to `root`, temporary
# names without their unique part, so that two runs' steps compare equal.
_STEPS = r"""
import json, os, re, signal

_done = [0]
# est_ckpt's `.tmp-est-ckpt-<host>-<pid>-<hex>` and TF's `checkpoint.tmp<uuid>`.
TEMP_TAG = r"\.tmp-est-ckpt-[A-Za-z0-9._-]+-\d+-[0-9a-f]{8}|(?<=checkpoint)\.tmp[0-9a-f]{32}$"


def count_steps(module, paths_of, log_path, die_at, root, counts=lambda paths: True):
    log = open(log_path, "a")

    def wrap(name, n_paths):
        real = getattr(module, name)

        def step(*args, **kwargs):
            paths = [re.sub(TEMP_TAG, ".tmp", os.path.relpath(str(a), root)) for a in args[:n_paths]]
            if counts(paths):
                _done[0] += 1
                log.write(json.dumps([name, *paths]) + "\n")
                log.flush()
                if _done[0] == die_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(module, name, step)

    for name, n_paths in paths_of.items():
        wrap(name, n_paths)
"""

# The mutations of est_ckpt.fileio and of TensorFlow's file_io (the Saver's state file and
# deletions), each with how many of its leading arguments are paths.
_FILEIO_MUTATIONS = {
    "makedirs": 1,
    "write_new": 1,
    "write_new_with": 1,
    "write_atomic": 1,
    "link_or_copy": 2,
    "rename": 2,
    "remove": 1,
}
_TF_MUTATIONS = {"write_string_to_file": 1, "rename": 2, "delete_file": 1, "recursive_create_dir": 1}
_ZYGOTE = (
    _STEPS
    + r"""
import json, os, sys, traceback
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
import tensorflow_estimator  # noqa: F401 - imported once, before any fork
from tensorflow.python.lib.io import file_io
from est_ckpt import fileio
from est_ckpt.tf.scaffold import make_tf2_scaffold

KEEP = int(sys.argv[1])
FILEIO_MUTATIONS, TF_MUTATIONS = json.loads(sys.argv[2]), json.loads(sys.argv[3])


def in_tf1(paths):
    return any(p == "tf1" or p.startswith("tf1" + os.sep) for p in paths)


def in_writer(paths):
    # Every step of an asynchronous save's background write (the checkpoint, its state file, retention, the copy).
    import threading

    return threading.current_thread().name == "est_ckpt-checkpoint-writer"


def train(model_dir, steps, async_save=False):
    tf1 = tf.compat.v1

    def input_fn():
        return tf.data.Dataset.from_tensors(({"x": [[1.0]]}, [[0.0]])).repeat()

    def model_fn(features, labels, mode):
        w = tf1.get_variable("w", shape=[], initializer=tf1.zeros_initializer())
        step = tf1.train.get_or_create_global_step()
        # loss = w and a learning rate of 1: after n steps w == -n, so values tell the step.
        train_op = tf1.train.GradientDescentOptimizer(1.0).minimize(w, global_step=step)
        return tf.estimator.EstimatorSpec(
            mode, loss=w, train_op=train_op, scaffold=make_tf2_scaffold(also_save_tf1=True, async_save=async_save)
        )

    config = tf.estimator.RunConfig(
        save_checkpoints_steps=1, keep_checkpoint_max=KEEP, save_summary_steps=10**9, log_step_count_steps=10**9
    )
    tf.estimator.Estimator(model_fn, model_dir, config=config).train(input_fn, steps=steps)


out = sys.stdout
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "start":
        pid = os.fork()
        if pid == 0:
            fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            code = 0
            if cmd.get("steps_log"):
                # Only the name-based copy's steps count (those with a path in `<model_dir>/tf1/`), or, for an
                # asynchronous save, every step of its background write.
                counts = in_writer if cmd.get("async_save") else in_tf1
                for module, mutations in ((fileio, FILEIO_MUTATIONS), (file_io, TF_MUTATIONS)):
                    count_steps(module, mutations, cmd["steps_log"], cmd["die_at"], cmd["model_dir"], counts)
            try:
                train(cmd["model_dir"], cmd["steps"], cmd.get("async_save", False))
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        out.write(json.dumps({"pid": pid}) + "\n")
    elif cmd["op"] == "wait":
        # WNOWAIT leaves the child a zombie: its pid is not reused until "reap".
        info = os.waitid(os.P_PID, cmd["pid"], os.WEXITED | (0 if cmd["reap"] else os.WNOWAIT))
        killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
        out.write(json.dumps({"signal": info.si_status if killed else None,
                              "code": None if killed else info.si_status}) + "\n")
    elif cmd["op"] == "reap":
        for pid in cmd["pids"]:
            os.waitpid(pid, 0)
        out.write("{}\n")
    out.flush()
"""
)


class Zygote:
    """A process that imported TensorFlow once and forks a training child on request."""

    def __init__(self, log_path: str):
        self._stderr = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _ZYGOTE,
                str(KEEP),
                json.dumps(_FILEIO_MUTATIONS),
                json.dumps(_TF_MUTATIONS),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=_ROOT,
            env=dict(os.environ, PYTHONPATH=_ROOT, TF_CPP_MIN_LOG_LEVEL="2"),
        )

    def _ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the zygote died; see its log"
        return json.loads(line)

    def start(
        self,
        model_dir: str,
        steps: int,
        log: str,
        *,
        steps_log: str = "",
        die_at: int = 0,
        async_save: bool = False,
    ) -> int:
        """Forks a child training `steps` more; with `steps_log`, it logs its steps in `tf1/` (with `async_save`:
        those of the background write) and dies before the `die_at`-th."""
        return self._ask(
            op="start",
            model_dir=model_dir,
            steps=steps,
            log=log,
            steps_log=steps_log,
            die_at=die_at,
            async_save=async_save,
        )["pid"]

    def wait(self, pid: int, *, reap: bool = True) -> dict:
        """Waits for child `pid` to end; without `reap` it stays a zombie, so no new process gets its pid."""
        return self._ask(op="wait", pid=pid, reap=reap)

    def reap(self, pids: list[int]) -> None:
        self._ask(op="reap", pids=pids)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


@pytest.fixture
def zygote(tmp_path):
    z = Zygote(str(tmp_path / "zygote.log"))
    yield z
    z.close()


def _step_of(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[1])


def check_dir(tf, directory: str, keys: tuple[str, str], *, required: bool) -> int:
    """Checks one checkpoint directory after a kill; returns its latest recorded step (-1 if none yet)."""
    named = checkpoint.read_state_file(directory)
    if not named:
        assert not required, f"{directory}: the state file vanished"
        return -1
    for prefix in named:
        report = verify_checkpoint(prefix)
        assert report.ok, f"{directory}: the state file names an unsound checkpoint: {report.problems}"
    latest = tf.train.latest_checkpoint(directory)
    assert latest == named[-1] == checkpoint.resolve_checkpoint(directory)
    for name in os.listdir(directory):
        if name.startswith(".") and ".tmp-est-ckpt-" in name:
            continue  # a conversion's temporary name, killed before its rename: never resolved
        # TF's MergeBundles writes a sharded save's final `.index` in place, so a kill can leave a
        # partial one; it must be a save in flight, newer than anything the state file names.
        if name.endswith(".index") and not verify_checkpoint(os.path.join(directory, name[:-6])).ok:
            assert _step_of(name[:-6]) > _step_of(latest), f"{directory}/{name} is unsound"
    # Without the state file, est_ckpt falls back to the newest complete checkpoint: the latest
    # one, or a newer one whose save finished just before the state file was updated.
    state = os.path.join(directory, checkpoint.STATE_FILENAME)
    os.rename(state, state + ".away")
    try:
        fallback = checkpoint.resolve_checkpoint(directory)
        assert _step_of(fallback) >= _step_of(latest) and verify_checkpoint(fallback).ok
    finally:
        os.rename(state + ".away", state)
    reader = tf.train.load_checkpoint(latest)
    step = int(reader.get_tensor(keys[0]))
    assert step == _step_of(latest), f"{latest} holds step {step}"
    assert float(reader.get_tensor(keys[1])) == -step, f"{latest}: w is not the value of step {step}"
    return step


def _wait_for_step(directory: str, beyond: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        named = checkpoint.read_state_file(directory)
        if named and _step_of(named[-1]) > beyond:
            return
        time.sleep(0.01)
    raise AssertionError(f"{directory}: no checkpoint beyond step {beyond} within {timeout} s")


@pytest.mark.estimator
def test_training_killed_at_random_moments_restores_and_resumes(tf, zygote, tmp_path):
    """After every SIGKILL both checkpoint dirs restore to their latest step, lose nothing, and training resumes."""
    rng = random.Random(SEED)
    model_dir = str(tmp_path / "model")
    tf1_dir = os.path.join(model_dir, "tf1")
    log = str(tmp_path / "train.log")
    last2 = last1 = -1
    moments = []
    killed = []
    for kill in range(KILLS):
        pid = zygote.start(model_dir, 10**6, log)
        if kill % 2:
            # After the run has made progress: lands in training steps and saves.
            _wait_for_step(model_dir, last2, timeout=120)
            delay = rng.uniform(0.0, 0.3)
        else:
            # Blind: start-up, graph building, restore, the first saves.
            delay = rng.uniform(0.0, 1.5)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        # Killed children stay zombies until the end: their temporary files in tf1/ look in flight
        # to later runs, and a pid freed minutes ago could be another live process by then.
        status = zygote.wait(pid, reap=False)
        killed.append(pid)
        assert status["signal"] == signal.SIGKILL, (status, open(log).read()[-3000:])
        step2 = check_dir(tf, model_dir, TF2_KEYS, required=last2 >= 0)
        # A restart saves its restored step again, and the copy replacing tf1's latest leaves it
        # unnamed meanwhile: tf1 may go back to one behind, and to none from step 0.
        step1 = check_dir(tf, tf1_dir, TF1_KEYS, required=last1 >= 1) if os.path.isdir(tf1_dir) else -1
        assert step2 >= last2 and (step1 >= last1 or step1 == step2 - 1), (
            f"a step was lost: {last2}->{step2}, {last1}->{step1}"
        )
        # The name-based copy is written right after the object-based save, so it is at most one behind.
        assert step2 - 1 <= step1 <= step2 or step1 == -1
        last2, last1 = step2, step1
        moments.append((round(delay, 2), step2, step1))
    # Every other kill waits for a new step, so at least KILLS // 2 steps were saved.
    assert last2 >= KILLS // 2 - 1, f"training hardly progressed: {moments}"
    left = [n for n in os.listdir(tf1_dir) if ".tmp-est-ckpt-" in n]
    # Reaped just before the resumed run: no new process can take their pids in the seconds it
    # takes to reach its first copy (that takes a whole cycle of pids: 32,768 or more new tasks).
    zygote.reap(killed)
    pid = zygote.start(model_dir, 3, log)
    status = zygote.wait(pid)
    assert status == {"signal": None, "code": 0}, open(log).read()[-3000:]
    assert check_dir(tf, model_dir, TF2_KEYS, required=True) == last2 + 3
    assert check_dir(tf, tf1_dir, TF1_KEYS, required=True) == last2 + 3
    sys.stderr.write(
        f"\ncrash consistency: {KILLS} kills (delay s, tf2 step, tf1 step): {moments}; "
        f"temporary files left in tf1/ by killed copies: {len(left)}\n"
    )
    # The resumed run's first copy removes what killed copies left behind.
    assert [n for n in os.listdir(tf1_dir) if ".tmp-est-ckpt-" in n] == []


# -- conversion ---------------------------------------------------------------------------------


def _tree_digest(directory: str) -> dict[str, str]:
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


_CONVERT_CHILD = (
    _STEPS
    + r"""
import runpy, sys
from est_ckpt import fileio

log_path, die_at, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
count_steps(fileio, json.loads(sys.argv[4]), log_path, die_at, root)
sys.argv = ["est-ckpt", *sys.argv[5:]]
runpy.run_module("est_ckpt", run_name="__main__")
"""
)


def _steps(log_path: str) -> list[list[str]]:
    with open(log_path) as f:
        return [json.loads(line) for line in f]


def _run_convert_child(root: str, die_at: int, src: str, dst: str) -> tuple[int, list[list[str]]]:
    """Runs `est-ckpt convert SRC DST --to=tf2 --force` dying before its `die_at`-th step; its code and steps."""
    log = os.path.join(root, "steps.log")
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT_CHILD, log, str(die_at), root, json.dumps(_FILEIO_MUTATIONS)]
        + ["convert", src, dst, "--to=tf2", "--force"],
        cwd=_ROOT,
        env=dict(os.environ, PYTHONPATH=_ROOT),
        capture_output=True,
        text=True,
    )
    return done.returncode, _steps(log) if os.path.exists(log) else []


def _files_of(prefix: str) -> dict[str, str]:
    """Digests of the files of checkpoint `prefix` (its `.index` and `.data-*`), by name."""
    base = os.path.basename(prefix)
    if not os.path.isdir(os.path.dirname(prefix)):
        return {}
    digests = _tree_digest(os.path.dirname(prefix))
    return {n: d for n, d in digests.items() if n == base + ".index" or n.startswith(base + ".data-")}


@pytest.mark.parametrize("replace", [False, True], ids=["new_dst", "replace_dst"])
def test_convert_killed_at_every_step_leaves_src_and_dst_whole(ckpts, tmp_path, replace):
    """`est-ckpt convert` killed before each of its file-system steps: SRC unchanged, DST old, absent or whole.

    A first, instrumented run lists the steps (every temporary write, link, rename,
    remove and state-file write); then a child dies before step k, for every k,
    each time from the same start: a new model dir, or (`replace`) one whose
    latest checkpoint is a name-based DST, replaced with `--force`.
    """
    src = ckpts("many_vars")
    src_before = _tree_digest(os.path.dirname(src))

    def start(root: str) -> tuple[str, str, dict[str, str]]:
        """A model dir in `root`; returns the `convert` DST argument, the prefix written and the old DST's files."""
        model = os.path.join(root, "model")
        prefix = os.path.join(model, os.path.basename(src))
        if replace:
            os.makedirs(model)
            assert convert_checkpoint(src, model + "/", to="tf1") == prefix
        return model + "/", prefix, _files_of(prefix) if replace else {}

    root = str(tmp_path / "counted")
    os.makedirs(root)
    dst, prefix, old = start(root)
    code, steps = _run_convert_child(root, 0, src, dst)
    assert code == 0 and steps, steps
    assert verify_checkpoint(prefix).ok and diff_checkpoints(src, prefix).equal
    new = _files_of(prefix)
    index = os.path.basename(prefix) + ".index"
    assert checkpoint.read_state_file(os.path.dirname(prefix)) == [prefix]

    outcomes = []
    for k in range(1, len(steps) + 1):
        root = str(tmp_path / f"k{k}")
        os.makedirs(root)
        dst, prefix, old = start(root)
        code, done = _run_convert_child(root, k, src, dst)
        assert code == -signal.SIGKILL and done == steps[:k], (k, code, done, steps)
        assert _tree_digest(os.path.dirname(src)) == src_before, (
            f"killed before {steps[k - 1]}: the source changed"
        )
        files = _files_of(prefix)
        if index not in files:
            outcome = "absent"
        elif replace and files == old:
            outcome = "old"
        else:
            report = verify_checkpoint(prefix)
            assert report.ok, (steps[k - 1], report.problems)
            assert diff_checkpoints(src, prefix).equal
            assert files[index] == new[index], f"before {steps[k - 1]}: a DST neither old nor new"
            outcome = "new"
        # The state file names only whole checkpoints, also while the replaced DST is absent.
        for named in checkpoint.read_state_file(os.path.dirname(prefix)):
            assert verify_checkpoint(named).ok, (steps[k - 1], named)
        outcomes.append(outcome)
        # A rerun converts, and removes what the killed one left behind.
        assert convert_checkpoint(src, dst, to="tf2", force=True) == prefix
        assert _files_of(prefix) == new and verify_checkpoint(prefix).ok
        assert checkpoint.read_state_file(os.path.dirname(prefix)) == [prefix]
        assert [n for n in os.listdir(os.path.dirname(prefix)) if ".tmp-est-ckpt-" in n] == [], steps[k - 1]
    sys.stderr.write(
        f"\nconvert killed before each step ({'replace' if replace else 'new'}): "
        + ", ".join(f"{op} {' '.join(paths)}: {o}" for (op, *paths), o in zip(steps, outcomes))
        + "\n"
    )
    # Publishing only moves forward (old, then absent, then new), and the kills landed on both sides of it.
    order = ["old", "absent", "new"]
    assert outcomes == sorted(outcomes, key=order.index), outcomes
    assert set(outcomes) == ({"old", "absent", "new"} if replace else {"absent", "new"}), outcomes


@pytest.mark.estimator
def test_tf1_copy_keeps_keep_checkpoint_max_across_restarts(tf, zygote, tmp_path):
    """Restarted training deletes old name-based copies too: `tf1/` keeps at most keep_checkpoint_max."""
    model_dir = str(tmp_path / "model")
    log = str(tmp_path / "train.log")
    for _ in range(2):
        status = zygote.wait(zygote.start(model_dir, KEEP + 2, log))
        assert status == {"signal": None, "code": 0}, open(log).read()[-3000:]
    for directory in (model_dir, os.path.join(model_dir, "tf1")):
        kept = sorted(n for n in os.listdir(directory) if n.endswith(".index"))
        assert len(kept) <= KEEP, f"{directory} keeps {kept}"


@pytest.mark.estimator
@pytest.mark.parametrize("async_save", [False, True], ids=["sync", "async"])
def test_dual_save_killed_at_every_step_of_the_name_based_copy(tf, zygote, tmp_path, async_save):
    """Training killed before each step of the `tf1/` copy (with `async_save`: of the whole background write,
    checkpoint, state file, retention and copy): both dirs restore to their latest step; training resumes.

    From a model dir trained 2 steps, a restarted run saves step 2 again (the
    Estimator saves at start-up: the copy replaces `tf1/model.ckpt-2`), then step 3
    (a new copy, and the oldest copy is deleted). A first, instrumented run lists the
    steps (est_ckpt's and TF's); then a child dies before step k, for every k, each
    time from the same start.
    """
    log = str(tmp_path / "train.log")
    base = str(tmp_path / "base")
    status = zygote.wait(zygote.start(base, 2, log, async_save=async_save))
    assert status == {"signal": None, "code": 0}, open(log).read()[-3000:]

    def run(name: str, die_at: int) -> tuple[str, list[list[str]]]:
        model_dir = str(tmp_path / name)
        shutil.copytree(base, model_dir)
        steps_log = str(tmp_path / f"{name}.steps")
        status = zygote.wait(
            zygote.start(model_dir, 1, log, steps_log=steps_log, die_at=die_at, async_save=async_save)
        )
        expected = {"signal": signal.SIGKILL, "code": None} if die_at else {"signal": None, "code": 0}
        assert status == expected, (die_at, status, open(log).read()[-3000:])
        return model_dir, _steps(steps_log)

    model_dir, steps = run("counted", 0)
    assert check_dir(tf, model_dir, TF2_KEYS, required=True) == 3
    assert check_dir(tf, os.path.join(model_dir, "tf1"), TF1_KEYS, required=True) == 3
    reached = []
    for k in range(1, len(steps) + 1):
        model_dir, done = run(f"k{k}", k)
        assert done == steps[:k], (k, done, steps)
        tf1_dir = os.path.join(model_dir, "tf1")
        step2 = check_dir(tf, model_dir, TF2_KEYS, required=True)
        step1 = check_dir(tf, tf1_dir, TF1_KEYS, required=True)
        # The copy of a step is written after its object-based save, so it is at most one behind
        # (also while the copy of step 2 is replaced: the state file then names the one before).
        assert 2 <= step2 <= 3 and step2 - 1 <= step1 <= step2, (steps[k - 1], step2, step1)
        reached.append((step2, step1))
        status = zygote.wait(zygote.start(model_dir, 1, log, async_save=async_save))
        assert status == {"signal": None, "code": 0}, open(log).read()[-3000:]
        assert check_dir(tf, model_dir, TF2_KEYS, required=True) == step2 + 1
        assert check_dir(tf, tf1_dir, TF1_KEYS, required=True) == step2 + 1
        # est_ckpt's temporary files are gone (TF's own `checkpoint.tmp<uuid>` of a killed state-file
        # write stays: TF never removes it, here as in any model dir).
        assert [n for n in os.listdir(tf1_dir) if ".tmp-est-ckpt-" in n] == [], steps[k - 1]
    sys.stderr.write(
        f"\n{'async' if async_save else 'dual'} save killed before each step of "
        f"{'the background write' if async_save else 'the tf1/ copy'} (tf2 step, tf1 step): "
        + ", ".join(f"{op} {' '.join(paths)}: {r}" for (op, *paths), r in zip(steps, reached))
        + "\n"
    )


# -- distributed restart ------------------------------------------------------------------------


@pytest.mark.estimator
def test_chief_killed_after_a_save_restarts_and_resumes_with_no_worker_error(ckpts, tmp_path):
    """SIGKILL the chief of a chief/worker/ps cluster after a save: restarted, it resumes from that step."""
    from tests.test_scaffold_distributed import (
        _TASK,
        CLUSTER_BUDGET_SECS,
        ROOT,
        _Cluster,
        _free_ports,
        _values,
    )

    try:
        ports = _free_ports(3)
    except OSError as e:
        pytest.skip(f"cannot open loopback TCP ports in this sandbox: {e}")
    # The scaffold test's task (var -= 1 per step), saving every step so that the chief dies just after a save.
    rare = "save_checkpoints_steps=10**6"
    assert rare in _TASK
    script = str(tmp_path / "task.py")
    with open(script, "w") as f:
        f.write(_TASK.format(root=ROOT).replace(rare, "save_checkpoints_steps=1"))
    model_dir = str(tmp_path / "cluster")
    # A legacy name-based start (var 2 at step 1): every later checkpoint holds var == 3 - step, which a
    # chief that initialized from scratch (var == -step) or went back to the legacy step would break.
    shutil.copytree(ckpts("estimator_tf1"), model_dir)
    addr = [f"127.0.0.1:{p}" for p in ports]
    spec = {"chief": [addr[0]], "worker": [addr[1]], "ps": [addr[2]]}
    max_steps = 40
    cluster = _Cluster(str(tmp_path), script, time.monotonic() + CLUSTER_BUDGET_SECS)

    def latest_step() -> int:
        return _step_of(checkpoint.read_state_file(model_dir)[-1])

    observed = []
    try:
        cluster.start("ps", spec, "ps", model_dir, max_steps, 0.0)
        cluster.start("chief", spec, "chief", model_dir, max_steps, 0.25)
        cluster.wait_for(lambda: latest_step() > 1, "the chief's first object-based save")
        cluster.start("worker", spec, "worker", model_dir, max_steps, 0.25)
        cluster.wait_for(lambda: latest_step() >= 8, "a few saved steps")
        cluster.kill("chief")  # SIGKILL, right after some save
        saved = latest_step()
        assert check_dir_values(_values, model_dir, saved)
        cluster.start("chief2", spec, "chief", model_dir, max_steps, 0.0)
        chief2 = cluster.procs["chief2"][0]
        observed.append(latest_step())  # at least once, however soon chief2 ends
        while chief2.poll() is None and time.monotonic() < cluster.deadline:
            time.sleep(0.05)
            observed.append(latest_step())
        cluster.wait("chief2")
        cluster.wait("worker")  # exit code 0: the worker rode out the chief's death
    finally:
        cluster.close()
    assert "Traceback" not in cluster.log("worker") + cluster.log("chief2")
    # Resumed from the object-based checkpoint at its step: no save of the restarted chief went back.
    assert observed and min(observed) >= saved and observed == sorted(observed), (saved, observed)
    assert latest_step() >= max_steps
    sys.stderr.write(
        f"\nchief killed after step {saved}; restarted chief saved steps {sorted(set(observed))}\n"
    )
    # Every complete save on disk is consistent with its name. The killed chief may have left one
    # it never recorded (killed between its index and the state file) or a partial index (killed
    # inside TF's in-place index write): the state file must name neither.
    named = checkpoint.read_state_file(model_dir)
    on_disk = sorted(_step_of(n[:-6]) for n in os.listdir(model_dir) if n.endswith(".index"))
    for s in on_disk:
        prefix = os.path.join(model_dir, f"model.ckpt-{s}")
        if s == 1:
            continue  # the legacy, name-based start
        if verify_checkpoint(prefix).ok:
            assert check_dir_values(_values, model_dir, s)
        else:
            assert prefix not in named, (prefix, verify_checkpoint(prefix).problems)
    # The recorded saves of both chiefs, in order: later saves began later, so the saved step never
    # goes down and `var` never goes up. (A save the killed chief never recorded may hold a later
    # step than the restarted chief's first saves: it is not in this order.)
    saves = [_values(p) for p in sorted(named, key=_step_of) if _step_of(p) > 1]
    saved_steps = [int(v["step" + VV]) for v in saves]
    saved_vars = [float(v["var_list/var" + VV]) for v in saves]
    assert saved_steps == sorted(saved_steps) and saved_vars == sorted(saved_vars, reverse=True), saves


def check_dir_values(values_of, model_dir: str, step: int) -> bool:
    """`model.ckpt-<step>` is object-based and consistent with a save that began at `step`.

    The chief reads the global step, names the file after it, then saves; an asynchronous
    worker may run steps in between, so the saved step may be larger than the name's (TF's
    own Saver does the same). Each step lowers `var` by 1 before it raises the step, so a save
    that began at `step` holds `var <= 3 - step` (the legacy start is `var = 2` at step 1).
    Only these bounds are certain; how many worker steps a save overlaps is not.
    """
    values = values_of(os.path.join(model_dir, f"model.ckpt-{step}"))
    assert set(values) == {"var_list/var" + VV, "step" + VV, "save_counter" + VV}
    saved_step, var = int(values["step" + VV]), float(values["var_list/var" + VV])
    assert saved_step >= step, (step, values)
    assert var <= 3 - step, (step, values)
    return True
