"""Benchmark: `est-ckpt convert SRC DST --like=TEMPLATE` against TF's own way of doing it.

Generates, with TensorFlow in a temporary directory, a name-based TF1
checkpoint of 200 float32 variables (about 1 GiB by default) and the new
model's own checkpoint (TEMPLATE: an eager `tf.train.Checkpoint` of the same
variables, as the new model writes it before training). Then, each in a
fresh process:

- TF's way: build the new model's variables, read every value of SRC with
  `tf.train.load_checkpoint`, `assign` it, and `tf.train.Checkpoint.write`;
- est-ckpt: `est-ckpt convert SRC DST --like=TEMPLATE` (index only, hard links).

Prints each one's wall time and peak RSS side by side and the ratios (goal:
at most 0.1x each; exit 1 otherwise). Run it standalone:

    python tests/benchmarks/bench_onto.py [--size-mb=1024] [--variables=200]

Each measurement runs the command in a fresh helper process that reports its
child's `ru_maxrss` (RUSAGE_CHILDREN), so the numbers are per command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _util import report_against_tf, size_args, workdir  # noqa: E402
from bench_convert import EST_CKPT, _dir_size, _measure  # noqa: E402

_GENERATE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
tf1 = tf.compat.v1
src, template, count, floats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
shape = [floats // 1024, 1024]
with tf.Graph().as_default():
    variables = [
        tf1.get_variable(f"layer_{i // 10}/var_{i}", shape=shape, initializer=tf1.random_uniform_initializer(seed=i))
        for i in range(count)
    ]
    gs = tf1.train.get_or_create_global_step()
    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        sess.run(gs.assign(1000))
        tf1.train.Saver().save(sess, src, write_meta_graph=False)
# The new model: the same variables in a tf.Module, its own checkpoint before training.
model = tf.Module()
model.vars = [tf.Variable(tf.zeros(shape), name=f"layer_{i // 10}/var_{i}") for i in range(count)]
model.step = tf.Variable(tf.constant(0, tf.int64), name="global_step")
tf.train.Checkpoint(model=model).write(template)
"""

# TF's way: the new model's variables, every SRC value assigned, the new model's checkpoint written.
_TF_WAY = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
src, out, count, floats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
shape = [floats // 1024, 1024]
model = tf.Module()
model.vars = [tf.Variable(tf.zeros(shape), name=f"layer_{i // 10}/var_{i}") for i in range(count)]
model.step = tf.Variable(tf.constant(0, tf.int64), name="global_step")
reader = tf.train.load_checkpoint(src)
for v in model.vars + [model.step]:
    v.assign(reader.get_tensor(v.name[:-2]))
tf.train.Checkpoint(model=model).write(out)
"""


def main() -> int:
    args, floats = size_args(__doc__.splitlines()[0])
    with workdir("bench-onto-", args.keep) as work:
        src = os.path.join(work, "src", "model.ckpt")
        template = os.path.join(work, "template", "ckpt")
        os.makedirs(os.path.dirname(src))
        t = time.perf_counter()
        sizes = [str(args.variables), str(floats)]
        subprocess.run([sys.executable, "-c", _GENERATE, src, template, *sizes], check=True)
        print(
            f"SRC: {args.variables} float32 variables x {floats * 4 / 1e6:.2f} MB + global_step = "
            f"{_dir_size(src) / (1 << 20):.0f} MiB; TEMPLATE {_dir_size(template) / (1 << 20):.0f} MiB "
            f"(generated in {time.perf_counter() - t:.1f} s)"
        )
        theirs = _measure([sys.executable, "-c", _TF_WAY, src, os.path.join(work, "tf", "ckpt"), *sizes])
        ours = _measure([EST_CKPT, "convert", src, os.path.join(work, "ours", "ckpt"), f"--like={template}"])
        return report_against_tf(
            "TF (load_checkpoint, assign, Checkpoint.write)",
            theirs,
            "est-ckpt convert --like (index only, hard links)",
            ours,
        )


if __name__ == "__main__":
    sys.exit(main())
