"""What a warm start is asked to do, from a path or either kind of `WarmStartSettings`: no Estimator needed.

`est_ckpt.warm_start` (the engine, `est_ckpt.tf.warm_starting`) needs only
TensorFlow; `WarmStartSettings` (`est_ckpt.tf.settings`) needs Estimator too.
The request recognises both kinds of settings without importing Estimator:
no instance of either can exist before its module is imported.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

from est_ckpt.errors import NotAMappingError

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


class WarmStartRequest:
    """What a warm start is asked to do, from a path or either kind of `WarmStartSettings`.

    Attributes:
      ckpt: the checkpoint (model dir, prefix or SavedModel dir).
      vars: TF's `vars_to_warm_start`.
      vocab: `{variable name: VocabInfo}`.
      prev: TF's `{target: source}` renames.
      amap: `{source: target}` in `init_from_checkpoint`'s grammar.
      rules: ordered `(regex, replacement)` rename rules.

    Raises:
      TypeError: `warm_start_from` is none of those.
    """

    def __init__(self, warm_start_from):
        if isinstance(warm_start_from, (str, bytes, os.PathLike)):
            path = (
                warm_start_from.decode() if isinstance(warm_start_from, bytes) else os.fspath(warm_start_from)
            )
            self.ckpt, self.vars, self.vocab, self.prev, self.amap, self.rules = path, ".*", {}, {}, {}, ()
        elif isinstance(warm_start_from, _ours()):
            self.ckpt, self.vars, self.vocab, _ = tuple.__iter__(warm_start_from)
            self.prev = dict(warm_start_from.prev_var_names)
            self.amap = dict(warm_start_from.assignment_map)
            self.rules = tuple(warm_start_from.rename_rules)
        elif getattr(type(warm_start_from), "_fields", None) == _TF_FIELDS:
            self.ckpt, self.vars, self.vocab, prev = tuple.__iter__(warm_start_from)
            self.prev = mapping_arg(prev, "var_name_to_prev_var_name")
            self.amap, self.rules = {}, ()
        else:
            raise TypeError(
                "warm_start_from must be a checkpoint path or a WarmStartSettings "
                f"(got {type(warm_start_from).__name__})."
            )
        self.vocab = mapping_arg(self.vocab, "var_name_to_vocab_info")
