"""What a warm start is asked to do: one frozen request, checked once when it is built. No Estimator needed.

`WarmStartRequest.build(...)` takes `warm_start`'s arguments and
`WarmStartRequest.of(warm_start_from)` a checkpoint path, a request or either
kind of `WarmStartSettings`. The engine (`est_ckpt.tf.engine`) executes a
request; `est_ckpt.warm_start`, `make_tf2_scaffold(warm_start_from=...)` and
`WarmStartSettings` (Estimator's adapter, `est_ckpt.tf.settings`) all build one.
Settings are recognised without importing Estimator: no instance of either kind
can exist before its module is imported.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping, Optional, Sequence

from est_ckpt import mapping
from est_ckpt.errors import NotAMappingError
from est_ckpt.mapping.rules_file import load_rules

__all__ = ["WarmStartRequest", "mapping_arg"]

# `tf.estimator.WarmStartSettings` is a namedtuple of these fields.
_TF_FIELDS = (
    "ckpt_to_initialize_from",
    "vars_to_warm_start",
    "var_name_to_vocab_info",
    "var_name_to_prev_var_name",
)


def _ours() -> tuple[type, ...]:
    """est_ckpt's `WarmStartSettings` class, if its module was imported (else none can exist)."""
    settings = sys.modules.get("est_ckpt.tf.settings")
    return (settings.WarmStartSettings,) if settings is not None else ()


def mapping_arg(value, argument: str, *, none_only: bool = False) -> dict:
    """`value` as a dict: None (with `none_only` False, anything empty) is `{}`, a non-mapping is refused.

    Raises:
      NotAMappingError: `value` is not a mapping (TF's warm_start calls `.get` on
        it: an AttributeError; ours is a TypeError too).
    """
    if value is None or (not none_only and not value):
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    raise NotAMappingError(
        f"`{argument}` must be a dict keyed by variable name (got {type(value).__name__}: {value!r:.80})."
    )


@dataclasses.dataclass(frozen=True)
class WarmStartRequest:
    """What to warm-start from and how names map; build it with `build` or `of`.

    Attributes:
      ckpt: the checkpoint (model dir, prefix or SavedModel dir).
      vars: TF's `vars_to_warm_start`.
      vocab: `{variable name: VocabInfo}`.
      prev: TF's `{target: source}` renames.
      amap: `{source: target}` in `init_from_checkpoint`'s grammar.
      rules: ordered `(regex, replacement)` rename rules.
      transforms: the loaded rules file or preset (`mapping.rules_file.Rules`), or None.
    """

    ckpt: str
    vars: Any = ".*"
    vocab: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prev: Mapping[str, str] = dataclasses.field(default_factory=dict)
    amap: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rules: tuple = ()
    transforms: Any = None

    @classmethod
    def build(
        cls,
        ckpt_to_initialize_from,
        vars_to_warm_start=".*",
        var_name_to_vocab_info: Optional[Mapping[str, Any]] = None,
        var_name_to_prev_var_name: Optional[Mapping[str, str]] = None,
        *,
        assignment_map: Optional[Mapping[str, str]] = None,
        rename_rules: Optional[Sequence[tuple[str, Optional[str]]]] = None,
        vocab_none_only: bool = False,
        rules: Any = None,
    ) -> WarmStartRequest:
        """The request for `warm_start`'s arguments, its maps and rules checked (the only check).

        Args:
          vocab_none_only: as TF's `warm_start`, only None is "no vocabularies"
            (an empty non-dict is refused); TF's settings accept any empty value.

        Raises:
          MappingError: `assignment_map`, `rename_rules` or `var_name_to_prev_var_name` is malformed.
          RulesFileError: `rules` cannot be read or does not follow the rules format.
          NotAMappingError: `var_name_to_vocab_info` or `var_name_to_prev_var_name` is not a dict.
          TypeError: the checkpoint is not a path.
        """
        vocab = mapping_arg(var_name_to_vocab_info, "var_name_to_vocab_info", none_only=vocab_none_only)
        prev = mapping_arg(var_name_to_prev_var_name, "var_name_to_prev_var_name")
        amap = dict(assignment_map or {})
        renames = tuple(tuple(rule) for rule in (rename_rules or ()))
        # The grammar, once: which variables each entry matches is the plan's work, per graph.
        mapping.AssignmentMap(amap, set(), prev)
        mapping.RenameRules(list(renames))
        transforms = None if rules is None else load_rules(rules)
        return cls(_path(ckpt_to_initialize_from), vars_to_warm_start, vocab, prev, amap, renames, transforms)

    @classmethod
    def of(cls, warm_start_from) -> WarmStartRequest:
        """The request for a checkpoint path, a request, or either kind of `WarmStartSettings`.

        Raises:
          TypeError: `warm_start_from` is none of those.
        """
        if isinstance(warm_start_from, WarmStartRequest):
            return warm_start_from
        if isinstance(warm_start_from, (str, bytes, os.PathLike)):
            return cls(_path(warm_start_from))
        if isinstance(warm_start_from, _ours()):
            return warm_start_from.request
        if getattr(type(warm_start_from), "_fields", None) == _TF_FIELDS:
            ckpt, vars_to_warm_start, vocab, prev = tuple.__iter__(warm_start_from)
            return cls.build(ckpt, vars_to_warm_start, vocab, prev)
        raise TypeError(
            "warm_start_from must be a checkpoint path or a WarmStartSettings "
            f"(got {type(warm_start_from).__name__})."
        )


def _path(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    raise TypeError(f"the checkpoint to warm-start from must be a path (got {type(value).__name__}).")
