"""Benchmark: `map --suggest` planning 10,000 variables (issue 26: under a second), against the same map by hand.

Run: `python tests/benchmarks/bench_suggest.py [--n 10000]`.

Writes, with TensorFlow's SaveV2 in a child process, two name-based checkpoints of `--n`
variables of alike shapes named by two conventions (`layer_<i>/dense_<j>/kernel` and
`block_<i>/fc_<j>/weights`, 100 per layer, shuffled among the same shapes), then times
`suggest_mapping` (both checkpoints read, every variable paired) against `plan_mapping` with the
one rename rule a user would write for this pair (what `map --rules` plans, once the mapping is
known). Every suggested pair must be the right one. Goal: suggest under 1 s for 10,000 variables.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _util import workdir  # noqa: E402

_SAVE = r"""
import sys
import numpy as np
import tensorflow as tf
prefix, n, style = sys.argv[1], int(sys.argv[2]), sys.argv[3]
shapes = [[4], [8], [4, 4], [8, 4]]
names, tensors = [], []
for i in range(n):
    layer, j = divmod(i, 100)
    names.append(f"layer_{layer}/dense_{j}/kernel" if style == "tf1" else f"block_{layer}/fc_{j}/weights")
    tensors.append(tf.constant(np.full(shapes[(layer + j) % 4], i, np.float32)))
tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * n, tensors=tensors)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="variables per checkpoint (default 10000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    from est_ckpt import plan_mapping, read_checkpoint, suggest_mapping

    with workdir("bench_suggest_", args.keep) as work:
        src, tpl = os.path.join(work, "src", "ckpt"), os.path.join(work, "tpl", "ckpt")
        for prefix, style in ((src, "tf1"), (tpl, "new")):
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
            subprocess.run([sys.executable, "-c", _SAVE, prefix, str(args.n), style], check=True, env=env)
        start = time.perf_counter()
        suggestion = suggest_mapping(src, tpl)
        suggest_s = time.perf_counter() - start
        start = time.perf_counter()
        plan = plan_mapping(
            src,
            read_checkpoint(tpl),
            rename_rules=[(r"block_(\d+)/fc_(\d+)/weights", r"layer_\1/dense_\2/kernel")],
        )
        by_hand_s = time.perf_counter() - start
    wrong = [
        p
        for p in suggestion.pairs
        if p.source.replace("layer_", "block_").replace("dense_", "fc_").replace("kernel", "weights")
        != p.target
    ]
    print(
        f"{args.n} variables: suggest {suggest_s:.2f} s ({len(suggestion.pairs)} paired, {len(wrong)} wrong, "
        f"{len(suggestion.ambiguous)} ambiguous, {len(suggestion.unmatched)} unmatched); "
        f"plan_mapping with a hand-written rule {by_hand_s:.2f} s ({len(plan.assignments)} mapped)"
    )
    print(f"ratio suggest / by hand: {suggest_s / by_hand_s:.2f}x; goal: suggest <= 1 s, no wrong pair")
    return 0 if suggest_s <= 1.0 and not wrong and len(suggestion.pairs) == args.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
