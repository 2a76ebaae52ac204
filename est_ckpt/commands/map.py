"""`est-ckpt map SOURCE --target TARGET [--assignment_map SRC=DST ...] [--json]`: the warm-start dry run.

Exit 0 when `warm_start` would succeed, 1 when it would refuse (unmapped,
ambiguous or mismatched variables, unused map entries), 2 on usage errors.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from est_ckpt import mapping

USAGE = (
    "map SOURCE --target TARGET [--assignment_map SRC=DST ...] [--rename_rule REGEX=REPLACEMENT ...] "
    "[--vars_to_warm_start REGEX] [--json]"
)
ACCEPTS = ("json", "target", "assignment_map", "rename_rule", "vars_to_warm_start")

TARGET = flags.DEFINE_string(
    "target", None, "Checkpoint or model dir of the new model: its variable names, shapes and dtypes."
)
ASSIGNMENT_MAP = flags.DEFINE_multi_string(
    "assignment_map",
    [],
    "Repeatable SRC=DST entry in init_from_checkpoint's grammar: 'old/name=new/name', "
    "'old_scope/=new_scope/', '/=new_scope/'; SRC may be an object path ('vars/0').",
)
RENAME_RULE = flags.DEFINE_multi_string(
    "rename_rule",
    [],
    "Repeatable, ordered REGEX=REPLACEMENT rule over target names (split at the last '='): the first "
    "REGEX matching a whole name gives its source name, e.g. 'new/(.*)=old/\\1'. An empty REPLACEMENT "
    "leaves the variable alone.",
)
VARS_TO_WARM_START = flags.DEFINE_string(
    "vars_to_warm_start", None, "Regex: plan only the target variables whose names it matches at the start."
)


def _pairs(values: list[str], what: str, *, last: bool) -> list[tuple[str, str]]:
    out = []
    for value in values:
        if "=" not in value:
            raise app.UsageError(
                f"--{what} {value!r} must be written {'REGEX=REPLACEMENT' if last else 'SRC=DST'}.",
                exitcode=2,
            )
        left, right = value.rsplit("=", 1) if last else value.split("=", 1)
        out.append((left, right))
    return out


def _line(a: mapping.Assignment) -> str:
    if a.shape_ok and a.dtype_ok:
        verdict = "ok"
    else:
        verdict = "MISMATCH " + "; ".join(
            w
            for ok, w in (
                (a.shape_ok, f"shape {list(a.target_shape or [])} vs {list(a.source_shape)}"),
                (a.dtype_ok, f"dtype {a.target_dtype} vs {a.source_dtype}"),
            )
            if not ok
        )
    return f"{a.target} <- {a.source_key}  [{verdict}]"


def run(args: list[str]) -> int:
    if len(args) != 1:
        raise app.UsageError(
            f"map takes exactly one SOURCE checkpoint (got {len(args)} arguments).", exitcode=2
        )
    if not TARGET.value:
        raise app.UsageError(
            "map needs --target TARGET (a checkpoint or model dir of the new model).", exitcode=2
        )
    amap = dict(_pairs(ASSIGNMENT_MAP.value, "assignment_map", last=False))
    rules = [(regex, repl or None) for regex, repl in _pairs(RENAME_RULE.value, "rename_rule", last=True)]
    plan = mapping.map_checkpoints(
        args[0],
        TARGET.value,
        assignment_map=amap,
        rename_rules=rules,
        vars_to_warm_start=VARS_TO_WARM_START.value,
    )
    if flags.FLAGS.json:
        sys.stdout.write(json.dumps(plan.to_json()) + "\n")
    else:
        lines = [f"source: {plan.checkpoint} ({plan.format})"]
        lines += [_line(a) for a in plan.assignments]
        for u in plan.unmapped:
            if u.ambiguous_keys:
                lines.append(
                    f"ambiguous: {u.target} <- '{u.source_name}' held by {', '.join(u.ambiguous_keys)}"
                )
            else:
                near = plan.closest(u.source_name)
                lines.append(f"unmapped: {u.target}" + (f"  (closest: {', '.join(near)})" if near else ""))
        lines += [f"skipped by rule: {name}" for name in plan.skipped]
        lines += [f"unused source: {key}" for key in plan.unused_sources]
        lines += [f"unused mapping: {entry}" for entry in plan.unused_mappings]
        lines.append(
            f"{len(plan.assignments)} mapped, {len(plan.unmapped)} unmapped, {len(plan.mismatched)} mismatched, "
            f"{len(plan.unused_sources)} unused source(s): "
            + ("ok" if plan.ok else "warm_start would refuse this")
        )
        sys.stdout.write("\n".join(lines) + "\n")
    return 0 if plan.ok else 1
