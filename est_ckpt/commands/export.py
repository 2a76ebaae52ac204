"""`est-ckpt export SRC OUT.safetensors|OUT.npz [--names=tf1|path] [--rules=FILE] [--force] [--json]`: weights out.

Every tensor of SRC (a checkpoint, a model directory, a SavedModel, or a Keras 3
`.weights.h5` / `.keras`) into one file for PyTorch or JAX, under its TF1 name
or object path, or the name a rules file gives it (`tools.export`). stdout: `wrote OUT: N tensor(s), B bytes`, or the
`--json` object; each tensor left out (strings, bookkeeping) is a note on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from est_ckpt.commands import map as map_command
from est_ckpt.commands import parsing
from est_ckpt.tools import export

USAGE = (
    "export SRC OUT.safetensors|OUT.npz [--names=tf1|path] [--rules=FILE|PRESET [--rule_param NAME=VALUE ...]] "
    "[--force] [--json]"
)


def add_flags(parser: parsing.Parser) -> None:
    parser.add_bool("json", parsing.JSON_HELP)
    parser.add_bool("force", "Replace an existing OUT.")
    parser.add_argument(
        "--names",
        type=parsing.choice(export.NAMINGS),
        default="tf1",
        help="How tensors are named in OUT: by TF1 name (a TF2 checkpoint's recorded full_name), or by object path.",
    )
    map_command.add_rules_flags(parser)


def to_json(report: export.ExportReport) -> dict:
    """The JSON of `est-ckpt export --json`."""
    return {
        "path": report.path,
        "format": report.format,
        "tensors": list(report.tensors),
        "left_out": [{"key": key, "why": why} for key, why in report.left_out],
        "bytes": report.bytes,
    }


def run(args: argparse.Namespace) -> int:
    if len(args.positionals) != 2:
        raise parsing.UsageError(f"export takes SRC and OUT (got {len(args.positionals)} arguments).")
    src, out = args.positionals
    rules = map_command.rules_option(args)  # a bad rules file is named before any checkpoint is read
    report = export.export_checkpoint(src, out, names=args.names, rules=rules, force=args.force)
    if args.json:
        sys.stdout.write(json.dumps(to_json(report)) + "\n")
        return 0
    for key, why in report.left_out:
        print(f"est-ckpt: note: left out '{key}': {why}", file=sys.stderr)
    sys.stdout.write(f"wrote {report.path}: {len(report.tensors)} tensor(s), {report.bytes} bytes\n")
    return 0
