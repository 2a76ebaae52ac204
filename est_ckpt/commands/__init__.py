"""One module per `est-ckpt` subcommand: module-level flags, `USAGE`, `ACCEPTS` and `run(args)`."""
