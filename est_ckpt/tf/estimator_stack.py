"""The one place est_ckpt reads the call stack: finding the Estimator (or hook) that is running, where nothing
else can.

Three decisions need them and their APIs give them no channel to it:

- a scaffold made without `config=` keeps as many checkpoints as the Estimator's
  `RunConfig` says (Estimator gives its retention only to the Saver it makes
  itself, and a `model_fn` without a `config` argument never sees it);
- `WarmStartSettings` logs a WARNING when Estimator's `train()` is about to skip
  the warm start because its model_dir already holds a checkpoint;
- an asynchronous save made by a `CheckpointSaverHook`'s `end()` (training's last)
  waits for its write, so `train()` returns with it on disk.

The first two are fallbacks: pass `config=` (the `RunConfig` that `model_fn` receives)
and the first is never used; the second only decides a log line. If the internals
change, the lookup finds nothing and that is all that is lost (for the third: the
last write is waited for at the next save or when the interpreter exits).
"""

from __future__ import annotations

import sys
from typing import Any, Optional

__all__ = ["estimator_on_stack", "saver_hook_ending", "train_calling"]

# Estimator's method that evaluates `warm_start_from and not latest_checkpoint(model_dir)`.
_TRAIN_DECIDING_WARM_START = "_train_with_estimator_spec"


def _estimator_class() -> Optional[type]:
    try:
        from tensorflow_estimator.python.estimator import estimator as estimator_lib
    except ImportError:  # TensorFlow without Estimator (2.16+, or a MonitoredSession user).
        return None
    return estimator_lib.Estimator


def estimator_on_stack() -> Optional[Any]:
    """The innermost `Estimator` whose method is on this thread's stack (saves run on `train()`'s thread), or None."""
    estimator_class = _estimator_class()
    if estimator_class is None:
        return None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, estimator_class):
            return owner
        frame = frame.f_back
    return None


def train_calling(depth: int = 1) -> Optional[Any]:
    """The Estimator if the function `depth` frames above the caller is its `_train_with_estimator_spec`."""
    frame = sys._getframe(depth + 1)
    if frame.f_code.co_name != _TRAIN_DECIDING_WARM_START:
        return None
    return frame.f_locals.get("self")


def saver_hook_ending(depth: int = 1, frames: int = 4) -> bool:
    """Whether a `CheckpointSaverHook`'s `end()` is within `frames` frames above the caller's `depth`-th caller
    (its `end()` -> `_save()` -> `Saver.save()`)."""
    from tensorflow.python.training import basic_session_run_hooks

    frame = sys._getframe(depth + 1)
    for _ in range(frames):
        if frame is None:
            return False
        if frame.f_code.co_name == "end" and isinstance(
            frame.f_locals.get("self"), basic_session_run_hooks.CheckpointSaverHook
        ):
            return True
        frame = frame.f_back
    return False


def retention_policy(config: Any) -> Optional[tuple[Optional[int], float]]:
    """`(keep_checkpoint_max, keep_checkpoint_every_n_hours)` of `config`, else of the Estimator saving.

    With `config` None this is the first fallback of the module docstring: the
    `RunConfig` of the Estimator found on the call stack (saves run on the
    thread that called `Estimator.train`), or None outside an Estimator. (An
    asynchronous save reads it when it is taken, on that thread.)
    """
    if config is not None:
        return config.keep_checkpoint_max, config.keep_checkpoint_every_n_hours
    estimator = estimator_on_stack()
    if estimator is None:
        return None
    return estimator.config.keep_checkpoint_max, estimator.config.keep_checkpoint_every_n_hours
