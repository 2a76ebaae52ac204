"""One module per `est-ckpt` subcommand: `USAGE`, `add_flags(parser)`, `run(args)`, and `to_json` for `--json`.

`main` dispatches (importing only the command being run); `parsing` holds the
parser every command shares and the flag value checks.
"""
