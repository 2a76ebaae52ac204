"""absl flags that put `est_ckpt` a few flags away from any Estimator launch script.

A launch script calls `define_flags()` at module level, then, inside its
`model_fn`, `scaffold_from_flags(...)`, which also warm-starts as the flags say
(a canned Estimator: `est = estimator_from_flags(est)` in `main`).
(To warm-start through the Estimator instead, pass
`Estimator(warm_start_from=warm_start_from_flags())` and
`scaffold_from_flags(warm_start_from=None)`.)::

    from absl import app, flags
    from est_ckpt.tf import flags as ckpt_flags

    ckpt_flags.define_flags()
    flags.adopt_module_key_flags(ckpt_flags)   # list them in the script's --helpshort

    def model_fn(features, labels, mode):
      ...
      return tf.estimator.EstimatorSpec(..., scaffold=ckpt_flags.scaffold_from_flags())

    def main(argv):
      ckpt_flags.validate_paths()   # file-system checks, as app.UsageError
      ckpt_flags.write_flags_file(FLAGS.model_dir)   # <model_dir>/flags.txt reproduces the run
      ...

Flags (all optional, so a script that defines them needs none on its command line):

- `--warm_start_from`: a model dir or checkpoint prefix to warm-start from
  (name-based or object-based).
- `--warm_start_vars`: which variables to warm-start: a regex over trainable
  variables (default `.*`), or, when the value holds a comma, a list of scopes
  over global variables (TF's `vars_to_warm_start` semantics).
- `--warm_start_map`: repeatable `SRC=DST`, one entry of the assignment map in
  `tf.compat.v1.train.init_from_checkpoint`'s grammar (`old_scope/=new_scope/`,
  `/=new_scope/`, `old/name=new/name`); SRC may also be an object path.
- `--ckpt_format`: `tf2` (object-based, the default), `tf1` (name-based, the way
  back) or `both` (object-based plus a name-based copy under `<model_dir>/tf1`).
- `--restore_legacy`: with `tf2`/`both`, restore a name-based checkpoint found in
  the model dir by variable name and save object-based from then on.
- `--async_save`: write checkpoints in the background (training waits for one
  host copy of the saved state per save).
- `--save_on_signal`: comma-separated signal names (`SIGTERM`): on one, save at
  the next step and stop training cleanly.

Bad values fail while parsing, with absl's error naming the flag. Validators are
pure (no file system); `validate_paths` does the file-system checks for `main`.

Importing this module imports neither TensorFlow nor numpy; the two builders do.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

from absl import app, flags

from est_ckpt.tf import flag_checks
from est_ckpt.tf.flag_checks import (  # the flags' names, and their pure checks (part of this module's API)
    ASYNC_SAVE,
    CKPT_FORMAT,
    RESTORE_LEGACY,
    SAVE_ON_SIGNAL,
    WARM_START_FROM,
    WARM_START_MAP,
    WARM_START_VARS,
    parse_map_entry,
    split_scopes,
)

# `write_flags_file` and `FLAGS_FILENAME` live in `est_ckpt.tf.flags_file`; part of this module's API.
from est_ckpt.tf.flags_file import FLAGS_FILENAME, write_flags_file

__all__ = [
    "CKPT_FORMAT",
    "CKPT_FORMATS",
    "FLAGS",
    "FLAGS_FILENAME",
    "ASYNC_SAVE",
    "FLAG_NAMES",
    "parse_map_entry",
    "split_scopes",
    "RESTORE_LEGACY",
    "SAVE_ON_SIGNAL",
    "WARM_START_FROM",
    "WARM_START_MAP",
    "WARM_START_VARS",
    "CheckpointFlags",
    "define_flags",
    "estimator_from_flags",
    "read_flags",
    "scaffold_from_flags",
    "validate_paths",
    "warm_start_from_flags",
    "write_flags_file",
]


FLAG_NAMES = (
    WARM_START_FROM,
    WARM_START_VARS,
    WARM_START_MAP,
    CKPT_FORMAT,
    RESTORE_LEGACY,
    ASYNC_SAVE,
    SAVE_ON_SIGNAL,
)
CKPT_FORMATS = ("tf2", "tf1", "both")

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class CheckpointFlags:
    """The est_ckpt flags, parsed and normalised.

    Attributes:
      warm_start_from: the checkpoint or model dir to warm-start from, or None.
      vars_to_warm_start: a regex string, or a tuple of scopes.
      assignment_map: `{source: target}` in the order given, empty when none.
      ckpt_format: `"tf2"`, `"tf1"` or `"both"`.
      restore_legacy: whether a tf2 scaffold restores name-based checkpoints.
      async_save: whether saves are written in the background.
      save_on_signal: the signal names (`"SIGTERM"`) that save and stop training.
    """

    warm_start_from: Optional[str] = None
    vars_to_warm_start: Union[str, tuple[str, ...]] = ".*"
    assignment_map: dict[str, str] = dataclasses.field(default_factory=dict)
    ckpt_format: str = "tf2"
    restore_legacy: bool = True
    async_save: bool = False
    save_on_signal: tuple[str, ...] = ()

    @property
    def saving(self) -> dict[str, Any]:
        """`async_save` and `save_on_signal` as the scaffolds take them (signal numbers)."""
        import signal

        return {
            "async_save": self.async_save,
            "save_on_signal": tuple(int(signal.Signals[name]) for name in self.save_on_signal),
        }


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the est_ckpt flags in `flag_values`, once.

    Calling it again on the same `flag_values` (two modules of one script both
    using the flags) does nothing. A flag of the same name defined by another
    module is absl's `DuplicateFlagError`.

    Args:
      flag_values: where to define the flags; tests pass a fresh `flags.FlagValues()`.

    Raises:
      flags.DuplicateFlagError: another module already defined one of these names.
    """
    if all(
        name in flag_values and flag_values.find_module_defining_flag(name) == __name__ for name in FLAG_NAMES
    ):
        return
    flags.DEFINE_string(
        WARM_START_FROM,
        None,
        "Model dir or checkpoint prefix (name-based or object-based) to warm-start from. "
        "Warm-starting happens only when the model dir has no checkpoint yet.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        WARM_START_VARS,
        None,
        "Variables to warm-start: a regex over trainable variables (default '.*'), or, when the "
        "value holds a comma, comma-separated scopes over global variables. Needs --warm_start_from.",
        flag_values=flag_values,
    )
    flags.DEFINE_multi_string(
        WARM_START_MAP,
        [],
        "Repeatable SRC=DST entry of the assignment map (init_from_checkpoint's grammar): "
        "'old_scope/=new_scope/', '/=new_scope/' or 'old/name=new/name'; SRC may be an object path. "
        "Needs --warm_start_from.",
        flag_values=flag_values,
    )
    flags.DEFINE_enum(
        CKPT_FORMAT,
        "tf2",
        CKPT_FORMATS,
        "Checkpoint format to save: tf2 (object-based), tf1 (name-based) or both "
        "(object-based plus a name-based copy under <model_dir>/tf1 for TF1 inference jobs).",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        RESTORE_LEGACY,
        True,
        "With --ckpt_format=tf2 or both: restore a name-based checkpoint of the model dir by "
        "variable name, then save object-based. (tf1 always reads both formats.)",
        flag_values=flag_values,
    )
    flags.DEFINE_bool(
        ASYNC_SAVE,
        False,
        "Write each checkpoint in the background: training waits only for one copy of the saved state "
        "to host memory; the last save of training is on disk when train() returns.",
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        SAVE_ON_SIGNAL,
        [],
        "Comma-separated signal names (e.g. SIGTERM, a scheduler's preemption notice): on one, training "
        "saves at the next step and stops cleanly, so a restarted job continues from that step.",
        flag_values=flag_values,
    )
    flags.register_validator(
        SAVE_ON_SIGNAL, flag_checks.check_signal_names, "invalid --save_on_signal", flag_values=flag_values
    )
    flags.register_validator(
        WARM_START_VARS,
        flag_checks.check_warm_start_vars,
        "invalid --warm_start_vars",
        flag_values=flag_values,
    )
    flags.register_validator(
        WARM_START_MAP, flag_checks.check_warm_start_map, "invalid --warm_start_map", flag_values=flag_values
    )
    flags.register_multi_flags_validator(
        [WARM_START_FROM, WARM_START_VARS, WARM_START_MAP],
        flag_checks.check_needs_source,
        "--warm_start_vars and --warm_start_map need --warm_start_from",
        flag_values=flag_values,
    )


# -- reading the flags --------------------------------------------------------------


def read_flags(flag_values: flags.FlagValues = FLAGS) -> CheckpointFlags:
    """Returns the parsed est_ckpt flags of `flag_values` as a frozen `CheckpointFlags`.

    Raises:
      flags.UnparsedFlagAccessError: `flag_values` has not been parsed yet.
      KeyError: `define_flags(flag_values)` was never called.
    """
    for name in FLAG_NAMES:
        if name not in flag_values:
            raise KeyError(
                f"--{name} is not defined: call est_ckpt.tf.flags.define_flags() at module level first."
            )
    # Attribute access (not `flag_values[name].value`) so an unparsed FlagValues raises.
    vars_value = getattr(flag_values, WARM_START_VARS)
    return CheckpointFlags(
        warm_start_from=getattr(flag_values, WARM_START_FROM),
        vars_to_warm_start=".*" if vars_value is None else split_scopes(vars_value),
        assignment_map=dict(parse_map_entry(e) for e in getattr(flag_values, WARM_START_MAP) or ()),
        ckpt_format=getattr(flag_values, CKPT_FORMAT),
        restore_legacy=bool(getattr(flag_values, RESTORE_LEGACY)),
        async_save=bool(getattr(flag_values, ASYNC_SAVE)),
        save_on_signal=tuple(getattr(flag_values, SAVE_ON_SIGNAL) or ()),
    )


def validate_paths(flag_values: flags.FlagValues = FLAGS) -> None:
    """The file-system checks that validators must not do; call it in `main`.

    Raises:
      app.UsageError: `--warm_start_from` names no checkpoint.
    """
    from est_ckpt.errors import EstCkptError
    from est_ckpt.format import checkpoint

    source = read_flags(flag_values).warm_start_from
    if source is None:
        return
    try:
        checkpoint.resolve_checkpoint(source)
    except (EstCkptError, OSError) as e:
        raise app.UsageError(f"--warm_start_from={source}: {e}", exitcode=2) from None


def warm_start_from_flags(flag_values: flags.FlagValues = FLAGS):
    """Builds the warm-start settings the flags describe.

    Args:
      flag_values: parsed flags holding the est_ckpt flags.

    Returns:
      `est_ckpt.warm_start_settings(...)` (a `tf.estimator.WarmStartSettings`, so
      Estimator is needed), or None without `--warm_start_from`.
    """
    request = _request_from_flags(flag_values)
    if request is None:
        return None
    from est_ckpt.tf.settings import WarmStartSettings  # noqa: PLC0415 - Estimator only for its users.

    return WarmStartSettings.from_request(request)


def _request_from_flags(flag_values: flags.FlagValues):
    """The `WarmStartRequest` the flags describe (no Estimator needed), or None without `--warm_start_from`."""
    parsed = read_flags(flag_values)
    if parsed.warm_start_from is None:
        return None
    from est_ckpt.tf.request import WarmStartRequest  # noqa: PLC0415 - flags load without TensorFlow.

    vars_to_warm_start = parsed.vars_to_warm_start
    if isinstance(vars_to_warm_start, tuple):
        vars_to_warm_start = list(vars_to_warm_start)
    return WarmStartRequest.build(
        parsed.warm_start_from,
        vars_to_warm_start,
        assignment_map=dict(parsed.assignment_map) or None,
    )


def scaffold_from_flags(objects=None, *, flag_values: flags.FlagValues = FLAGS, **scaffold_kwargs):
    """Builds the `Scaffold` the flags describe; call it inside `model_fn`.

    `--ckpt_format=tf2` is `make_tf2_scaffold(objects, restore_legacy=...)`, `both`
    adds `also_save_tf1=True`, `tf1` is `make_tf1_scaffold()` (which saves every
    variable by name, so `objects` does not apply). The scaffold warm-starts from
    `warm_start_from_flags()` unless `scaffold_kwargs` says `warm_start_from=`; do not
    also pass those settings to `Estimator(warm_start_from=...)`.

    Args:
      objects: what `make_tf2_scaffold` saves (None: every global variable).
      flag_values: parsed flags holding the est_ckpt flags.
      **scaffold_kwargs: passed on (`init_op`, `summary_op`, `warm_start_from`, ...).

    Returns:
      A `tf.compat.v1.train.Scaffold`.
    """
    from est_ckpt.tf import scaffold  # noqa: PLC0415 - flags load without TensorFlow.

    parsed = read_flags(flag_values)
    if "warm_start_from" not in scaffold_kwargs:
        scaffold_kwargs["warm_start_from"] = _request_from_flags(flag_values)
    scaffold_kwargs = {**parsed.saving, **scaffold_kwargs}
    if parsed.ckpt_format == "tf1":
        return scaffold.make_tf1_scaffold(**scaffold_kwargs)
    return scaffold.make_tf2_scaffold(
        objects,
        also_save_tf1=parsed.ckpt_format == "both",
        restore_legacy=parsed.restore_legacy,
        **scaffold_kwargs,
    )


def estimator_from_flags(estimator, flag_values: flags.FlagValues = FLAGS):
    """Returns `estimator` (a canned one, or any Estimator) saving the format `--ckpt_format` names.

    `tf2`/`both` is `est_ckpt.with_tf2_checkpoints(estimator, also_save_tf1=<both>,
    restore_legacy=--restore_legacy, warm_start_from=warm_start_from_flags())`,
    `tf1` is `est_ckpt.with_tf1_checkpoints(estimator, warm_start_from=...)`;
    `estimator` is left as it was. See `est_ckpt.tf.canned`.
    """
    from est_ckpt.tf import canned

    parsed = read_flags(flag_values)
    return canned.apply_ckpt_format(
        estimator,
        ckpt_format=parsed.ckpt_format,
        restore_legacy=parsed.restore_legacy,
        warm_start_from=warm_start_from_flags(flag_values),
        **parsed.saving,
    )
