"""est_ckpt: move `tf.estimator` pipelines from TF1 name-based to TF2 object-based checkpoints.

`import est_ckpt` does not import TensorFlow: the checkpoint model, conversion
and the CLI work on the files directly. Names that need TensorFlow (scaffolds,
warm-starting, flags helpers) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from est_ckpt import errors
from est_ckpt.format.checkpoint import CheckpointInfo, TensorInfo, read_checkpoint, resolve_checkpoint

__version__ = "0.1.0"

# Public names whose modules are imported only when first used.
_LAZY = {
    "convert_checkpoint": "est_ckpt.tools.convert",
    "diff_checkpoints": "est_ckpt.tools.diff",
    "verify_checkpoint": "est_ckpt.tools.verify",
    "make_tf2_scaffold": "est_ckpt.tf.scaffold",
    "make_tf1_scaffold": "est_ckpt.tf.scaffold",
    "with_tf2_checkpoints": "est_ckpt.tf.canned",
    "with_tf1_checkpoints": "est_ckpt.tf.canned",
    "warm_start_settings": "est_ckpt.tf.warm_starting",
    "warm_start": "est_ckpt.tf.warm_starting",
    "WarmStartPlan": "est_ckpt.mapping",
    "plan_mapping": "est_ckpt.mapping",
}
# Modules reachable as `from est_ckpt import flags` (the documented spelling for launch scripts).
_LAZY_MODULES = {"flags": "est_ckpt.tf.flags"}

__all__ = [
    "CheckpointInfo",
    "TensorInfo",
    "errors",
    "read_checkpoint",
    "resolve_checkpoint",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _LAZY_MODULES:
        value = importlib.import_module(_LAZY_MODULES[name])
    else:
        raise AttributeError(f"module 'est_ckpt' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_LAZY_MODULES))
