"""`est-ckpt demo [--workdir DIR]`: the whole migration story in one run (what `make demo` runs)."""

from __future__ import annotations

import argparse

from est_ckpt.commands import parsing

USAGE = "demo [--workdir DIR]"


def add_flags(parser: parsing.Parser) -> None:
    parser.add_argument(
        "--workdir",
        type=parsing.non_empty("a directory"),
        help="Directory to write legacy/, migrated/, cold/, converted/ and canned/ into (must not hold them yet). "
        "Default: a fresh temporary directory, printed.",
    )


def run(args: argparse.Namespace) -> int:
    if args.positionals:
        raise parsing.UsageError(f"demo takes no positional arguments (got {' '.join(args.positionals)}).")
    # Imported here: the demo needs TensorFlow and Estimator, and `est-ckpt --help` must not pay for them.
    # Without them, `est_ckpt.tf` says what to install (before the demo writes anything).
    from est_ckpt.tf import runtime

    runtime.require("est-ckpt demo", estimator_too=True)
    from est_ckpt.examples import demo

    return demo.main(args.workdir)
