"""`est-ckpt verify PATH [--json]`: check a checkpoint without TensorFlow.

Exit code 0 when the checkpoint is sound; 1 with one line per problem (on
stdout, each naming its file) when it is not.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from est_ckpt.tools import verify

USAGE = "verify PATH [--json]"
ACCEPTS = ("json",)


def run(args: list[str]) -> int:
    if len(args) != 1:
        raise app.UsageError("verify takes exactly one PATH.", exitcode=2)
    report = verify.verify_checkpoint(args[0])
    if flags.FLAGS.json:
        json.dump(report.to_json(), sys.stdout)
        sys.stdout.write("\n")
    elif report.ok:
        sys.stdout.write(
            f"{report.prefix}: OK ({report.tensors_checked} tensors, {report.bytes_checked} bytes checked)\n"
        )
    else:
        sys.stdout.write("".join(f"{line}\n" for line in report.problems))
    return 0 if report.ok else 1
