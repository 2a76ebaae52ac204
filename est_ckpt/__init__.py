"""est_ckpt: move `tf.estimator` pipelines from TF1 name-based to TF2 object-based checkpoints.

`import est_ckpt` does not import TensorFlow: the checkpoint model, conversion
and the CLI work on the files directly. Names that need TensorFlow (scaffolds,
warm-starting, flags helpers) are imported on first use.
"""

from __future__ import annotations

import importlib
import sys
from importlib.machinery import ModuleSpec
from typing import Any

from est_ckpt import errors
from est_ckpt.version import __version__ as __version__

# Public names whose modules are imported only when first used.
_LAZY = {
    "CheckpointInfo": "est_ckpt.format.checkpoint",
    "TensorInfo": "est_ckpt.format.checkpoint",
    "read_checkpoint": "est_ckpt.format.checkpoint",
    "resolve_checkpoint": "est_ckpt.format.checkpoint",
    "convert_checkpoint": "est_ckpt.tools.convert",
    "export_checkpoint": "est_ckpt.tools.export",
    "diff_checkpoints": "est_ckpt.tools.diff",
    "verify_checkpoint": "est_ckpt.tools.verify",
    "make_tf2_scaffold": "est_ckpt.tf.scaffold",
    "make_tf1_scaffold": "est_ckpt.tf.scaffold",
    "preemption_signal": "est_ckpt.tf.preemption",
    "with_tf2_checkpoints": "est_ckpt.tf.canned",
    "with_tf1_checkpoints": "est_ckpt.tf.canned",
    "warm_start_settings": "est_ckpt.tf.settings",
    "warm_start": "est_ckpt.tf.warm_starting",
    "init_from_checkpoint": "est_ckpt.tf.warm_starting",
    "list_variables": "est_ckpt.mapping.tf1_names",
    "load_rules": "est_ckpt.mapping.rules_file",
    "Rules": "est_ckpt.mapping.rules_file",
    "WarmStartPlan": "est_ckpt.mapping",
    "plan_mapping": "est_ckpt.mapping",
    "suggest_mapping": "est_ckpt.mapping.suggest",
}
# Modules reachable as `from est_ckpt import flags` (the documented spelling for launch scripts).
_LAZY_MODULES = {"flags": "est_ckpt.tf.flags"}

# Modules moved into the layer folders keep their old import paths (`import est_ckpt.flags`, as documented).
# `est_ckpt.warm_start`, once a module, is now the function of that name, so it is not among them.
_MOVED = {
    "est_ckpt.flags": "est_ckpt.tf.flags",
    "est_ckpt.scaffold": "est_ckpt.tf.scaffold",
    "est_ckpt.warm_starting": "est_ckpt.tf.warm_starting",
    "est_ckpt._savers": "est_ckpt.tf.savers",
    "est_ckpt._tf": "est_ckpt.tf.runtime",
    "est_ckpt.keys": "est_ckpt.format.keys",
    "est_ckpt.bundle": "est_ckpt.format.bundle",
    "est_ckpt.checkpoint": "est_ckpt.format.checkpoint",
    "est_ckpt._wire": "est_ckpt.format.wire",
    "est_ckpt.convert": "est_ckpt.tools.convert",
    "est_ckpt.diff": "est_ckpt.tools.diff",
    "est_ckpt.verify": "est_ckpt.tools.verify",
    "est_ckpt.cli": "est_ckpt.commands.main",
    "est_ckpt.demo": "est_ckpt.examples.demo",
    # `convert --like` is one package, `tools/onto/`, since 0.1 (issue 22).
    "est_ckpt.tools.onto_plan": "est_ckpt.tools.onto.plan",
    "est_ckpt.tools.onto_steps": "est_ckpt.tools.onto.steps",
    "est_ckpt.tools.onto_momentum": "est_ckpt.tools.onto.momentum",
}


class _MovedModules:
    """Imports an old module path as the module it moved to (the very same module object)."""

    def find_spec(self, fullname, path, target=None):
        del path, target
        return ModuleSpec(fullname, self) if fullname in _MOVED else None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        # The import system returns what `sys.modules` holds once this returns: the moved module.
        sys.modules[module.__name__] = importlib.import_module(_MOVED[module.__name__])


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())

__all__ = ["errors", *_LAZY]


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
