"""`est-ckpt demo [--workdir DIR]`: the whole migration story in one run (what `make demo` runs)."""

from __future__ import annotations

from absl import app, flags

USAGE = "demo [--workdir DIR]"
ACCEPTS = ("workdir",)

WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Directory to write legacy/, migrated/, cold/ and converted/ into (must not hold them yet). "
    "Default: a fresh temporary directory, printed.",
)


def run(args: list[str]) -> int:
    if args:
        raise app.UsageError(f"demo takes no positional arguments (got {' '.join(args)}).", exitcode=2)
    # Imported here: the demo needs TensorFlow, and `est-ckpt --help` must not pay for it.
    from est_ckpt.examples import demo

    return demo.main(WORKDIR.value)
