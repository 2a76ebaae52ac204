"""Step 6 of `est-ckpt demo`: a canned Estimator migrated in place with `est_ckpt.with_tf2_checkpoints`.

A `tf.estimator.LinearClassifier` trains name-based (as it always did) into
`DIR/canned`; the same Estimator, wrapped by `with_tf2_checkpoints`, evaluates
that checkpoint (restored by variable name) and trains on in the same
directory: the global step goes on, and the next checkpoint is object-based.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from est_ckpt import examples
from est_ckpt.format import checkpoint

CANNED_STEPS = 20
CONTINUED_STEPS = 10


@dataclasses.dataclass(frozen=True)
class CannedResult:
    """What step 6 wrote and measured.

    Attributes:
      before: the plain LinearClassifier's last (name-based) checkpoint's prefix; TF saves that
        step again, object-based, when the wrapped Estimator resumes training.
      after: the wrapped Estimator's first own checkpoint, in the same directory.
      formats: the formats of `before` (as the plain Estimator wrote it) and `after`.
      steps: the global steps of `before` and `after`.
      accuracy: `{label: accuracy}` of the three evaluations, in order.
    """

    before: str
    after: str
    formats: tuple[str, str]
    steps: tuple[int, int]
    accuracy: dict

    @property
    def ok(self) -> bool:
        """The migration happened as told: tf1 then tf2, the step went on, the restored model scores the same."""
        plain, restored, _ = self.accuracy.values()
        return (
            self.formats == ("tf1", "tf2")
            and self.steps == (CANNED_STEPS, CANNED_STEPS + CONTINUED_STEPS)
            and plain == restored
        )


def _step_of(prefix: str) -> int:
    step = checkpoint.step_of(prefix)
    assert step is not None, prefix  # Estimator's prefixes always end in -<step>
    return step


def migrate_canned_in_place(
    model_dir: str, *, train_input, eval_input, config: Any, say: Callable[[str], None], short: Callable
) -> CannedResult:
    """Trains a LinearClassifier name-based into `model_dir`, then continues it through `with_tf2_checkpoints`."""
    import est_ckpt
    from est_ckpt.tf import runtime

    tf = runtime.tf()
    plain = tf.estimator.LinearClassifier(
        feature_columns=[
            tf.feature_column.numeric_column(examples.FEATURE_KEY, shape=(examples.NUM_FEATURES,))
        ],
        n_classes=examples.NUM_CLASSES,
        model_dir=model_dir,
        config=config,
    )
    plain.train(train_input, steps=CANNED_STEPS)
    before = checkpoint.latest_in_directory(model_dir)
    # Read now: when the wrapped Estimator starts training, TF's CheckpointSaverHook saves the
    # starting step again (here step 20), through est_ckpt's saver, so object-based.
    before_format = checkpoint.read_checkpoint(before).format
    accuracy = {"plain LinearClassifier": float(plain.evaluate(eval_input)["accuracy"])}

    wrapped = est_ckpt.with_tf2_checkpoints(plain)
    accuracy["with_tf2_checkpoints, restored"] = float(wrapped.evaluate(eval_input)["accuracy"])
    wrapped.train(train_input, steps=CONTINUED_STEPS)
    after = checkpoint.latest_in_directory(model_dir)
    accuracy["with_tf2_checkpoints, trained on"] = float(wrapped.evaluate(eval_input)["accuracy"])

    formats = (before_format, checkpoint.read_checkpoint(after).format)
    result = CannedResult(before, after, formats, (_step_of(before), _step_of(after)), accuracy)
    for (label, acc), prefix, fmt in zip(
        accuracy.items(), (before, before, after), (formats[0], formats[0], formats[1])
    ):
        say(f"      {short(prefix):<22} {fmt}  accuracy {acc:.3f}  {label}")
    say(
        f"      the global step went on from {result.steps[0]} to {result.steps[1]} in the same directory; "
        f"the latest checkpoint is now {formats[1]} (object-based); TF re-saved step {result.steps[0]} "
        "when training resumed, object-based too"
    )
    return result
