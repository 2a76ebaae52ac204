"""What a warm start is asked to do: Estimator's `WarmStartSettings`, and the request the engine runs.

`warm_start_settings` returns a `WarmStartSettings`, a genuine
`tf.estimator.WarmStartSettings` to pass as `Estimator(warm_start_from=...)`
that warm-starts with `est_ckpt.tf.warm_starting`'s engine. `WarmStartRequest`
turns a checkpoint path or either kind of settings into what the engine reads.

How the Estimator hook works, without patching TensorFlow: Estimator calls
`tf.compat.v1.train.warm_start(*settings)` after `model_fn` has built the
graph. `WarmStartSettings` is a namedtuple, so our subclass's `__iter__` runs at
that moment: it plans the mapping against the graph's variables, installs one
batched `RestoreV2` as their initializers, and yields arguments
(`vars_to_warm_start=[]`) that leave TF's own `warm_start` nothing to do (it
then logs "Warm-started 0 variables."; ours logs the real count just before).
Estimator only calls it when the model_dir has no checkpoint yet; our
`__bool__`, which Estimator evaluates first, logs a WARNING when it will skip.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf
from tensorflow.python.util import deprecation

from est_ckpt import mapping
from est_ckpt.tf import runtime
from est_ckpt.tf.request import WarmStartRequest, mapping_arg
from est_ckpt.tf.warm_starting import build_warm_start

# Only this module (of the warm start) needs Estimator: importing it without Estimator says what to install.
_estimator_lib = runtime.estimator()
_logger = tf.get_logger()
_TFWarmStartSettings = _estimator_lib.WarmStartSettings

# `WarmStartRequest` and `mapping_arg` moved to `est_ckpt.tf.request`; they stay importable from here.
__all__ = ["WarmStartRequest", "WarmStartSettings", "mapping_arg", "warm_start_settings"]


_ESTIMATOR_NOTE = " (TF's own warm_start, which Estimator runs next, is left nothing to do and logs 0)"


class WarmStartSettings(_TFWarmStartSettings):
    """A `tf.estimator.WarmStartSettings` that warm-starts with `est_ckpt`'s engine.

    Build it with `warm_start_settings`. Its four tuple fields are TF's; the
    fourth, `var_name_to_prev_var_name`, stays empty: renames live in the
    attributes `assignment_map`, `rename_rules` and `prev_var_names` (what the
    constructor got as `var_name_to_prev_var_name`). Iterating it in graph mode, as
    Estimator's `tf.compat.v1.train.warm_start(*settings)` does, applies the
    warm start to the default graph once and yields arguments for which TF's
    own warm-start does nothing. `plans` holds the plan applied to each graph.
    """

    def __new__(
        cls,
        ckpt_to_initialize_from,
        vars_to_warm_start=".*",
        var_name_to_vocab_info=None,
        var_name_to_prev_var_name=None,
        *,
        assignment_map=None,
        rename_rules=None,
    ):
        # TF marks the class deprecated (Estimator is); the warning would name our module, not the user's.
        with deprecation.silence():
            self = super().__new__(
                cls,
                ckpt_to_initialize_from,
                vars_to_warm_start,
                mapping_arg(var_name_to_vocab_info, "var_name_to_vocab_info"),
                None,
            )
        self.assignment_map = dict(assignment_map or {})
        # Kept out of the tuple so that TF's own warm_start never sees renames it would misapply.
        self.prev_var_names = mapping_arg(var_name_to_prev_var_name, "var_name_to_prev_var_name")
        self.rename_rules = tuple(tuple(r) for r in (rename_rules or ()))
        self.plans = weakref.WeakKeyDictionary()
        return self

    def __iter__(self):
        if tf.executing_eagerly():
            return tuple.__iter__(self)
        graph = tf.compat.v1.get_default_graph()
        plan = self.plans.get(graph)
        if plan is None:
            plan = build_warm_start(
                WarmStartRequest(self), var_list=None, install=True, note=_ESTIMATOR_NOTE
            )[1]
            self.plans[graph] = plan
        # TF's warm_start with no variables to warm-start only logs.
        return iter((plan.checkpoint, [], {}, {}))

    def __bool__(self):
        """Always True; when Estimator's `train()` is about to skip warm-starting, logs a WARNING saying so.

        Estimator's `_train_with_estimator_spec` evaluates `settings and not
        latest_checkpoint(model_dir)` and silently skips the warm start once
        the model_dir holds a checkpoint. Estimator's API gives the settings no
        explicit channel to that decision: they never see the Estimator, its
        model_dir or the mode (a `model_dir=` of our own would be a second
        source of truth, and Estimator may pick a temporary directory itself).
        So the caller's frame is read, only for that one caller (by its code
        name) and only to decide a log line: if Estimator's internals change,
        the warning is lost, never the warm start.
        """
        caller = sys._getframe(1)
        if caller.f_code.co_name == "_train_with_estimator_spec":
            model_dir = getattr(caller.f_locals.get("self"), "_model_dir", None)
            latest = tf.train.latest_checkpoint(model_dir) if model_dir else None
            if latest:
                _logger.warning(
                    "est_ckpt: NOT warm-starting from %s: model_dir %s already holds checkpoint %s, which "
                    "Estimator restores instead. Use a new model_dir to warm-start.",
                    self.ckpt_to_initialize_from,
                    model_dir,
                    latest,
                )
        return True

    def __repr__(self):
        # Estimator logs the settings it warm-starts with: show the renames too.
        extra = [
            f"{name}={value!r}"
            for name, value in (
                ("assignment_map", self.assignment_map),
                ("rename_rules", self.rename_rules),
                ("prev_var_names", self.prev_var_names),
            )
            if value
        ]
        base = super().__repr__()
        return base[:-1] + "".join(f", {e}" for e in extra) + ")"

    def __getnewargs__(self):
        return tuple(tuple.__iter__(self))

    def __getstate__(self):
        return {
            "assignment_map": self.assignment_map,
            "rename_rules": self.rename_rules,
            "prev_var_names": self.prev_var_names,
        }

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.plans = weakref.WeakKeyDictionary()

    def _asdict(self):
        return dict(zip(self._fields, tuple.__iter__(self)))

    def _replace(self, **kwargs):
        fields = dict(self._asdict(), var_name_to_prev_var_name=self.prev_var_names)
        fields.update(assignment_map=self.assignment_map, rename_rules=self.rename_rules)
        fields.update(kwargs)
        return WarmStartSettings(**fields)


def warm_start_settings(
    ckpt_to_initialize_from,
    vars_to_warm_start=".*",
    var_name_to_vocab_info: Optional[Mapping[str, Any]] = None,
    var_name_to_prev_var_name: Optional[Mapping[str, str]] = None,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[tuple[str, Optional[str]]]] = None,
) -> WarmStartSettings:
    """Returns the `tf.estimator.WarmStartSettings` to pass as `Estimator(warm_start_from=...)`.

    Arguments are those of `warm_start`: the first four are
    `tf.estimator.WarmStartSettings`'s, positional as there. The maps and rules
    are checked now; the checkpoint is read when Estimator builds its graph.

    Raises:
      MappingError: `assignment_map`, `rename_rules` or `var_name_to_prev_var_name` is malformed.
      NotAMappingError: `var_name_to_vocab_info` or `var_name_to_prev_var_name` is not a dict.
      ValueError: `ckpt_to_initialize_from` is empty.
    """
    prev = mapping_arg(var_name_to_prev_var_name, "var_name_to_prev_var_name")
    mapping.AssignmentMap(assignment_map, set(), prev)
    mapping.RenameRules(list(rename_rules or ()))
    return WarmStartSettings(
        ckpt_to_initialize_from,
        vars_to_warm_start,
        var_name_to_vocab_info,
        prev,
        assignment_map=assignment_map,
        rename_rules=rename_rules,
    )
