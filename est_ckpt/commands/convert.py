"""`est-ckpt convert SRC DST --to=tf2|tf1 [--force] [--names=full_name|path] [--skip_underivable_slots]`."""

from __future__ import annotations

import json
import sys

from absl import app, flags

from est_ckpt.tools import convert

USAGE = "convert SRC DST --to=tf2|tf1 [--force] [--names=full_name|path] [--skip_underivable_slots] [--json]"
ACCEPTS = ("json", "to", "force", "names", "skip_underivable_slots")

TO = flags.DEFINE_enum(
    "to", None, list(convert.FORMATS), "Format to write: tf2 (object-based) or tf1 (name-based)."
)
FORCE = flags.DEFINE_bool("force", False, "Replace an existing checkpoint at DST.")
NAMES = flags.DEFINE_enum(
    "names",
    "full_name",
    list(convert.NAMINGS),
    "How TF2 variables are named in the output: by their recorded full_name, or by object path.",
)
SKIP_SLOTS = flags.DEFINE_bool(
    "skip_underivable_slots",
    False,
    "Leave out slot variables whose TF1 name cannot be derived, instead of failing.",
)


def run(args: list[str]) -> int:
    if len(args) != 2:
        raise app.UsageError(f"convert takes SRC and DST (got {len(args)} arguments).", exitcode=2)
    if TO.value is None:
        raise app.UsageError("convert needs --to=tf2 or --to=tf1.", exitcode=2)
    report = convert.convert(
        args[0],
        args[1],
        to=TO.value,
        force=FORCE.value,
        names=NAMES.value,
        skip_underivable_slots=SKIP_SLOTS.value,
    )
    if flags.FLAGS.json:
        out = {
            "prefix": report.prefix,
            "dropped": list(report.dropped),
            "skipped_slots": list(report.skipped_slots),
            "state_file_updated": report.state_file_updated,
        }
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    for key in report.dropped:
        print(
            f"est-ckpt: note: dropped '{key}' (bookkeeping of tf.train.Checkpoint, no TF1 counterpart)",
            file=sys.stderr,
        )
    for key in report.skipped_slots:
        print(
            f"est-ckpt: warning: skipped slot variable '{key}' (its TF1 name cannot be derived)",
            file=sys.stderr,
        )
    suffix = " (now the latest in its 'checkpoint' state file)" if report.state_file_updated else ""
    sys.stdout.write(f"wrote {report.prefix}{suffix}\n")
    return 0
