"""`est-ckpt diff A B [--json] [--atol=0]`: exit 0 when equal, 1 when they differ, 2 on usage errors.

A checkpoint that cannot be read is bad input like for every other command:
one line on stderr and exit 1, with nothing on stdout (a difference always
prints a report on stdout).
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from est_ckpt.tools import diff

USAGE = "diff A B [--json] [--atol=0]"
ACCEPTS = ("json", "atol")

ATOL = flags.DEFINE_float("atol", 0.0, "Values differ where |a - b| > atol.", lower_bound=0.0)


def _describe(change: dict) -> str:
    if change["why"] == "value":
        if change["max_abs_diff"] is None:
            return f"value: {change['num_different']} element(s) differ"
        return (
            f"value: max |a - b| = {change['max_abs_diff']:g} ({change['num_different']} element(s) differ)"
        )
    return f"{change['why']}: {change['a']} -> {change['b']}"


def run(args: list[str]) -> int:
    if len(args) != 2:
        raise app.UsageError(f"diff takes two checkpoints A and B (got {len(args)} arguments).", exitcode=2)
    result = diff.diff_checkpoints(args[0], args[1], atol=ATOL.value)
    if flags.FLAGS.json:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
        return 0 if result.equal else 1
    lines = [f"A: {result.a}", f"B: {result.b}"]
    lines += [f"only in A: {name}" for name in result.only_in_a]
    lines += [f"only in B: {name}" for name in result.only_in_b]
    lines += [f"changed {c['name']}: {_describe(c)}" for c in result.changed]
    lines.append("equal" if result.equal else "differ")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if result.equal else 1
