"""`est-ckpt verify PATH [--json]`: check a checkpoint without TensorFlow.

The report goes to stdout: `PREFIX: OK (...)` and exit 0 when the checkpoint is
sound, one line per problem (each naming its file) and exit 1 when it is not,
or the `--json` object either way. When there is nothing to verify (no
checkpoint at PATH) that is an error: one line on stderr, nothing on stdout,
exit 1, as for every command.
"""

from __future__ import annotations

import argparse
import json
import sys

from est_ckpt.commands import parsing
from est_ckpt.tools import verify

USAGE = "verify PATH [--json]"


def add_flags(parser: parsing.Parser) -> None:
    parser.add_bool("json", parsing.JSON_HELP)


def to_json(report: verify.VerifyReport) -> dict:
    """The JSON of `est-ckpt verify --json`."""
    return {
        "path": report.path,
        "prefix": report.prefix,
        "ok": report.ok,
        "problems": list(report.problems),
        "tensors_checked": report.tensors_checked,
        "bytes_checked": report.bytes_checked,
    }


def run(args: argparse.Namespace) -> int:
    if len(args.positionals) != 1:
        raise parsing.UsageError("verify takes exactly one PATH.")
    report = verify.verify_checkpoint(args.positionals[0])
    if args.json:
        sys.stdout.write(json.dumps(to_json(report)) + "\n")
    elif report.ok:
        sys.stdout.write(
            f"{report.prefix}: OK ({report.tensors_checked} tensors, {report.bytes_checked} bytes checked)\n"
        )
    else:
        sys.stdout.write("".join(f"{line}\n" for line in report.problems))
    return 0 if report.ok else 1
