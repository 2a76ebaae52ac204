"""`est-ckpt diff A B [--json] [--atol=0]`: exit 0 when equal, 1 when they differ, 2 on usage errors.

A checkpoint that cannot be read is bad input like for every other command:
one line on stderr and exit 1, with nothing on stdout (a difference always
prints a report on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys

from est_ckpt.commands import parsing
from est_ckpt.tools import diff

USAGE = "diff A B [--json] [--atol=0]"


def add_flags(parser: parsing.Parser) -> None:
    parser.add_bool("json", parsing.JSON_HELP)
    parser.add_argument(
        "--atol", type=parsing.non_negative_float, default=0.0, help="Values differ where |a - b| > atol."
    )


def to_json(result: diff.DiffResult) -> dict:
    """The JSON of `est-ckpt diff --json`."""
    return {
        "only_in_a": list(result.only_in_a),
        "only_in_b": list(result.only_in_b),
        "changed": [dict(c) for c in result.changed],
    }


def _describe(change: dict) -> str:
    if change["why"] == "value":
        if change["max_abs_diff"] is None:
            return f"value: {change['num_different']} element(s) differ"
        return (
            f"value: max |a - b| = {change['max_abs_diff']:g} ({change['num_different']} element(s) differ)"
        )
    return f"{change['why']}: {change['a']} -> {change['b']}"


def run(args: argparse.Namespace) -> int:
    if len(args.positionals) != 2:
        raise parsing.UsageError(
            f"diff takes two checkpoints A and B (got {len(args.positionals)} arguments)."
        )
    result = diff.diff_checkpoints(*args.positionals, atol=args.atol)
    if args.json:
        sys.stdout.write(json.dumps(to_json(result)) + "\n")
        return 0 if result.equal else 1
    lines = [f"A: {result.a}", f"B: {result.b}"]
    lines += [f"only in A: {name}" for name in result.only_in_a]
    lines += [f"only in B: {name}" for name in result.only_in_b]
    lines += [f"changed {c['name']}: {_describe(c)}" for c in result.changed]
    lines.append("equal" if result.equal else "differ")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if result.equal else 1
