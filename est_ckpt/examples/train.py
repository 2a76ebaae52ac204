"""An Estimator launch script configured only by flags.

A small Keras classifier inside a `model_fn`, learning a dataset generated in
code, checkpointed through `est_ckpt.tf.flags`. Copy a flagfile from `configs/`::

    python -m est_ckpt.examples.train --model_dir=/tmp/m --train_steps=50
    python -m est_ckpt.examples.train --flagfile=configs/migrate_in_place.flags --model_dir=/tmp/m

Each training run writes its resolved flags to `<model_dir>/flags.txt`, so
`--flagfile=<model_dir>/flags.txt` repeats it. The last stdout line is one JSON
object: the mode, the model dir, the latest checkpoint, its format and step,
and, when evaluating, the metrics.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys

from absl import app, flags, logging

from est_ckpt import examples
from est_ckpt.tf import flags as ckpt_flags

MODEL_DIR = flags.DEFINE_string("model_dir", None, "Where the Estimator reads and writes checkpoints.")
MODE = flags.DEFINE_enum(
    "mode",
    "train",
    ["train", "evaluate", "train_and_evaluate"],
    "train: --train_steps more steps; evaluate: the latest checkpoint, writing nothing; "
    "train_and_evaluate: both, one after the other.",
)
TRAIN_STEPS = flags.DEFINE_integer("train_steps", 20, "Steps to train in this run.", lower_bound=1)
LEARNING_RATE = flags.DEFINE_float("learning_rate", 0.01, "Adam's learning rate.", lower_bound=0.0)
HIDDEN_UNITS = flags.DEFINE_integer("hidden_units", 16, "Width of the hidden layer.", lower_bound=1)
SCOPE = flags.DEFINE_string(
    "scope",
    "",
    "Variable scope the model is built under (empty: none). A model renamed this way "
    "warm-starts from the old one with --warm_start_map=classifier/=<scope>/classifier/.",
)
SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of the initial weights (and the graph-level seed, RunConfig(tf_random_seed=...))."
)

ckpt_flags.define_flags()
# So `--helpshort` lists the est_ckpt flags with the script's own.
flags.adopt_module_key_flags(ckpt_flags)
flags.mark_flag_as_required("model_dir")

# TF's rule for scope names (ops.py `_VALID_SCOPE_NAME_REGEX`), without the trailing '/'.
_SCOPE_NAME = re.compile(r"^[A-Za-z0-9_.\\-][A-Za-z0-9_.\\/>-]*(?<!/)$")


@flags.validator("scope", "--scope must be a TF scope name without a trailing '/' (e.g. 'v2' or 'tower/v2').")
def _check_scope(value: str) -> bool:
    return not value or bool(_SCOPE_NAME.match(value))


def model_fn(features, labels, mode, params):
    """A two-layer Keras classifier; saves checkpoints as `--ckpt_format` says."""
    from est_ckpt.tf import runtime

    tf = runtime.tf()
    v1 = tf.compat.v1
    estimator = runtime.estimator()
    scope = v1.variable_scope(params["scope"]) if params["scope"] else contextlib.nullcontext()
    with scope:
        model = examples.classifier(params["hidden_units"], seed=params["seed"])
        logits = model(features[examples.FEATURE_KEY], training=mode == estimator.ModeKeys.TRAIN)
    class_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
    predictions = {"class_ids": class_ids, "probabilities": tf.nn.softmax(logits)}
    if mode == estimator.ModeKeys.PREDICT:
        return estimator.EstimatorSpec(
            mode, predictions=predictions, scaffold=ckpt_flags.scaffold_from_flags()
        )
    loss = v1.losses.sparse_softmax_cross_entropy(labels, logits)
    train_op = None
    if mode == estimator.ModeKeys.TRAIN:
        optimizer = v1.train.AdamOptimizer(params["learning_rate"])
        train_op = optimizer.minimize(loss, global_step=v1.train.get_global_step())
    # Built last, so the default `var_list` holds every variable, optimizer slots included.
    scaffold = ckpt_flags.scaffold_from_flags()
    return estimator.EstimatorSpec(
        mode,
        predictions=predictions,
        loss=loss,
        train_op=train_op,
        eval_metric_ops={"accuracy": v1.metrics.accuracy(labels, class_ids)},
        scaffold=scaffold,
    )


def _checkpoint_summary(model_dir: str) -> dict:
    from est_ckpt.format import checkpoint

    summary: dict = {"model_dir": model_dir}
    latest = checkpoint.latest_in_directory(model_dir)
    if latest is None:
        return summary
    info = checkpoint.read_checkpoint(latest)
    summary.update(checkpoint=info.prefix, format=info.format, step=checkpoint.step_of(info.prefix))
    tf1_dir = os.path.join(model_dir, "tf1")
    tf1_latest = checkpoint.latest_in_directory(tf1_dir) if os.path.isdir(tf1_dir) else None
    if tf1_latest is not None:
        summary["tf1_copy"] = {
            "checkpoint": tf1_latest,
            "format": checkpoint.read_checkpoint(tf1_latest).format,
        }
    return summary


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=2)
    ckpt_flags.validate_paths()
    model_dir = MODEL_DIR.value
    if MODE.value == "evaluate" and not _has_checkpoint(model_dir):
        raise app.UsageError(
            f"--mode=evaluate: --model_dir={model_dir} holds no checkpoint to evaluate.", exitcode=2
        )

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from est_ckpt.tf import runtime

    tf = runtime.tf()
    estimator = runtime.estimator()
    tf.get_logger().setLevel("ERROR")
    est = estimator.Estimator(
        model_fn,
        model_dir=model_dir,
        config=estimator.RunConfig(tf_random_seed=SEED.value, log_step_count_steps=None),
        params={
            "scope": SCOPE.value,
            "hidden_units": HIDDEN_UNITS.value,
            "learning_rate": LEARNING_RATE.value,
            "seed": SEED.value,
        },
    )
    result: dict = {"mode": MODE.value}
    if MODE.value in ("train", "train_and_evaluate"):
        ckpt_flags.write_flags_file(model_dir)
        logging.info("training %d steps into %s", TRAIN_STEPS.value, model_dir)
        est.train(examples.input_fn(512, seed=0, repeat=True), steps=TRAIN_STEPS.value)
    if MODE.value in ("evaluate", "train_and_evaluate"):
        metrics = est.evaluate(examples.input_fn(300, seed=1, batch_size=100, repeat=False))
        result["metrics"] = {k: float(v) for k, v in metrics.items()}
    result.update(_checkpoint_summary(model_dir))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


def _has_checkpoint(model_dir: str) -> bool:
    from est_ckpt.errors import EstCkptError
    from est_ckpt.format import checkpoint

    try:
        checkpoint.resolve_checkpoint(model_dir)
    except (EstCkptError, OSError):
        return False
    return True


if __name__ == "__main__":
    app.run(main)
