"""Estimator's adapter: `WarmStartSettings`, a genuine `tf.estimator.WarmStartSettings` over a `WarmStartRequest`.

`warm_start_settings(...)` builds the request (`est_ckpt.tf.request`, checked
once) and wraps it in a `WarmStartSettings` to pass as
`Estimator(warm_start_from=...)`; the engine (`est_ckpt.tf.engine`) does the work.

The adapter's one job is riding Estimator's own call, without patching
TensorFlow: Estimator calls `tf.compat.v1.train.warm_start(*settings)` after
`model_fn` has built the graph. `WarmStartSettings` is a namedtuple, so our
subclass's `__iter__` runs at that moment: it hands the request to the engine
for the default graph (once per graph) and yields arguments
(`vars_to_warm_start=[]`) that leave TF's own `warm_start` nothing to do (it
then logs "Warm-started 0 variables."; ours logs the real count just before).
Estimator only calls it when the model_dir has no checkpoint yet; our
`__bool__`, which Estimator evaluates first, logs a WARNING when it will skip
(found through `est_ckpt.tf.estimator_stack`, the one place that reads the stack).
"""

from __future__ import annotations

import weakref
from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf
from tensorflow.python.util import deprecation

from est_ckpt.tf import estimator_stack, runtime
from est_ckpt.tf.engine import build_warm_start
from est_ckpt.tf.request import WarmStartRequest, mapping_arg

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
        rules=None,
    ):
        request = WarmStartRequest.build(
            ckpt_to_initialize_from,
            vars_to_warm_start,
            var_name_to_vocab_info,
            var_name_to_prev_var_name,
            assignment_map=assignment_map,
            rename_rules=rename_rules,
            rules=rules,
        )
        return cls.from_request(request, ckpt_to_initialize_from)

    @classmethod
    def from_request(cls, request: WarmStartRequest, ckpt_to_initialize_from=None) -> WarmStartSettings:
        # TF marks the class deprecated (Estimator is); the warning would name our module, not the user's.
        with deprecation.silence():
            self = super().__new__(
                cls,
                request.ckpt if ckpt_to_initialize_from is None else ckpt_to_initialize_from,
                request.vars,
                dict(request.vocab),
                None,
            )
        self.request = request
        self.plans = weakref.WeakKeyDictionary()
        return self

    # The renames, kept out of the tuple so that TF's own warm_start never sees renames it would misapply.
    @property
    def assignment_map(self) -> dict:
        return dict(self.request.amap)

    @property
    def prev_var_names(self) -> dict:
        """What the constructor got as `var_name_to_prev_var_name`."""
        return dict(self.request.prev)

    @property
    def rename_rules(self) -> tuple:
        return self.request.rules

    @property
    def rules(self):
        """The rules file or preset with value transforms (`mapping.rules_file.Rules`), or None."""
        return self.request.transforms

    def __iter__(self):
        if tf.executing_eagerly():
            return tuple.__iter__(self)
        graph = tf.compat.v1.get_default_graph()
        plan = self.plans.get(graph)
        if plan is None:
            plan = build_warm_start(self.request, var_list=None, install=True, note=_ESTIMATOR_NOTE)[1]
            self.plans[graph] = plan
        # TF's warm_start with no variables to warm-start only logs.
        return iter((plan.checkpoint, [], {}, {}))

    def __bool__(self):
        """Always True; when Estimator's `train()` is about to skip warm-starting, logs a WARNING saying so.

        Estimator's `_train_with_estimator_spec` evaluates `settings and not
        latest_checkpoint(model_dir)` and silently skips the warm start once
        the model_dir holds a checkpoint. Estimator gives the settings no
        channel to that decision (they never see the Estimator, its model_dir
        or the mode), so `estimator_stack.train_calling` looks at the caller,
        only to decide this log line.
        """
        estimator = estimator_stack.train_calling()
        model_dir = getattr(estimator, "_model_dir", None)
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
                ("rules", self.rules),
            )
            if value
        ]
        base = super().__repr__()
        return base[:-1] + "".join(f", {e}" for e in extra) + ")"

    def __getnewargs__(self):
        return tuple(tuple.__iter__(self))

    def __getstate__(self):
        return {"request": self.request}

    def __setstate__(self, state):
        self.request = state["request"]
        self.plans = weakref.WeakKeyDictionary()

    def _asdict(self):
        return dict(zip(self._fields, tuple.__iter__(self)))

    def _replace(self, **kwargs):
        fields = dict(self._asdict(), var_name_to_prev_var_name=self.prev_var_names)
        fields.update(assignment_map=self.assignment_map, rename_rules=self.rename_rules, rules=self.rules)
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
    rules=None,
) -> WarmStartSettings:
    """Returns the `tf.estimator.WarmStartSettings` to pass as `Estimator(warm_start_from=...)`.

    Arguments are those of `warm_start` (`rules` too): the first four are
    `tf.estimator.WarmStartSettings`'s, positional as there. The maps and rules
    are checked now; the checkpoint is read when Estimator builds its graph.

    Raises:
      MappingError: `assignment_map`, `rename_rules` or `var_name_to_prev_var_name` is malformed.
      NotAMappingError: `var_name_to_vocab_info` or `var_name_to_prev_var_name` is not a dict.
      ValueError: `ckpt_to_initialize_from` is empty.
    """
    return WarmStartSettings(
        ckpt_to_initialize_from,
        vars_to_warm_start,
        var_name_to_vocab_info,
        var_name_to_prev_var_name,
        assignment_map=assignment_map,
        rename_rules=rename_rules,
        rules=rules,
    )
