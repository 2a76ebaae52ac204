"""The one place est_ckpt reads the call stack: finding the Estimator that is running, where nothing else can.

Two decisions need the Estimator and Estimator's API gives them no channel to it:

- a scaffold made without `config=` keeps as many checkpoints as the Estimator's
  `RunConfig` says (Estimator gives its retention only to the Saver it makes
  itself, and a `model_fn` without a `config` argument never sees it);
- `WarmStartSettings` logs a WARNING when Estimator's `train()` is about to skip
  the warm start because its model_dir already holds a checkpoint.

Both are fallbacks: pass `config=` (the `RunConfig` that `model_fn` receives) and
the first is never used; the second only decides a log line. If Estimator's
internals change, the fallback finds nothing and that is all that is lost.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

__all__ = ["estimator_on_stack", "train_calling"]

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
