"""est_ckpt's version: one string, `est_ckpt.__version__`, what `est-ckpt --version` prints."""

__version__ = "0.1.0"
