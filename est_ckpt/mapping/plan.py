"""What a warm start does: `Target`s in, `Assignment`s and problems out, gathered in a `WarmStartPlan`.

`planner.plan_mapping` builds the plan; the plan explains itself
(`summary`, `closest`) and refuses itself (`raise_for_errors`)
with one error per kind of problem, listing every instance.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import NamedTuple, Optional

from est_ckpt.errors import (
    AmbiguousNameError,
    MismatchError,
    TransformError,
    UnmappedVariablesError,
    UnusedMappingError,
)
from est_ckpt.format import keys
from est_ckpt.mapping.transforms import Transform

# How many unmapped variables an error message spells out with their closest names.
_MAX_LISTED = 20


class Target(NamedTuple):
    """A variable of the new model.

    Attributes:
      name: its full name (for a partitioned variable, the name of the whole).
      shape: its full shape, or None when unknown (not checked then).
      dtype: TF's dtype name (`float32`), or None when unknown.
    """

    name: str
    shape: Optional[tuple[int, ...]] = None
    dtype: Optional[str] = None


class Assignment(NamedTuple):
    """One target variable and the checkpoint key(s) it is initialised from.

    Attributes:
      target: the target variable's name.
      source_key: the checkpoint key; for a variable whose parts were saved one
        by one, the parts' keys joined by `,`.
      source_keys: the key, or each part's key in part order.
      source_name: the name that was resolved (after maps and rules).
      via: how the source name was found: `'assignment_map'`, `'scope'`,
        `'rule'` or `'name'`.
      target_shape, target_dtype: what the variable expects (None: unknown).
      source_shape, source_dtype: what the checkpoint holds (whole variable).
      part_axis: the axis the parts of `source_keys` are concatenated on.
      transform: how the value is computed from its source(s) (a rules file's
        transforms), or None: the source's value as it is. With one,
        `source_shape`/`source_dtype` are what the transforms give.
    """

    target: str
    source_key: str
    source_keys: tuple[str, ...]
    source_name: str
    via: str
    target_shape: Optional[tuple[int, ...]]
    target_dtype: Optional[str]
    source_shape: tuple[int, ...]
    source_dtype: str
    part_axis: int = 0
    transform: Optional[Transform] = None

    @property
    def shape_ok(self) -> bool:
        return self.target_shape is None or tuple(self.target_shape) == tuple(self.source_shape)

    @property
    def dtype_ok(self) -> bool:
        return self.target_dtype is None or self.target_dtype == self.source_dtype


@dataclasses.dataclass(frozen=True)
class Unmapped:
    """A target variable without a usable source.

    Attributes:
      target: the variable's name.
      source_name: the name looked up in the checkpoint.
      via: how `source_name` was found (see `Assignment.via`).
      ambiguous_keys: when `source_name` is held by several keys, those keys.
    """

    target: str
    source_name: str
    via: str
    ambiguous_keys: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class WarmStartPlan:
    """What a warm start does, or would do: the dry run and the record of a real one.

    Attributes:
      checkpoint: the source checkpoint prefix.
      format: `'tf1'` or `'tf2'`.
      assignments: every target variable with a source, mismatched ones included.
      unmapped: target variables without a source (missing or ambiguous name).
      skipped: target variables a rename rule with a `None` replacement left alone.
      unused_sources: checkpoint keys no variable reads (never an error).
      unused_mappings: `assignment_map` entries and rename rules that matched no
        variable (an error).
      transform_errors: rules whose transforms do not fit their pair (an error),
        one message each.
    """

    checkpoint: str
    format: str
    assignments: tuple[Assignment, ...]
    unmapped: tuple[Unmapped, ...] = ()
    skipped: tuple[str, ...] = ()
    unused_sources: tuple[str, ...] = ()
    unused_mappings: tuple[str, ...] = ()
    transform_errors: tuple[str, ...] = ()
    candidates: tuple[str, ...] = dataclasses.field(default=(), repr=False, compare=False)

    @property
    def mismatched(self) -> tuple[Assignment, ...]:
        """The assignments whose shapes or dtypes disagree."""
        return tuple(a for a in self.assignments if not (a.shape_ok and a.dtype_ok))

    @property
    def ambiguous(self) -> tuple[Unmapped, ...]:
        return tuple(u for u in self.unmapped if u.ambiguous_keys)

    @property
    def ok(self) -> bool:
        """Whether applying this plan would succeed."""
        return not (self.unmapped or self.unused_mappings or self.mismatched or self.transform_errors)

    def mapping(self) -> dict[str, str]:
        """`{target: source_key}` for every assignment."""
        return {a.target: a.source_key for a in self.assignments}

    def closest(self, name: str, n: int = 3) -> list[str]:
        """The checkpoint names and object paths closest to `name` (difflib).

        Only plans with unmapped variables keep the candidates (a clean plan
        skips that work), so this is for explaining `unmapped`.
        """
        return difflib.get_close_matches(name, self.candidates, n=n, cutoff=0.5)

    def raise_for_errors(self, *, conversion: bool = False) -> None:
        """Raises the first kind of problem this plan has, listing every instance of it.

        Args:
          conversion: word the advice for `convert --like` (rules, `keep_unmapped`)
            instead of for a warm start (`vars_to_warm_start`).

        Raises:
          AmbiguousNameError: a source name is held by several keys.
          UnmappedVariablesError: variables have no source in the checkpoint.
          MismatchError: a source and its target disagree in shape or dtype.
          TransformError: a rule's transforms do not fit its pair.
          UnusedMappingError: an `assignment_map` entry or rename rule matched nothing.
        """
        if self.ambiguous:
            lines = [
                f"  '{u.target}' <- '{u.source_name}': held by {', '.join(u.ambiguous_keys)}"
                for u in self.ambiguous
            ]
            raise AmbiguousNameError(
                f"{self.checkpoint}: {len(lines)} source name(s) are held by several keys of this object-based "
                "checkpoint, so the value to load is ambiguous:\n" + "\n".join(lines) + "\n"
                "Name the object path instead (for example "
                f"assignment_map={{'{keys.strip_value_suffix(self.ambiguous[0].ambiguous_keys[0])}': "
                f"'{self.ambiguous[0].target}'}})."
            )
        if self.unmapped:
            lines = []
            for u in self.unmapped[:_MAX_LISTED]:
                near = self.closest(u.source_name)
                hint = (
                    f"; closest in checkpoint: {', '.join(near)}"
                    if near
                    else "; nothing similar in checkpoint"
                )
                via = "" if u.source_name == u.target else f" (looked up as '{u.source_name}' via {u.via})"
                lines.append(f"  '{u.target}'{via}{hint}")
            if len(self.unmapped) > _MAX_LISTED:
                lines.append(f"  ... and {len(self.unmapped) - _MAX_LISTED} more")
            head = (
                f"{self.checkpoint}: {len(self.unmapped)} variable(s) have no source in this {self.format} "
                "checkpoint:\n" + "\n".join(lines) + "\n"
                "Map them with `assignment_map` ({'old_name': 'new_name'} or {'old_scope/': 'new_scope/'}), "
            )
            if not conversion:
                raise UnmappedVariablesError(
                    head + "`rename_rules`, or leave them out of `vars_to_warm_start`."
                )
            raise UnmappedVariablesError(
                head + "`rename_rules` or `rules` (a rules file or preset: docs/transforms.md), or pass "
                "keep_unmapped=True to keep the template's values."
            ).for_cli(
                head.replace("`assignment_map`", "--assignment_map")
                + "--rename_rule or --rules (a rules file or preset: docs/transforms.md), or pass "
                "--keep_unmapped to keep the template's values."
            )
        if self.transform_errors:
            raise TransformError(
                f"{self.checkpoint}: {len(self.transform_errors)} rule(s) do not fit their variables:\n  "
                + "\n  ".join(self.transform_errors)
            )
        bad = self.mismatched
        if bad:
            lines = [
                f"  '{a.target}' {_describe(a.target_shape, a.target_dtype)} <- '{a.source_key}' "
                f"{_describe(a.source_shape, a.source_dtype)}"
                for a in bad
            ]
            what = (
                "give rules whose transforms reach the target's shape and dtype (reshape, transpose, slice, "
                "cast: docs/transforms.md)"
            )
            raise MismatchError(
                f"{self.checkpoint}: {len(bad)} variable(s) disagree with their source in shape or dtype:\n"
                + "\n".join(lines)
                + "\nMap them to a source of the same shape and dtype, or "
                + (f"{what}." if conversion else f"{what}, or leave them out of `vars_to_warm_start`.")
            )
        if self.unused_mappings:
            raise UnusedMappingError(
                f"{self.checkpoint}: these mapping entries match no variable to warm-start: "
                + "; ".join(self.unused_mappings)
                + ". Perhaps they are misspelled, or the variable is not selected by `vars_to_warm_start`."
            )

    def summary(self) -> str:
        """One line of counts, for logs."""
        parts = sum(1 for a in self.assignments if len(a.source_keys) > 1)
        computed = sum(1 for a in self.assignments if a.transform is not None)
        return (
            f"{len(self.assignments)} variable(s) from {self.format} checkpoint {self.checkpoint}"
            + (f" ({parts} assembled from parts saved one by one)" if parts else "")
            + (f" ({computed} through transforms)" if computed else "")
            + f"; {len(self.skipped)} skipped by rename rules; {len(self.unused_sources)} checkpoint key(s) unused"
        )


def _describe(shape, dtype) -> str:
    return f"{'?' if shape is None else list(shape)} {dtype or '?'}"
