"""Warm-starting graph-mode models from any checkpoint, in one batched restore.

`warm_start` is the drop-in for `tf.compat.v1.train.warm_start`;
`warm_start_settings` returns the `tf.estimator.WarmStartSettings` to pass as
`Estimator(warm_start_from=...)`; `build_warm_start_op` is the engine both use,
and the one `make_tf2_scaffold` runs in its `Scaffold.init_fn`.

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

import os
import sys
import weakref
from typing import Any, Mapping, Optional, Sequence, Union

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops
from tensorflow.python.ops import variables as variables_lib
from tensorflow.python.training import warm_starting_util
from tensorflow.python.util import deprecation

from est_ckpt import fileio, mapping
from est_ckpt.errors import MappingError, NotAMappingError, UnusedMappingError
from est_ckpt.format import checkpoint
from est_ckpt.mapping import WarmStartPlan
from est_ckpt.tf import runtime, vocab_remap

_estimator_lib = runtime.estimator()
_logger = tf.get_logger()
_TFWarmStartSettings = _estimator_lib.WarmStartSettings

__all__ = ["WarmStartSettings", "build_warm_start_op", "warm_start", "warm_start_settings"]


# -- reading the checkpoint once --------------------------------------------------------

_INFO_CACHE: dict[str, tuple[tuple, checkpoint.CheckpointInfo]] = {}


def _resolve(path: Union[str, os.PathLike]) -> str:
    """A model dir, prefix or SavedModel dir (as Estimator accepts) -> checkpoint prefix."""
    path = os.fspath(path)
    saved_model_vars = fileio.join(path, "variables", "variables")
    if fileio.isdir(path) and fileio.exists(saved_model_vars + ".index"):
        return saved_model_vars
    return checkpoint.resolve_checkpoint(path)


def _read_info(prefix: str) -> checkpoint.CheckpointInfo:
    # Estimator warm-starts every graph it builds (train, eval, predict): read the index once.
    index = prefix + ".index"
    stamp = (fileio.getsize(index), fileio.mtime(index))
    cached = _INFO_CACHE.get(prefix)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    info = checkpoint.read_checkpoint(prefix)
    _INFO_CACHE[prefix] = (stamp, info)
    return info


# -- the graph's variables ----------------------------------------------------------------


def _is_variable(x) -> bool:
    return isinstance(x, variables_lib.Variable) or resource_variable_ops.is_resource_variable(x)


def _select(vars_to_warm_start, var_list) -> list:
    """The variables `vars_to_warm_start` selects, as TF's `warm_start` collects them.

    None selects every trainable variable, as in TF; only those of
    `var_name_to_vocab_info` are then warm-started (see `_build`).
    """
    if var_list is not None:
        return list(var_list)
    v1 = tf.compat.v1
    if vars_to_warm_start is None or isinstance(vars_to_warm_start, str):
        return v1.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES, scope=vars_to_warm_start)
    # A list, as TF: it refuses tuples (and PartitionedVariables in the list) with a ValueError too.
    if isinstance(vars_to_warm_start, list):
        if all(isinstance(v, str) for v in vars_to_warm_start):
            out = []
            for scope in vars_to_warm_start:
                out += v1.get_collection(v1.GraphKeys.GLOBAL_VARIABLES, scope=scope)
            return out
        if all(_is_variable(v) for v in vars_to_warm_start):
            return list(vars_to_warm_start)
        raise ValueError(
            "`vars_to_warm_start` as a list must hold only variable names (regex scopes) or only "
            f"Variables (got {[type(v).__name__ for v in vars_to_warm_start]}); for a PartitionedVariable "
            "list its parts (`list(partitioned_variable)`)."
        )
    raise ValueError(
        f"`vars_to_warm_start` must be a regex string, a list of strings, a list of Variables or None "
        f"(got {type(vars_to_warm_start).__name__})."
    )


def _name_of(v) -> str:
    info = v._get_save_slice_info() if hasattr(v, "_get_save_slice_info") else None
    if info is not None:
        return info.full_name
    return v.op.name if not tf.executing_eagerly() else v.name.split(":")[0]


def _group(variables: Sequence) -> dict[str, list]:
    """`{full name: [variable or its parts]}`, partitions in offset order, duplicates dropped."""
    groups: dict[str, list] = {}
    seen: set = set()
    for v in variables:
        parts = list(v) if isinstance(v, variables_lib.PartitionedVariable) else [v]
        for p in parts:
            if id(p) in seen:
                continue
            seen.add(id(p))
            groups.setdefault(_name_of(p), []).append(p)
    for name, parts in groups.items():
        sliced = [p._get_save_slice_info() is not None for p in parts]
        if any(sliced) and not all(sliced) or (not any(sliced) and len(parts) > 1):
            raise MappingError(f"variable name '{name}' is shared by several variables of the graph.")
        if all(sliced):
            parts.sort(key=lambda p: list(p._get_save_slice_info().var_offset))
    return groups


def _target(name: str, parts: list, vocab: bool) -> mapping.Target:
    dtype = parts[0].dtype.base_dtype.name
    if vocab:
        # Vocabulary remapping changes the leading dimension: TF checks it itself.
        return mapping.Target(name, None, dtype)
    info = parts[0]._get_save_slice_info()
    if info is not None:
        return mapping.Target(name, tuple(info.full_shape), dtype)
    shape = parts[0].shape
    return mapping.Target(name, tuple(shape.as_list()) if shape.is_fully_defined() else None, dtype)


# -- the engine ---------------------------------------------------------------------------


def _mapping_arg(value, argument: str, *, none_only: bool = False) -> dict:
    """`value` as a dict: None (with `none_only` False, anything empty) is `{}`, a non-mapping is refused."""
    if value is None or (not none_only and not value):
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    # TF's warm_start calls `.get` on it: AttributeError (ours is a TypeError too).
    raise NotAMappingError(
        f"`{argument}` must be a dict keyed by variable name (got {type(value).__name__}: {value!r:.80})."
    )


class _Config:
    """The warm-start request, from a path or either kind of `WarmStartSettings`."""

    def __init__(self, warm_start_from):
        if isinstance(warm_start_from, (str, bytes, os.PathLike)):
            path = (
                warm_start_from.decode() if isinstance(warm_start_from, bytes) else os.fspath(warm_start_from)
            )
            self.ckpt, self.vars, self.vocab, self.prev, self.amap, self.rules = path, ".*", {}, {}, {}, ()
        elif isinstance(warm_start_from, WarmStartSettings):
            self.ckpt, self.vars, self.vocab, _ = tuple.__iter__(warm_start_from)
            self.prev = dict(warm_start_from.prev_var_names)
            self.amap = dict(warm_start_from.assignment_map)
            self.rules = tuple(warm_start_from.rename_rules)
        elif isinstance(warm_start_from, _TFWarmStartSettings):
            self.ckpt, self.vars, self.vocab, prev = tuple.__iter__(warm_start_from)
            self.prev = _mapping_arg(prev, "var_name_to_prev_var_name")
            self.amap, self.rules = {}, ()
        else:
            raise TypeError(
                "warm_start_from must be a checkpoint path or a WarmStartSettings "
                f"(got {type(warm_start_from).__name__})."
            )
        self.vocab = _mapping_arg(self.vocab, "var_name_to_vocab_info")


def _build(config: _Config, *, var_list, install: bool, note: str = "") -> tuple[Any, WarmStartPlan]:
    # Eager, as TF's warm_start: the ops run now, so there are no initializers to install.
    install = install and not tf.executing_eagerly()
    selected = _group(_select(config.vars, var_list))
    groups = selected
    prev = config.prev
    if var_list is None and not config.vars:
        # TF: a falsy `vars_to_warm_start` (None, '', []) warm-starts only the vocabulary variables
        # among those selected, yet counts a rename of any selected variable as used.
        groups = {name: parts for name, parts in selected.items() if config.vocab.get(name)}
        prev = {t: s for t, s in prev.items() if t in groups or t not in selected or not s}
    prefix = _resolve(config.ckpt)
    info = _read_info(prefix)
    # TF counts an entry without a VocabInfo (None) as unused, like one naming no selected variable.
    unused_vocab = sorted(name for name, vocab in config.vocab.items() if not vocab or name not in groups)
    if unused_vocab:
        raise UnusedMappingError(
            f"var_name_to_vocab_info names variables that are not warm-started: {', '.join(unused_vocab)}. "
            f"Variables selected by vars_to_warm_start: {', '.join(sorted(groups)) or '(none)'}."
        )
    targets = [_target(name, parts, name in config.vocab) for name, parts in groups.items()]
    plan = mapping.plan_mapping(
        info,
        targets,
        assignment_map=config.amap,
        rename_rules=config.rules,
        var_name_to_prev_var_name=prev,
    )
    plan.raise_for_errors()

    # One RestoreV2 for every (key, slice) any variable needs.
    requests: dict[tuple[str, str], int] = {}
    names, specs, dtypes = [], [], []

    def request(key: str, spec: str, dtype: str) -> int:
        at = requests.get((key, spec))
        if at is None:
            at = requests[(key, spec)] = len(names)
            names.append(key)
            specs.append(spec)
            dtypes.append(tf.as_dtype(dtype))
        return at

    work = []
    for a in plan.assignments:
        parts = groups[a.target]
        if a.target in config.vocab and len(a.source_keys) > 1:
            # TF's kernel reads one tensor: remap the parts saved one by one after concatenating them.
            work.append(("vocab_parts", a, parts, [request(k, "", a.source_dtype) for k in a.source_keys]))
        elif a.target in config.vocab:
            work.append(("vocab", a, parts, None))
        elif len(a.source_keys) > 1:
            work.append(("concat", a, parts, [request(k, "", a.source_dtype) for k in a.source_keys]))
        else:
            slots = []
            for p in parts:
                slice_info = p._get_save_slice_info()
                slots.append(request(a.source_keys[0], slice_info.spec if slice_info else "", a.source_dtype))
            work.append(("direct", a, parts, slots))

    ops = []
    with tf.name_scope("est_ckpt_warm_start"):
        restored = []
        if names:
            # RestoreV2 runs on CPU; not colocating with the variables keeps them where they are.
            with tf.device("/cpu:0"):
                restored = tf.raw_ops.RestoreV2(
                    prefix=prefix, tensor_names=names, shape_and_slices=specs, dtypes=dtypes
                )
        for kind, a, parts, slots in work:
            if kind == "vocab":
                ops += _vocab(a, parts, config.vocab[a.target], prefix, install)
                continue
            if kind == "vocab_parts":
                whole = tf.concat([restored[i] for i in slots], axis=a.part_axis)
                values = vocab_remap.remap_initial_values(parts, whole, config.vocab[a.target])
            elif kind == "concat":
                whole = tf.concat([restored[i] for i in slots], axis=a.part_axis)
                values = [_slice_of(whole, p) for p in parts]
            else:
                values = [restored[i] for i in slots]
            for p, value in zip(parts, values):
                ops.append(_assign(p, value, install))
            _logger.debug("est_ckpt warm-start: %s <- %s (%s)", a.target, a.source_key, a.via)
    _logger.info("est_ckpt warm-started %s%s", plan.summary(), note)
    if install:
        # The initializers carry the assigns; a group op over thousands of them would only cost build time.
        return None, plan
    return tf.group(*ops, name="est_ckpt_warm_start") if ops else tf.no_op(name="est_ckpt_warm_start"), plan


def _slice_of(whole, part):
    info = part._get_save_slice_info()
    if info is None:
        return whole
    return tf.slice(whole, info.var_offset, info.var_shape)


def _assign(var, value, install: bool):
    value.set_shape(var.shape)
    if getattr(var, "is_distributed_variable", False):
        # A distribution strategy's variable (Estimator's train_distribute): its handle is
        # per replica, so every component gets the restored value.
        op = tf.group(*[tf.raw_ops.AssignVariableOp(resource=c.handle, value=value) for c in var.values])
    elif resource_variable_ops.is_resource_variable(var):
        op = tf.raw_ops.AssignVariableOp(resource=var.handle, value=value)
    else:
        op = tf.compat.v1.assign(var, value).op
    if install:
        # As `init_from_checkpoint` does: the variable's initializer now loads the checkpoint value.
        var._initializer_op = op
        var._initial_value = value
    return op


def _vocab(a: mapping.Assignment, parts: list, vocab_info, prefix: str, install: bool) -> list:
    """Delegates a vocabulary-remapped variable to TF's own `_warm_start_var_with_vocab`."""
    before = [p._initializer_op for p in parts]
    warm_starting_util._warm_start_var_with_vocab(
        parts if len(parts) > 1 else parts[0],
        current_vocab_path=vocab_info.new_vocab,
        current_vocab_size=vocab_info.new_vocab_size,
        prev_ckpt=prefix,
        prev_vocab_path=vocab_info.old_vocab,
        previous_vocab_size=vocab_info.old_vocab_size,
        current_oov_buckets=vocab_info.num_oov_buckets,
        prev_tensor_name=a.source_keys[0],
        initializer=vocab_info.backup_initializer,
        axis=vocab_info.axis,
    )
    ops = [p._initializer_op for p in parts]
    if not install:
        for p, op in zip(parts, before):
            p._initializer_op = op
    _logger.debug("est_ckpt warm-start: %s <- %s (vocabulary remapped by TF)", a.target, a.source_key)
    return ops


def build_warm_start_op(warm_start_from, *, var_list=None) -> tuple[tf.Operation, WarmStartPlan]:
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
    return _build(_Config(warm_start_from), var_list=var_list, install=False)


def warm_start(
    ckpt_to_initialize_from,
    vars_to_warm_start=".*",
    var_name_to_vocab_info: Optional[Mapping[str, Any]] = None,
    var_name_to_prev_var_name: Optional[Mapping[str, str]] = None,
    *,
    assignment_map: Optional[Mapping[str, str]] = None,
    rename_rules: Optional[Sequence[tuple[str, Optional[str]]]] = None,
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

    Returns:
      The `WarmStartPlan` applied.

    Raises:
      MappingError: see `build_warm_start_op` (a `ValueError`, as TF raises).
      ValueError: `vars_to_warm_start` is not one of the forms above.
      NotAMappingError: `var_name_to_vocab_info` or `var_name_to_prev_var_name`
        is not a dict (an `AttributeError`, as TF raises).
    """
    config = _Config(ckpt_to_initialize_from)
    config.vars = vars_to_warm_start
    config.vocab = _mapping_arg(var_name_to_vocab_info, "var_name_to_vocab_info", none_only=True)
    config.prev = _mapping_arg(var_name_to_prev_var_name, "var_name_to_prev_var_name")
    config.amap = dict(assignment_map or {})
    config.rules = tuple(rename_rules or ())
    return _build(config, var_list=None, install=True)[1]


# -- Estimator ------------------------------------------------------------------------------


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
                _mapping_arg(var_name_to_vocab_info, "var_name_to_vocab_info"),
                None,
            )
        self.assignment_map = dict(assignment_map or {})
        # Kept out of the tuple so that TF's own warm_start never sees renames it would misapply.
        self.prev_var_names = _mapping_arg(var_name_to_prev_var_name, "var_name_to_prev_var_name")
        self.rename_rules = tuple(tuple(r) for r in (rename_rules or ()))
        self.plans = weakref.WeakKeyDictionary()
        return self

    def __iter__(self):
        if tf.executing_eagerly():
            return tuple.__iter__(self)
        graph = tf.compat.v1.get_default_graph()
        plan = self.plans.get(graph)
        if plan is None:
            plan = _build(_Config(self), var_list=None, install=True, note=_ESTIMATOR_NOTE)[1]
            self.plans[graph] = plan
        # TF's warm_start with no variables to warm-start only logs.
        return iter((plan.checkpoint, [], {}, {}))

    def __bool__(self):
        # Estimator's train() evaluates `settings and not latest_checkpoint(model_dir)`:
        # say so when it is about to skip warm-starting (TF itself is silent).
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
    prev = _mapping_arg(var_name_to_prev_var_name, "var_name_to_prev_var_name")
    mapping._AssignmentMap(assignment_map, set(), prev)
    mapping._Rules(list(rename_rules or ()))
    return WarmStartSettings(
        ckpt_to_initialize_from,
        vars_to_warm_start,
        var_name_to_vocab_info,
        prev,
        assignment_map=assignment_map,
        rename_rules=rename_rules,
    )
