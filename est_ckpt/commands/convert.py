"""`est-ckpt convert SRC DST --to=tf2|tf1 [--force] [--names=full_name|path] [--skip_underivable_slots]`.

Or `est-ckpt convert SRC DST --like=TEMPLATE [--assignment_map=SRC=DST ...] [--rename_rule=REGEX=REPL ...]
[--keep_unmapped] [--force] [--json]`: onto the new model's own checkpoint layout, by the plan
`est-ckpt map SRC --target TEMPLATE` shows. `--to` and `--like` exclude each other (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable, Optional, TextIO

from est_ckpt import fileio
from est_ckpt.commands import map as map_command
from est_ckpt.commands import parsing
from est_ckpt.tools import convert, onto

USAGE = (
    "convert SRC DST --to=tf2|tf1 [--force] [--names=full_name|path] [--skip_underivable_slots] [--json]"
    "  |  convert SRC DST --like=TEMPLATE [--assignment_map=SRC=DST ...] [--rename_rule=REGEX=REPLACEMENT ...] "
    "[--rules=FILE|PRESET [--rule_param NAME=VALUE ...]] [--keep_unmapped] [--force] [--json]"
)
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
    parser.add_argument(
        "--like",
        type=parsing.non_empty("a checkpoint or model dir"),
        help="Instead of --to: a checkpoint of the new model; DST gets exactly its keys and object graph, "
        "values from SRC as `est-ckpt map SRC --target TEMPLATE` plans them.",
    )
    map_command.add_mapping_flags(parser)
    parser.add_bool(
        "keep_unmapped", "With --like: keep TEMPLATE's own values of variables SRC has no source for."
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


def copy_note(copied_bytes: int, dst: str) -> None:
    """Says on stderr that data was copied, not shared by hard link, and why."""
    if not copied_bytes:
        return
    why = (
        "a remote path has no hard links"
        if fileio.is_remote(dst)
        else "DST is on another file system than the data it reuses, so no hard link could be made"
    )
    print(
        f"est-ckpt: note: copied {copied_bytes / 1e6:.1f} MB of tensor data into {dst}: {why}",
        file=sys.stderr,
    )


def to_json(report: convert.ConversionReport) -> dict:
    """The JSON of `est-ckpt convert --json`."""
    return {
        "prefix": report.prefix,
        "dropped": list(report.dropped),
        "skipped_slots": list(report.skipped_slots),
        "state_file_updated": report.state_file_updated,
    }


def onto_json(report: onto.OntoReport) -> dict:
    """The JSON of `est-ckpt convert --like --json`: `mapped` and `unused_sources` as `est-ckpt map --json` has them."""
    plan = map_command.to_json(report.plan)
    return {
        "prefix": report.prefix,
        "mapped": plan["mapped"],
        "kept": list(report.kept),
        "unused_sources": plan["unused_sources"],
        "computed": dict(report.computed),
        "step_checks": list(report.step_checks),
        "state_file_updated": report.state_file_updated,
    }


def run_like(args: argparse.Namespace) -> int:
    if args.names != "full_name" or args.skip_underivable_slots:
        raise parsing.UsageError("--names and --skip_underivable_slots apply to --to, not to --like.")
    src, dst = args.positionals
    report = onto.convert_onto(
        src,
        dst,
        like=args.like,
        **map_command.mapping_options(args),
        keep_unmapped=args.keep_unmapped,
        force=args.force,
        progress=progress_bar(),
    )
    copy_note(report.copied_bytes, dst)
    if args.json:
        sys.stdout.write(json.dumps(onto_json(report)) + "\n")
        return 0
    for key in report.kept:
        print(f"est-ckpt: note: kept the template's value of '{key}'", file=sys.stderr)
    for key, value in report.computed:
        how = (
            f"{value} (from the learning rate)"
            if isinstance(value, str)
            else f"{value:.9g} (from the step count)"
        )
        print(f"est-ckpt: note: wrote '{key}' = {how}", file=sys.stderr)
    for note in report.step_checks:
        print(f"est-ckpt: note: {note}", file=sys.stderr)
    latest = " (now the latest in its 'checkpoint' state file)" if report.written == "checkpoint" else ""
    sys.stdout.write(
        f"wrote {report.prefix}: {len(report.plan.assignments)} variable(s) from {report.plan.checkpoint}, "
        f"{len(report.kept)} kept from {args.like}{latest}\n"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if len(args.positionals) != 2:
        raise parsing.UsageError(f"convert takes SRC and DST (got {len(args.positionals)} arguments).")
    if args.to is not None and args.like is not None:
        raise parsing.UsageError("convert takes --to or --like, not both.")
    if args.like is not None:
        return run_like(args)
    if args.assignment_map or args.rename_rule or args.keep_unmapped or args.rules or args.rule_param:
        raise parsing.UsageError(
            "--assignment_map, --rename_rule, --rules and --keep_unmapped apply to --like, not to --to."
        )
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
    copy_note(report.copied_bytes, dst)
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
    suffix = (
        " (now the latest in its 'checkpoint' state file)"
        if report.state_file_updated
        else " (already the latest in its 'checkpoint' state file)"
    )
    sys.stdout.write(f"wrote {report.prefix}{suffix}\n")
    return 0
