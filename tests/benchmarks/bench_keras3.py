"""Benchmark: `convert --like=TEMPLATE.weights.h5` against Keras 3's own restore + `save_weights` (TF 2.16+).

A Keras 3 model of `--layers` Dense layers, `--size-mb` MiB of float32 kernels in
all (1 GiB by default), trained state written as a TF checkpoint
(`tf.train.Checkpoint(model=m).write`); TEMPLATE is the fresh model's
`.weights.h5`. The way users do it today: build the model, restore the
checkpoint, `model.save_weights(OUT)`. est-ckpt: `est-ckpt convert SRC
OUT.weights.h5 --like=TEMPLATE` (no TensorFlow, no Keras). Each in a fresh
process: wall time and peak RSS; the two files are compared dataset by dataset.
Goal: at most 0.2x time.

    python tests/benchmarks/bench_keras3.py [--size-mb=1024] [--layers=16] [--keep]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _util import report_against_tf, workdir  # noqa: E402
from bench_convert import EST_CKPT, _measure  # noqa: E402

_MODEL = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, tensorflow as tf, keras
layers, width = int(sys.argv[2]), int(sys.argv[3])
model = keras.Sequential([keras.Input((width,))] + [keras.layers.Dense(width, name=f"d{i}") for i in range(layers)], name="big")
"""
_SETUP = (
    _MODEL
    + """
for v in model.weights:
    v.assign(np.full(v.shape, 0.5, np.float32))
tf.train.Checkpoint(model=model).write(os.path.join(sys.argv[1], "src", "ckpt"))
for v in model.weights:
    v.assign(np.zeros(v.shape, np.float32))
model.save_weights(os.path.join(sys.argv[1], "template.weights.h5"))
"""
)
_THEIRS = (
    _MODEL
    + """
tf.train.Checkpoint(model=model).read(os.path.join(sys.argv[1], "src", "ckpt")).assert_consumed()
model.save_weights(os.path.join(sys.argv[1], "keras.weights.h5"))
"""
)
_SAME = """
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as a, h5py.File(sys.argv[2]) as b:
    keys = []
    a.visititems(lambda k, v: keys.append(k) if isinstance(v, h5py.Dataset) else None)
    assert keys
    for k in keys:
        assert np.array_equal(a[k][()], b[k][()]), k
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1024.0)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    width = int((args.size_mb * (1 << 20) / 4 / args.layers) ** 0.5)
    with workdir("bench-keras3-", args.keep) as work:
        shape = [work, str(args.layers), str(width)]
        subprocess.run([sys.executable, "-c", _SETUP, *shape], check=True)
        theirs = _measure([sys.executable, "-c", _THEIRS, *shape])
        ours = _measure(
            [EST_CKPT, "convert", os.path.join(work, "src"), os.path.join(work, "est.weights.h5"),
             "--like=" + os.path.join(work, "template.weights.h5")]
        )  # fmt: skip
        subprocess.run(
            [
                sys.executable,
                "-c",
                _SAME,
                os.path.join(work, "keras.weights.h5"),
                os.path.join(work, "est.weights.h5"),
            ],
            check=True,
        )
        print(
            f"{args.layers} Dense layers of [{width}, {width}], {args.size_mb:.0f} MiB; files equal dataset by dataset"
        )
        status = report_against_tf(
            "Keras restore + save_weights", theirs, "est-ckpt convert --like", ours, goal=0.2
        )
        return 0 if ours["seconds"] / theirs["seconds"] <= 0.2 else status


if __name__ == "__main__":
    sys.exit(main())
