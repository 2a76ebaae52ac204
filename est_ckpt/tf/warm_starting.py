"""Warm-starting graph-mode models from any checkpoint: `warm_start`, `build_warm_start_op`, `init_from_checkpoint`.

`warm_start` is the drop-in for `tf.compat.v1.train.warm_start`;
`build_warm_start_op` returns the op `make_tf2_scaffold` runs in its
`Scaffold.init_fn`. Both build a `WarmStartRequest` (checked once) and hand it
to the engine, `est_ckpt.tf.engine`, which `WarmStartSettings` (what
`warm_start_settings` returns, for `Estimator(warm_start_from=...)`, in
`est_ckpt.tf.settings`) also runs when Estimator applies it.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf

from est_ckpt.errors import NotAMappingError
from est_ckpt.mapping import WarmStartPlan
from est_ckpt.tf.by_name import variable_name
from est_ckpt.tf.engine import build_warm_start
from est_ckpt.tf.request import WarmStartRequest, mapping_arg

# `WarmStartSettings` and `warm_start_settings` live in `est_ckpt.tf.settings` (they need Estimator, which
# `warm_start` does not); they stay importable from here, imported when first asked for.
_FROM_SETTINGS = ("WarmStartSettings", "warm_start_settings")


def __getattr__(name: str) -> Any:
    if name in _FROM_SETTINGS:
        from est_ckpt.tf import settings  # noqa: PLC0415 - Estimator only for those who use it.

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "WarmStartRequest",
    "build_warm_start",
    "build_warm_start_op",
    "init_from_checkpoint",
    "mapping_arg",
    "warm_start",
]


def build_warm_start_op(warm_start_from, *, var_list=None) -> tuple[Any, WarmStartPlan]:
    """Builds, in the default graph, one op that loads the warm-start values into the variables.

    The op holds ONE batched `RestoreV2` of every source key plus the assigns;
    run it in `Scaffold.init_fn` so it only runs when no checkpoint is restored.
    The variables' own initializers are left as they are.

    Args:
      warm_start_from: a checkpoint path (model dir or prefix, name-based or
        object-based, or a SavedModel dir), a `WarmStartSettings` from
        `warm_start_settings`, or TF's own `tf.estimator.WarmStartSettings`.
      var_list: the variables (or `PartitionedVariable`s) to warm-start;
        default: those `vars_to_warm_start` selects from the graph's collections.

    Returns:
      `(op, plan)`: the op to run and the `WarmStartPlan` it applies.

    Raises:
      MappingError: a variable has no source, an ambiguous one, one of another
        shape or dtype, or an `assignment_map` entry matches nothing.
      CheckpointNotFoundError: nothing is at the checkpoint path.
      RuntimeError: called in eager mode.
    """
    if tf.executing_eagerly():
        raise RuntimeError(
            "est_ckpt.build_warm_start_op builds graph ops: call it inside `with tf.Graph().as_default():` "
            "(Estimator's model_fn and Scaffold already are), or use `est_ckpt.warm_start` in eager mode."
        )
    return build_warm_start(WarmStartRequest.of(warm_start_from), var_list=var_list, install=False)


def warm_start(
    ckpt_to_initialize_from,
    vars_to_warm_start=".*",
    var_name_to_vocab_info: Optional[Mapping[str, Any]] = None,
    var_name_to_prev_var_name: Optional[Mapping[str, str]] = None,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[tuple[str, Optional[str]]]] = None,
    rules=None,
) -> WarmStartPlan:
    """Makes the default graph's variables initialise from a checkpoint (`tf.compat.v1.train.warm_start`).

    In graph mode every selected variable's initializer becomes an assign
    from one batched `RestoreV2`, so `global_variables_initializer()` (or a
    Scaffold's init op) loads the checkpoint values. In eager mode, as TF's,
    the variables listed in `vars_to_warm_start` get their values at once (a
    regex selects from the graph collections, which eager variables are not in).

    Args:
      ckpt_to_initialize_from: a model dir or a prefix, name-based or object-based.
      vars_to_warm_start: TF's semantics: a regex over trainable variables, a
        list of regex scopes over global variables, a list of variables, or
        None (only the variables of `var_name_to_vocab_info`).
      var_name_to_vocab_info: `{variable name: tf.estimator.VocabInfo}`: these
        variables are remapped by TF's own vocabulary warm-start.
      var_name_to_prev_var_name: TF's `{variable name: name in the checkpoint}`
        renames (the full name for a partitioned variable); a checkpoint name
        may also be a recorded `full_name` or an object path.
      assignment_map: `{source: target}` in `init_from_checkpoint`'s grammar
        (`'old/': 'new/'`, `'/': 'new/'`, exact names); a source may be a TF1
        name, a recorded `full_name` or an object path (`'vars/0'`). Every entry
        must match a variable.
      rename_rules: ordered `(regex, replacement)` pairs over variable names,
        for variables no `assignment_map` entry covers: the first regex
        matching a whole name gives its source name, the replacement with its
        group references filled in (`(r'new/(.*)', r'old/\\1')`); a `None`
        replacement leaves the variable alone. Lingvo-style rules for what
        the dict grammar cannot say.
      rules: a rules file, a preset's name (`'lstm'`, `'bert'`) or `Rules`:
        mapping rules with value transforms (`docs/transforms.md`), tried
        after `assignment_map` and before `rename_rules`; a transformed value
        is computed by est_ckpt's reader when the variable is initialised.

    Returns:
      The `WarmStartPlan` applied.

    Raises:
      MappingError: see `build_warm_start_op` (a `ValueError`, as TF raises).
      ValueError: `vars_to_warm_start` is not one of the forms above.
      NotAMappingError: `var_name_to_vocab_info` or `var_name_to_prev_var_name`
        is not a dict (an `AttributeError`, as TF raises).
    """
    request = WarmStartRequest.build(
        ckpt_to_initialize_from,
        vars_to_warm_start,
        var_name_to_vocab_info,
        var_name_to_prev_var_name,
        assignment_map=assignment_map,
        rename_rules=rename_rules,
        vocab_none_only=True,
        rules=rules,
    )
    return build_warm_start(request, var_list=None, install=True)[1]


def _whole_name(var) -> str:
    """A variable's name without `:0`; for a part of a partitioned variable, the whole's name."""
    info = var._get_save_slice_info() if hasattr(var, "_get_save_slice_info") else None
    return info.full_name if info is not None else variable_name(var)


def init_from_checkpoint(ckpt_dir_or_file, assignment_map) -> WarmStartPlan:
    """`tf.compat.v1.train.init_from_checkpoint` that reads either checkpoint kind.

    The same `assignment_map` (`{checkpoint name or scope: variable, variable
    name or scope}`, a list of parts or a `PartitionedVariable` for a
    partitioned one): the named variables' initializers load the checkpoint
    values. A checkpoint name may be a TF1 name, the `full_name` an
    object-based checkpoint recorded, or an object path, so TF1 code that
    builds its map from `est_ckpt.list_variables` (BERT's) loads every variable
    from a TF2 directory, where TF's own function loads nothing.

    Returns:
      The `WarmStartPlan` applied.

    Raises:
      MappingError: a variable has no source (or an ambiguous one, or one of
        another shape or dtype), or an entry names no variable (a `ValueError`, as TF raises).
      NotAMappingError: `assignment_map` is not a dict.
    """
    entries = mapping_arg(assignment_map, "assignment_map")
    graph_vars = tf.compat.v1.global_variables()
    chosen: list = []
    amap: dict[str, str] = {}
    for source, target in entries.items():
        if isinstance(target, str):
            amap[source] = target
            scope = "" if target == "/" else target
            if target.endswith("/"):
                chosen += [v for v in graph_vars if _whole_name(v).startswith(scope)]
            else:
                chosen += [v for v in graph_vars if _whole_name(v) == target]
            continue
        parts = (
            list(target)
            if isinstance(target, (list, tuple)) or hasattr(target, "_get_variable_list")
            else [target]
        )
        if not parts:
            raise NotAMappingError(f"assignment_map[{source!r}] is an empty list of variables.")
        amap[source] = _whole_name(parts[0])
        chosen += parts
    unique = list({id(v): v for v in chosen}.values())
    request = WarmStartRequest.build(ckpt_dir_or_file, ".*", assignment_map=amap)
    return build_warm_start(request, var_list=unique, install=True)[1]
