"""`est-ckpt convert SRC DST --to=tf2|tf1 [--force] [--names=full_name|path] [--skip_underivable_slots]`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, Optional, TextIO

from est_ckpt.commands import parsing
from est_ckpt.tools import convert

USAGE = "convert SRC DST --to=tf2|tf1 [--force] [--names=full_name|path] [--skip_underivable_slots] [--json]"
# Copies of data shards smaller than this finish too soon for a progress bar to help.
PROGRESS_THRESHOLD = 100 * 1000 * 1000


def add_flags(parser: parsing.Parser) -> None:
    parser.add_bool("json", parsing.JSON_HELP)
    parser.add_argument(
        "--to",
        type=parsing.choice(convert.FORMATS),
        help="Format to write: tf2 (object-based) or tf1 (name-based).",
    )
    parser.add_bool("force", "Replace an existing checkpoint at DST.")
    parser.add_argument(
        "--names",
        type=parsing.choice(convert.NAMINGS),
        default="full_name",
        help="How TF2 variables are named in the output: by their recorded full_name, or by object path.",
    )
    parser.add_bool(
        "skip_underivable_slots",
        "Leave out slot variables whose TF1 name cannot be derived, instead of failing.",
    )


def progress_bar(stream: Optional[TextIO] = None) -> Callable[[int, int], None]:
    """A `progress` callback for `convert`: a bar on `stream` (stderr) for each copy over `PROGRESS_THRESHOLD` bytes."""
    last = [0.0]
    stream = stream or sys.stderr

    def progress(done: int, total: int) -> None:
        if total <= PROGRESS_THRESHOLD:
            return
        now = time.monotonic()
        if done < total and now - last[0] < 0.5:
            return
        last[0] = now
        width = 30
        filled = int(width * done / total)
        stream.write(
            f"\rcopying [{'#' * filled}{'.' * (width - filled)}] {done / 1e6:.0f}/{total / 1e6:.0f} MB"
            + ("\n" if done >= total else "")
        )
        stream.flush()

    return progress


def to_json(report: convert.ConversionReport) -> dict:
    """The JSON of `est-ckpt convert --json`."""
    return {
        "prefix": report.prefix,
        "dropped": list(report.dropped),
        "skipped_slots": list(report.skipped_slots),
        "state_file_updated": report.state_file_updated,
    }


def run(args: argparse.Namespace) -> int:
    if len(args.positionals) != 2:
        raise parsing.UsageError(f"convert takes SRC and DST (got {len(args.positionals)} arguments).")
    if args.to is None:
        raise parsing.UsageError("convert needs --to=tf2 or --to=tf1.")
    src, dst = args.positionals
    report = convert.convert(
        src,
        dst,
        to=args.to,
        force=args.force,
        names=args.names,
        skip_underivable_slots=args.skip_underivable_slots,
        progress=progress_bar(),
    )
    if args.json:
        sys.stdout.write(json.dumps(to_json(report)) + "\n")
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
