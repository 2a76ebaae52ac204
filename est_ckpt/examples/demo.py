"""The migration story in one run: `est-ckpt demo [--workdir DIR]` (`make demo`).

1. Train a legacy canned `DNNClassifier` (the TF1-era `tf.compat.v1.estimator.DNNClassifier`,
   name-based checkpoints) into `DIR/legacy`.
2. Inspect its checkpoint with `est_ckpt.read_checkpoint`.
3. Train the migrated model, a custom `model_fn` whose variables live under new
   scopes, into `DIR/migrated` with `make_tf2_scaffold(also_save_tf1=True)`,
   warm-started from `DIR/legacy` through a scope map.
4. Evaluate: the migrated model at step 0 scores what the legacy model scores; a
   cold-started one (`DIR/cold`) starts from scratch.
5. Convert the legacy checkpoint to TF2 (`DIR/converted`), diff.
6. Migrate a canned `LinearClassifier` in place (`DIR/canned`) with
   `est_ckpt.with_tf2_checkpoints` (`est_ckpt.examples.canned_demo`), and print a table.

Runs on CPU in well under a minute, with no network.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from typing import Optional, TextIO

from est_ckpt import examples, fileio
from est_ckpt.errors import DestinationExistsError
from est_ckpt.examples import canned_demo
from est_ckpt.format import checkpoint

LEGACY_STEPS = 100
MIGRATED_STEPS = 20
TRAIN_EXAMPLES = 512
EVAL_EXAMPLES = 300
SUBDIRS = ("legacy", "migrated", "cold", "converted", "canned")
# Where each legacy variable goes in the migrated model, in the
# `tf.compat.v1.train.init_from_checkpoint` grammar ({source scope: target scope}).
SCOPE_MAP = {
    "dnn/hiddenlayer_0/": "migrated/classifier/hidden/",
    "dnn/logits/": "migrated/classifier/logits/",
}


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the final table: what was written, where, in which format."""

    what: str
    where: str
    format: str
    variables: int


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What the demo wrote and measured.

    Attributes:
      workdir: the directory holding everything the demo wrote.
      rows: the final table.
      mapped: how many migrated variables were warm-started from a legacy
        variable, checked by value.
      trainable: how many trainable variables the migrated model has.
      metrics: one `{"model", "step", "accuracy", "loss"}` per evaluation, in order.
      equal: `{label: bool}` of every diff.
      seconds: wall time of the whole demo.
      canned: what step 6 (the canned Estimator migrated in place) wrote and measured.
    """

    workdir: str
    rows: tuple[Row, ...]
    mapped: int
    trainable: int
    metrics: tuple[dict, ...]
    equal: dict
    seconds: float
    canned: Optional[canned_demo.CannedResult] = None


class _Progress:
    def __init__(self, out: TextIO, workdir: str):
        self._out = out
        self._start = time.monotonic()
        self._workdir = workdir

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def short(self, path: str) -> str:
        """`path` relative to the workdir, to keep lines short."""
        return os.path.relpath(path, self._workdir) if path.startswith(self._workdir) else path

    def step(self, n: int, text: str) -> None:
        self.say(f"[{n}/6] {text}  ({self.elapsed():.1f}s)")

    def say(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()


def _prepare_workdir(workdir: Optional[str]) -> str:
    if workdir is None:
        return tempfile.mkdtemp(prefix="est-ckpt-demo-")
    workdir = os.path.abspath(workdir)
    taken = [os.path.join(workdir, d) for d in SUBDIRS if fileio.exists(os.path.join(workdir, d))]
    if taken:
        what = f"Destination {', '.join(taken)} already exists: the demo never overwrites. Choose another"
        raise DestinationExistsError(f"{what} workdir or remove those directories.").for_cli(
            f"{what} --workdir or remove those directories."
        )
    fileio.makedirs(workdir)
    return workdir


def _migrated_model_fn(features, labels, mode, params):
    """The migrated model: the same network as the legacy one, under new scopes, saved object-based."""
    import est_ckpt
    from est_ckpt.tf import runtime

    tf = runtime.tf()
    v1 = tf.compat.v1
    estimator = runtime.estimator()
    with v1.variable_scope("migrated"):
        model = examples.classifier(16, seed=0)
        logits = model(features[examples.FEATURE_KEY])
    class_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    loss = v1.losses.sparse_softmax_cross_entropy(labels, logits)
    train_op = None
    if mode == estimator.ModeKeys.TRAIN:
        optimizer = v1.train.AdamOptimizer(0.005)
        train_op = optimizer.minimize(loss, global_step=v1.train.get_global_step())
    warm_start_from = None
    if params["warm_start_from"]:
        warm_start_from = est_ckpt.warm_start_settings(
            params["warm_start_from"], "migrated/.*", assignment_map=dict(SCOPE_MAP)
        )
    # Built last, so the default `var_list` holds every variable, optimizer slots included.
    scaffold = est_ckpt.make_tf2_scaffold(also_save_tf1=True, warm_start_from=warm_start_from)
    return estimator.EstimatorSpec(
        mode,
        predictions={"class_ids": class_ids},
        loss=loss,
        train_op=train_op,
        eval_metric_ops={"accuracy": v1.metrics.accuracy(labels, class_ids)},
        scaffold=scaffold,
    )


def _checkpoints(model_dir: str) -> dict[int, str]:
    """`{step: prefix}` of every checkpoint the model dir's state file lists."""
    out = {}
    for prefix in checkpoint.read_state_file(model_dir):
        out[checkpoint.step_of(prefix)] = prefix
    return out


def _count_mapped(legacy_prefix: str, migrated_prefix: str) -> tuple[int, int]:
    """Counts migrated trainable variables whose value equals their legacy source under `SCOPE_MAP`."""
    import numpy as np

    legacy = checkpoint.read_checkpoint(legacy_prefix)
    migrated = checkpoint.read_checkpoint(migrated_prefix)
    targets = {scope: source for source, scope in SCOPE_MAP.items()}
    trainable = mapped = 0
    for target_key, info in migrated.variables.items():
        name = info.name or ""
        if not _in_scope(name, targets):
            continue
        trainable += 1
        scope = next(t for t in targets if name.startswith(t))
        source = targets[scope] + name[len(scope) :]
        if source in legacy.tensors and np.array_equal(
            legacy.read_tensor(source), migrated.read_tensor(target_key)
        ):
            mapped += 1
    return mapped, trainable


def _in_scope(name: str, scopes) -> bool:
    """Whether `name` is a variable directly in one of `scopes` (a layer's kernel or bias, not a slot)."""
    return any(name.startswith(s) and "/" not in name[len(s) :] for s in scopes)


def run_demo(workdir: Optional[str] = None, *, out: Optional[TextIO] = None) -> DemoResult:
    """Runs the whole migration story and prints it.

    Args:
      workdir: where to write (`legacy/`, `migrated/`, `cold/`, `converted/`, `canned/`);
        None: a fresh temporary directory. Those subdirectories must not exist.
      out: where progress and the table go (default: stdout).

    Returns:
      A `DemoResult`.

    Raises:
      DestinationExistsError: `workdir` already holds one of the demo's directories.
    """
    out = out or sys.stdout
    workdir = _prepare_workdir(workdir)
    progress = _Progress(out, workdir)
    progress.say(f"est-ckpt demo: writing into {workdir}")
    legacy_dir, migrated_dir, cold_dir, converted_dir, canned_dir = (
        os.path.join(workdir, d) for d in SUBDIRS
    )

    progress.say("loading TensorFlow ...")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import est_ckpt
    from est_ckpt.tf import runtime

    tf = runtime.tf()
    estimator = runtime.estimator()
    tf.get_logger().setLevel("ERROR")
    config = estimator.RunConfig(tf_random_seed=0, log_step_count_steps=None)
    train_input = examples.input_fn(TRAIN_EXAMPLES, seed=0, repeat=True)
    eval_input = examples.input_fn(EVAL_EXAMPLES, seed=1, batch_size=100, repeat=False)
    metrics: list[dict] = []

    def evaluate(label, est, step, prefix=None, loss_key="loss"):
        m = est.evaluate(eval_input, checkpoint_path=prefix)
        metrics.append(
            {"model": label, "step": step, "accuracy": float(m["accuracy"]), "loss": float(m[loss_key])}
        )

    # 1. The legacy model: a canned Estimator, saving name-based checkpoints as TF1 did.
    progress.step(
        1, f"training the legacy canned DNNClassifier for {LEGACY_STEPS} steps into legacy/ (TF1, name-based)"
    )
    legacy = estimator.DNNClassifier(
        hidden_units=[16],
        feature_columns=[
            tf.feature_column.numeric_column(examples.FEATURE_KEY, shape=(examples.NUM_FEATURES,))
        ],
        n_classes=examples.NUM_CLASSES,
        optimizer=lambda: tf.compat.v1.train.AdamOptimizer(0.02),
        model_dir=legacy_dir,
        config=config,
    )
    legacy.train(train_input, steps=LEGACY_STEPS)
    legacy_prefix = checkpoint.latest_in_directory(legacy_dir)

    # 2. What a legacy checkpoint holds, read without TensorFlow.
    info = est_ckpt.read_checkpoint(legacy_dir)
    progress.step(
        2,
        f"inspecting {progress.short(info.prefix)}: format={info.format}, {len(info.variables)} tensors",
    )
    model_vars = [t for t in info.variables.values() if _in_scope(t.key, SCOPE_MAP)]
    width = max(len(t.key) for t in model_vars)
    for t in model_vars:
        progress.say(f"      {t.key:<{width}}  {t.dtype:<8} {list(t.shape)}")
    progress.say(
        f"      + {len(info.variables) - len(model_vars)} more: global_step and the Adam optimizer's "
        "slots and powers (not warm-started: the migrated model has its own optimizer)"
    )

    # 3. The migrated model: new scopes, TF2 checkpoints plus a TF1 copy, warm-started through a scope map.
    progress.step(
        3,
        f"training the migrated model_fn for {MIGRATED_STEPS} steps into migrated/ with "
        "make_tf2_scaffold(also_save_tf1=True), warm-started from legacy/ with "
        + ", ".join(f"{s} -> {d}" for s, d in SCOPE_MAP.items())
        + "; and, to compare, the same model_fn without warm start into cold/",
    )
    migrated = estimator.Estimator(
        _migrated_model_fn, model_dir=migrated_dir, config=config, params={"warm_start_from": legacy_dir}
    )
    migrated.train(train_input, steps=MIGRATED_STEPS)
    cold = estimator.Estimator(
        _migrated_model_fn, model_dir=cold_dir, config=config, params={"warm_start_from": None}
    )
    cold.train(train_input, steps=MIGRATED_STEPS)

    # 4. Step 0 of the migrated model is the legacy model; the cold start begins from scratch.
    progress.step(4, "evaluating the legacy, warm-started and cold-started models on held-out data")
    evaluate("legacy DNNClassifier", legacy, LEGACY_STEPS, loss_key="average_loss")
    migrated_ckpts, cold_ckpts = _checkpoints(migrated_dir), _checkpoints(cold_dir)
    evaluate("migrated, warm-started", migrated, 0, migrated_ckpts[0])
    evaluate("cold start (no warm start)", cold, 0, cold_ckpts[0])
    evaluate("migrated, warm-started", migrated, MIGRATED_STEPS, migrated_ckpts[MIGRATED_STEPS])
    evaluate("cold start (no warm start)", cold, MIGRATED_STEPS, cold_ckpts[MIGRATED_STEPS])
    progress.say(f"      {'MODEL':<28} {'STEP':>5} {'ACCURACY':>9} {'LOSS':>8}")
    for m in metrics:
        progress.say(f"      {m['model']:<28} {m['step']:>5} {m['accuracy']:>9.3f} {m['loss']:>8.4f}")
    mapped, trainable = _count_mapped(legacy_prefix, migrated_ckpts[0])

    # 5. Index-only conversion of the legacy checkpoint, and diffs that prove nothing changed.
    progress.step(5, "converting legacy/ to TF2 into converted/ and diffing")
    # A destination ending in a separator is a model dir: it gets a `checkpoint` state file too.
    converted_prefix = est_ckpt.convert_checkpoint(legacy_prefix, converted_dir + os.sep, to="tf2")
    migrated_prefix = migrated_ckpts[MIGRATED_STEPS]
    tf1_copy = checkpoint.latest_in_directory(os.path.join(migrated_dir, "tf1"))
    equal = {
        "legacy vs converted": est_ckpt.diff_checkpoints(legacy_prefix, converted_prefix).equal,
        "migrated vs its TF1 copy": est_ckpt.diff_checkpoints(migrated_prefix, tf1_copy).equal,
    }
    for label, same in equal.items():
        progress.say(f"      diff {label}: {'equal' if same else 'DIFFERENT'}")

    # 6. A canned Estimator cannot take a scaffold: with_tf2_checkpoints migrates it in place.
    progress.step(
        6,
        f"migrating a canned LinearClassifier in place: {canned_demo.CANNED_STEPS} steps name-based into "
        f"canned/, then est_ckpt.with_tf2_checkpoints(estimator) trains on {canned_demo.CONTINUED_STEPS} "
        "steps in the same directory",
    )
    canned = canned_demo.migrate_canned_in_place(
        canned_dir,
        train_input=train_input,
        eval_input=eval_input,
        config=config,
        say=progress.say,
        short=progress.short,
    )

    rows = []
    for what, prefix in (
        ("legacy model", legacy_prefix),
        ("migrated model", migrated_prefix),
        ("migrated, TF1 copy", tf1_copy),
        ("cold-start model", cold_ckpts[MIGRATED_STEPS]),
        ("legacy converted to TF2", converted_prefix),
        ("canned, migrated in place", canned.after),
    ):
        ckpt = checkpoint.read_checkpoint(prefix)
        rows.append(Row(what, prefix, ckpt.format, len(ckpt.variables)))
    result = DemoResult(
        workdir=workdir,
        rows=tuple(rows),
        mapped=mapped,
        trainable=trainable,
        metrics=tuple(metrics),
        equal=equal,
        seconds=progress.elapsed(),
        canned=canned,
    )
    _print_table(result, progress)
    return result


def _print_table(result: DemoResult, progress: _Progress) -> None:
    table = [("WHAT", "WHERE", "FORMAT", "VARIABLES")]
    table += [(r.what, progress.short(r.where), r.format, str(r.variables)) for r in result.rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    progress.say("")
    progress.say(f"Written under {result.workdir}:")
    for row in table:
        progress.say("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    progress.say(
        f"Warm start: {result.mapped} of {result.trainable} trainable variables mapped from legacy/ "
        f"(values checked at step 0): " + ", ".join(f"{s} -> {d}" for s, d in SCOPE_MAP.items())
    )
    progress.say(f"Done in {result.seconds:.1f}s. Look around with:")
    d = result.workdir
    for command in (
        f"est-ckpt inspect {d}/legacy",
        f"est-ckpt diff {d}/legacy {d}/converted",
        f"est-ckpt map {d}/legacy --target {d}/migrated "
        + " ".join(f"--assignment_map={s}={t}" for s, t in SCOPE_MAP.items())
        + " --vars_to_warm_start='migrated/.*/(kernel|bias)$'",
    ):
        progress.say(f"  {command}")


def main(workdir: Optional[str] = None) -> int:
    """Runs the demo; returns the exit code (1 when a check of the story fails)."""
    result = run_demo(workdir)
    problems = [f"diff {label} found differences" for label, same in result.equal.items() if not same]
    if not result.mapped == result.trainable > 0:
        problems.append(f"only {result.mapped} of {result.trainable} trainable variables were warm-started")
    if result.canned is not None and not result.canned.ok:
        problems.append(f"the canned LinearClassifier was not migrated in place as told: {result.canned}")
    for problem in problems:
        print(f"est-ckpt demo: {problem}", file=sys.stderr)
    return 1 if problems else 0
