"""Benchmark: `est-ckpt export SRC OUT.safetensors` against TF's reader plus the safetensors library.

A name-based checkpoint of `--size-mb` MiB (1 GiB by default) in `--variables`
float32 variables, written by TensorFlow's SaveV2. The way users do it today:
`tf.train.load_checkpoint`, every tensor read into a dict, then
`safetensors.numpy.save_file`. est-ckpt: `est-ckpt export SRC OUT.safetensors`
(bytes copied from the shards in 4 MiB chunks, CRC-checked). Each in a fresh
process: wall time and peak RSS. Both outputs are compared tensor by tensor.
Goal: at most 0.3x time and 0.1x peak memory.

    python tests/benchmarks/bench_export.py [--size-mb=1024] [--variables=200] [--keep]
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _util import report_against_tf, save_many_tensors_in_subprocess, size_args, workdir  # noqa: E402
from bench_convert import EST_CKPT, _measure  # noqa: E402

_THEIRS = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
from safetensors.numpy import save_file
reader = tf.train.load_checkpoint(sys.argv[1])
save_file({k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}, sys.argv[2])
"""

_SAME = """
import sys
import numpy as np
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as a, safe_open(sys.argv[2], "np") as b:
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():
        assert np.array_equal(a.get_tensor(k), b.get_tensor(k)), k
"""


def main() -> int:
    args, floats = size_args(__doc__.splitlines()[0])
    with workdir("bench-export-", args.keep) as work:
        src = os.path.join(work, "src", "model.ckpt")
        save_many_tensors_in_subprocess(src, args.variables, floats)
        theirs_out, ours_out = os.path.join(work, "tf.safetensors"), os.path.join(work, "est.safetensors")
        theirs = _measure([sys.executable, "-c", _THEIRS, src, theirs_out])
        ours = _measure([EST_CKPT, "export", src, ours_out])
        import subprocess

        subprocess.run([sys.executable, "-c", _SAME, theirs_out, ours_out], check=True)
        print(f"{args.variables} variables, {args.size_mb:.0f} MiB; outputs equal tensor by tensor")
        return (
            report_against_tf(
                "tf.train.load_checkpoint + safetensors.numpy.save_file",
                theirs,
                "est-ckpt export",
                ours,
                goal=0.3,
            )
            if ours["peak_mib"] / theirs["peak_mib"] <= 0.1
            else 1
        )


if __name__ == "__main__":
    sys.exit(main())
