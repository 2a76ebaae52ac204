"""Shared helpers of the benchmark scripts: run a command, report wall time and peak RSS."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterator


def run_measured(argv: list[str], env: dict | None = None) -> tuple[float, float]:
    """Runs `argv` to completion; returns (wall seconds, peak RSS MiB) of that process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
        raise SystemExit(f"benchmark command failed: {' '.join(argv)}")
    return wall, usage.ru_maxrss / 1024


@contextlib.contextmanager
def workdir(prefix: str, keep: bool) -> Iterator[str]:
    """A temporary directory for one benchmark run: removed after it, or kept (and named) with `--keep`."""
    work = tempfile.mkdtemp(prefix=prefix)
    try:
        yield work
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def save_many_tensors(prefix: str, n: int, elements: int = 4) -> None:
    """Writes a real name-based checkpoint of `n` float32 variables with TF's SaveV2 in one op."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    names = [f"layer_{i // 100}/dense_{i % 100}/kernel" for i in range(n)]
    tensors = [tf.constant(np.full([elements], i, dtype=np.float32)) for i in range(n)]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * n, tensors=tensors)


def save_many_tensors_in_subprocess(prefix: str, n: int, elements: int = 4) -> None:
    """`save_many_tensors` in a child process, so the benchmark itself never imports TensorFlow."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys; sys.path.insert(0, {here!r}); "
        f"from _util import save_many_tensors; save_many_tensors({prefix!r}, {n}, {elements})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def report_against_tf(theirs_label: str, theirs: dict, ours_label: str, ours: dict, goal: float = 0.1) -> int:
    """Prints both runs (`{'seconds', 'peak_mib'}`) side by side with the ratios; 0 if both are within `goal`."""
    width = max(len(theirs_label), len(ours_label)) + 1
    for label, run in ((theirs_label, theirs), (ours_label, ours)):
        print(f"{label + ':':<{width}} {run['seconds']:7.2f} s  {run['peak_mib']:7.0f} MiB peak")
    time_ratio = ours["seconds"] / theirs["seconds"]
    mem_ratio = ours["peak_mib"] / theirs["peak_mib"]
    print(
        f"ratio {ours_label.split(' ')[0]} / {theirs_label.split(' ')[0]}: time {time_ratio:.3f}x, "
        f"peak memory {mem_ratio:.3f}x (goal <= {goal}x each)"
    )
    return 0 if time_ratio <= goal and mem_ratio <= goal else 1


def size_args(description: str):
    """`(args, floats per variable)` of a benchmark over `--size-mb` MiB in `--variables` float32 variables."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--size-mb", type=float, default=1024.0, help="total tensor bytes, in MiB (default 1024)"
    )
    parser.add_argument("--variables", type=int, default=200, help="number of variables (default 200)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    floats = int(args.size_mb * (1 << 20) / 4 / args.variables) // 1024 * 1024
    if floats < 1024:
        parser.error("--size-mb too small for --variables (each variable needs at least 4 KiB)")
    return args, floats
