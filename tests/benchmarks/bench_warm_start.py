"""Benchmark: `est_ckpt.warm_start` against TF's `tf.compat.v1.train.warm_start`, side by side.

Run standalone (not collected by pytest)::

    .venv/bin/python tests/benchmarks/bench_warm_start.py [--n 10000] [--plan_n 100000]

Both warm-start the same N float32[4] variables from the same name-based
checkpoint, each into a fresh graph; "build" is the warm-start call, "init" is
running `global_variables_initializer()` in a new session (mostly TF's graph
optimisation of the init subgraph, which grows with the graph). Values are
checked. Each side runs `--repeat` times, alternating order; the best is kept.
The goal is est_ckpt <= 0.4x TF's total time. The last part times the pure
planning step (`plan_mapping`) for `--plan_n` names with a scope map and
rename rules (goal < 1 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _graph_vars(tf1, n: int):
    return [
        tf1.get_variable(f"layer_{i // 10}/var_{i}", shape=[4], initializer=tf1.zeros_initializer())
        for i in range(n)
    ]


def _run(label: str, n: int, prefix: str, warm_start) -> tuple[float, float]:
    import numpy as np
    import tensorflow as tf

    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        variables = _graph_vars(tf1, n)
        start = time.perf_counter()
        warm_start(prefix)
        build = time.perf_counter() - start
        with tf1.Session() as sess:
            start = time.perf_counter()
            sess.run(tf1.global_variables_initializer())
            init = time.perf_counter() - start
            for i in (0, n // 2, n - 1):
                value = sess.run(variables[i])
                assert np.array_equal(value, np.full([4], i, np.float32)), (label, i, value)
    print(f"{label:<28} build {build:8.2f} s   init {init:8.2f} s   total {build + init:8.2f} s", flush=True)
    return build, init


def bench_warm_start(n: int, repeat: int, fmt: str) -> None:
    import numpy as np
    import tensorflow as tf

    import est_ckpt

    tf.get_logger().setLevel("ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        # The same keys and values as tests/fixtures.py `build_many_vars_ckpt`, written by one eager
        # SaveV2 (the fixture's graph-and-Saver way takes minutes at 10,000 variables).
        names = [f"layer_{i // 10}/var_{i}" for i in range(n)]
        if fmt == "tf1":
            prefix = os.path.join(tmp, f"many-vars-{n}-ckpt")
            tf.raw_ops.SaveV2(
                prefix=prefix,
                tensor_names=names,
                shape_and_slices=[""] * n,
                tensors=[tf.constant(np.full([4], i, np.float32)) for i in range(n)],
            )
        else:
            # Object-based, as `Checkpoint(var_list={name: var})` writes it: keys are object paths,
            # the variable names are the recorded full_names.
            variables = {
                name: tf.Variable(np.full([4], i, np.float32), name=name) for i, name in enumerate(names)
            }
            prefix = tf.train.Checkpoint(var_list=variables).write(os.path.join(tmp, f"many-vars-{n}-tf2"))
        print(f"{fmt} checkpoint of {n} variables written in {time.perf_counter() - start:.1f} s: {prefix}")
        start = time.perf_counter()
        est_ckpt.read_checkpoint(prefix)
        print(f"est_ckpt.read_checkpoint (index, no TF) {time.perf_counter() - start:8.2f} s")
        # Warm-up: the first session of a process pays one-time costs (kernels, thread pools) that
        # would otherwise be charged to whichever side runs first.
        _run("(warm-up, 10 variables)", 10, prefix, tf.compat.v1.train.warm_start)
        runs: dict[str, list] = {"ours": [], "tf": []}
        for round_ in range(repeat):
            # Alternate the order: the machine is shared, and load drifts during a run.
            order = ("ours", "tf") if round_ % 2 == 0 else ("tf", "ours")
            for side in order:
                if side == "ours":
                    runs["ours"].append(_run("est_ckpt.warm_start", n, prefix, est_ckpt.warm_start))
                else:
                    runs["tf"].append(
                        _run("tf.compat.v1.train.warm_start", n, prefix, tf.compat.v1.train.warm_start)
                    )
    ours, theirs = min(runs["ours"], key=sum), min(runs["tf"], key=sum)
    print(
        f"best of {repeat}: est_ckpt build {ours[0]:.2f} s init {ours[1]:.2f} s; TF build {theirs[0]:.2f} s init {theirs[1]:.2f} s"
    )
    print(
        f"ratio est_ckpt / TF: build {ours[0] / theirs[0]:.3f}x   init {ours[1] / theirs[1]:.3f}x   "
        f"total {sum(ours) / sum(theirs):.3f}x   (goal <= 0.4x)"
    )


def bench_plan(n: int) -> None:
    from est_ckpt import mapping
    from est_ckpt.format import checkpoint

    tensors = {}
    for i in range(n):
        key = f"old_model/block_{i // 100}/layer_{i // 10}/kernel_{i}"
        tensors[key] = checkpoint.TensorInfo(key=key, dtype="float32", shape=(4,), name=key)
    info = checkpoint.CheckpointInfo("/bench/ckpt", "tf1", tensors, None, {}, bundle=None)
    # Three kinds of target: renamed by the scope map, by a rule, and by another rule.
    targets = {}
    for i in range(n):
        scope = ("new_model", "renamed", "other")[i % 3]
        targets[f"{scope}/block_{i // 100}/layer_{i // 10}/kernel_{i}"] = ((4,), "float32")
    rules = [(f"nomatch_{j}/(.*)", r"old_model/\1") for j in range(8)]
    rules += [(r"renamed/(.*)", r"old_model/\1"), (r"other/block_(\d+)/(.*)", r"old_model/block_\1/\2")]
    elapsed = float("inf")
    for _ in range(3):  # best of 3: the machine is shared
        start = time.perf_counter()
        plan = mapping.plan_mapping(
            info, targets, assignment_map={"old_model/": "new_model/"}, rename_rules=rules
        )
        elapsed = min(elapsed, time.perf_counter() - start)
    assert len(plan.assignments) == n and not plan.unmapped, (len(plan.assignments), plan.unmapped[:3])
    print(
        f"plan_mapping: {n} names, 1 scope entry, {len(rules)} rename rules: {elapsed:.3f} s best of 3 (goal < 1 s; "
        f"{len(plan.unused_mappings)} unused rules reported)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="variables to warm-start (default 10000)")
    parser.add_argument("--plan_n", type=int, default=100000, help="names to plan (default 100000)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of both sides, best kept (default 2)")
    parser.add_argument(
        "--format", choices=("tf1", "tf2"), default="tf1", help="checkpoint format (default tf1)"
    )
    parser.add_argument("--skip_tf", action="store_true", help="only time the planning step")
    args = parser.parse_args()
    bench_plan(args.plan_n)
    if not args.skip_tf:
        bench_warm_start(args.n, args.repeat, args.format)


if __name__ == "__main__":
    main()
