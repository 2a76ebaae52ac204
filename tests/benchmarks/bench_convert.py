"""Benchmark: `est-ckpt convert --to=tf2` against the migration guide's `convert_tf1_to_tf2` recipe.

Generates a name-based checkpoint of 200 float32 variables (about 1 GiB by
default) with TensorFlow in a temporary directory, converts it both ways in
fresh processes, and prints each one's wall time and peak RSS and the ratios
(goal: at most 0.1x the recipe's time and memory). Run it standalone:

    python tests/benchmarks/bench_convert.py [--size-mb=1024] [--variables=200]

Each measurement runs the command in a fresh helper process that reports its
child's `ru_maxrss` (RUSAGE_CHILDREN), so the numbers are per command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EST_CKPT = os.path.join(os.path.dirname(sys.executable), "est-ckpt")
sys.path.insert(0, HERE)
from _util import report_against_tf, size_args, workdir  # noqa: E402

_GENERATE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf1 = tf.compat.v1
prefix, count, floats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with tf.Graph().as_default():
    variables = [
        tf1.get_variable(f"layer_{i // 10}/var_{i}", shape=[floats // 1024, 1024],
                         initializer=tf1.random_uniform_initializer(seed=i))
        for i in range(count)
    ]
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        tf1.train.Saver(variables).save(sess, prefix, write_meta_graph=False)
"""

# The guide's recipe, verbatim apart from the argument handling.
_RECIPE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

def convert_tf1_to_tf2(checkpoint_path, output_prefix):
  vars = {}
  reader = tf.train.load_checkpoint(checkpoint_path)
  dtypes = reader.get_variable_to_dtype_map()
  for key in dtypes.keys():
    vars[key] = tf.Variable(reader.get_tensor(key))
  return tf.train.Checkpoint(vars=vars).save(output_prefix)

convert_tf1_to_tf2(sys.argv[1], sys.argv[2])
"""


def _measure(cmd: list[str]) -> dict:
    """Runs `cmd` in a fresh helper process; returns its wall seconds and peak RSS in MiB."""
    helper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "t = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'seconds': t, 'peak_mib': rss / 1024}))\n"
    )
    out = subprocess.run([sys.executable, "-c", helper, *cmd], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _dir_size(prefix: str) -> int:
    directory, base = os.path.split(prefix)
    return sum(
        os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory) if n.startswith(base)
    )


def main() -> int:
    args, floats = size_args(__doc__.splitlines()[0])
    with workdir("bench-convert-", args.keep) as work:
        src = os.path.join(work, "src", "model.ckpt")
        os.makedirs(os.path.dirname(src))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", _GENERATE, src, str(args.variables), str(floats)], check=True)
        size = _dir_size(src)
        print(
            f"checkpoint: {args.variables} float32 variables x {floats * 4 / 1e6:.2f} MB = "
            f"{size / (1 << 20):.0f} MiB (generated in {time.perf_counter() - t:.1f} s)"
        )
        recipe = _measure([sys.executable, "-c", _RECIPE, src, os.path.join(work, "recipe", "converted")])
        ours = _measure([EST_CKPT, "convert", src, os.path.join(work, "ours", "converted"), "--to=tf2"])
        return report_against_tf(
            "guide recipe (load into tf.Variable, Checkpoint.save)",
            recipe,
            "est-ckpt convert --to=tf2 (index only, hard links)",
            ours,
        )


if __name__ == "__main__":
    sys.exit(main())
