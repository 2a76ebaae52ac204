"""The est_ckpt flags' names and their validators: pure, they never touch the file system.

Part of `est_ckpt.tf.flags` (which re-exports `split_scopes` and `parse_map_entry`); imports neither
TensorFlow nor numpy.
"""

from __future__ import annotations

import re
from typing import Any, Optional, Union

from absl import flags

WARM_START_FROM = "warm_start_from"
WARM_START_VARS = "warm_start_vars"
WARM_START_MAP = "warm_start_map"
CKPT_FORMAT = "ckpt_format"
RESTORE_LEGACY = "restore_legacy"
ASYNC_SAVE = "async_save"
SAVE_ON_SIGNAL = "save_on_signal"


def split_scopes(value: str) -> Union[str, tuple[str, ...]]:
    """Returns `value` as TF's `vars_to_warm_start`: the regex itself, or a tuple of scopes if it holds a comma."""
    if "," not in value:
        return value
    return tuple(part.strip() for part in value.split(","))


def check_signal_names(names: list[str]) -> bool:
    import signal

    for name in names or ():
        if name not in signal.Signals.__members__ or name in ("SIGKILL", "SIGSTOP"):
            raise flags.ValidationError(
                f"--save_on_signal: {name!r} is not a signal that can be caught (e.g. SIGTERM, SIGUSR1)."
            )
    return True


def check_warm_start_vars(value: Optional[str]) -> bool:
    if value is None:
        return True
    parts = split_scopes(value)
    for part in (parts,) if isinstance(parts, str) else parts:
        if not part:
            raise flags.ValidationError(
                f"--warm_start_vars ({value!r}) holds an empty scope: write a regex, or scopes "
                "separated by single commas (e.g. 'dnn/,linear/')."
            )
        try:
            re.compile(part)
        except re.error as e:
            raise flags.ValidationError(
                f"--warm_start_vars: {part!r} is not a valid regular expression ({e})."
            ) from None
    return True


def parse_map_entry(entry: str) -> tuple[str, str]:
    """Splits one `SRC=DST` entry of `--warm_start_map`, checking the assignment-map grammar.

    The split is at the last `=`: a target is a TF variable name or scope, which
    cannot hold `=`, while a source may be an object path with any local name.

    Args:
      entry: `SRC=DST`.

    Returns:
      `(source, target)`.

    Raises:
      ValueError: `entry` breaks the grammar; the message quotes it.
    """
    source, sep, target = entry.rpartition("=")
    if not sep or not source or not target:
        raise ValueError(
            f"--warm_start_map entry {entry!r} must be SRC=DST with both sides non-empty "
            "(e.g. 'old_scope/=new_scope/')."
        )
    if target.endswith("/") and not source.endswith("/"):
        raise ValueError(
            f"--warm_start_map entry {entry!r} maps the variable {source!r} onto the scope {target!r}: "
            "a scope target needs a scope source ending in '/' (e.g. 'old_scope/=new_scope/' or '/=new_scope/')."
        )
    if source.endswith("/") and not target.endswith("/"):
        raise ValueError(
            f"--warm_start_map entry {entry!r} maps the scope {source!r} onto the variable {target!r}: "
            "end the target with '/' to map scope to scope, or name one variable on both sides."
        )
    return source, target


def check_warm_start_map(entries: list[str]) -> bool:
    seen: dict[str, str] = {}
    for entry in entries or ():
        try:
            source, _ = parse_map_entry(entry)
        except ValueError as e:
            raise flags.ValidationError(str(e)) from None
        if source in seen:
            raise flags.ValidationError(
                f"--warm_start_map names the source {source!r} twice ({seen[source]!r} and {entry!r}): "
                "give each source once."
            )
        seen[source] = entry
    return True


def check_needs_source(values: dict[str, Any]) -> bool:
    if values[WARM_START_FROM] is None and (values[WARM_START_VARS] is not None or values[WARM_START_MAP]):
        raise flags.ValidationError(
            "--warm_start_vars and --warm_start_map only apply with --warm_start_from=<model dir or checkpoint>."
        )
    if values[WARM_START_FROM] is not None and not values[WARM_START_FROM].strip():
        raise flags.ValidationError(
            "--warm_start_from is empty: give a model dir or checkpoint prefix, or omit it."
        )
    return True


__all__ = [
    "ASYNC_SAVE",
    "CKPT_FORMAT",
    "RESTORE_LEGACY",
    "SAVE_ON_SIGNAL",
    "WARM_START_FROM",
    "WARM_START_MAP",
    "WARM_START_VARS",
    "check_needs_source",
    "check_signal_names",
    "check_warm_start_map",
    "check_warm_start_vars",
    "parse_map_entry",
    "split_scopes",
]
