"""`python -m est_ckpt`: the `est-ckpt` command line."""

from est_ckpt.commands.entry import run

run()
