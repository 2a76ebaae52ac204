"""Benchmark: the cost of `make_tf2_scaffold(also_save_tf1=True)` against a single object-based save.

Run: `python tests/benchmarks/bench_dual_save.py [--mb 64] [--variables 16] [--saves 20]`.

Three savers over the same variables, each saving `--saves` times (step 1, 2, ...):
  * single: `make_tf2_scaffold()`'s saver, object-based only;
  * dual (est_ckpt): `make_tf2_scaffold(also_save_tf1=True)`'s saver: the
    object-based save plus an index-only conversion into `tf1/` (hard-linked data);
  * dual (TF's way): the object-based save plus a second `tf.compat.v1.train.Saver`
    writing every tensor again, name-based, into `tf1/`.
Prints the median time of each and the ratios against the single save (goal: dual <= 1.25x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=64.0, help="total size of the variables in MiB")
    parser.add_argument("--variables", type=int, default=16, help="number of float32 variables")
    parser.add_argument("--saves", type=int, default=20, help="saves per saver (the median is reported)")
    args = parser.parse_args()

    import tensorflow as tf

    import est_ckpt

    tf1 = tf.compat.v1
    tf.get_logger().setLevel("ERROR")
    per_var = max(1, int(args.mb * 2**20 / 4 / args.variables))
    root = tempfile.mkdtemp(prefix="bench_dual_save_")
    try:
        with tf.Graph().as_default():
            for i in range(args.variables):
                tf1.get_variable(
                    f"layer_{i}/kernel", shape=[per_var], initializer=tf1.random_normal_initializer()
                )
            tf1.train.get_or_create_global_step()
            single = est_ckpt.make_tf2_scaffold().saver
            dual = est_ckpt.make_tf2_scaffold(also_save_tf1=True).saver
            naive_tf2 = est_ckpt.make_tf2_scaffold().saver
            naive_tf1 = tf1.train.Saver(sharded=True, save_relative_paths=True)
            for saver in (single, dual, naive_tf2):
                saver.build()
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                dirs = {name: os.path.join(root, name) for name in ("single", "dual", "naive")}
                for d in dirs.values():
                    os.makedirs(os.path.join(d, "tf1"))

                def save_single(step):
                    single.save(
                        sess,
                        os.path.join(dirs["single"], "model.ckpt"),
                        global_step=step,
                        write_meta_graph=False,
                    )

                def save_dual(step):
                    dual.save(
                        sess,
                        os.path.join(dirs["dual"], "model.ckpt"),
                        global_step=step,
                        write_meta_graph=False,
                    )

                def save_naive(step):
                    base = dirs["naive"]
                    naive_tf2.save(
                        sess, os.path.join(base, "model.ckpt"), global_step=step, write_meta_graph=False
                    )
                    naive_tf1.save(
                        sess,
                        os.path.join(base, "tf1", "model.ckpt"),
                        global_step=step,
                        write_meta_graph=False,
                    )

                for save in (save_single, save_dual, save_naive):
                    save(0)  # warm-up: first-run costs (op compilation, directory creation)
                # Round-robin, so that disk write-back of one saver's files slows all of them alike.
                times = {save: [] for save in (save_single, save_dual, save_naive)}
                for step in range(1, args.saves + 1):
                    for save, durations in times.items():
                        start = time.perf_counter()
                        save(step)
                        durations.append(time.perf_counter() - start)
                t_single, t_dual, t_naive = (statistics.median(d) for d in times.values())
                latest = tf.train.latest_checkpoint(os.path.join(dirs["dual"], "tf1"))
                assert est_ckpt.read_checkpoint(latest).format == "tf1", latest
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"variables: {args.variables} x {per_var} float32 ({args.mb:.0f} MiB), median of {args.saves} saves"
    )
    print(f"single object-based save (make_tf2_scaffold):          {t_single * 1000:8.1f} ms")
    print(
        f"dual save, est_ckpt (save + index-only conversion):    {t_dual * 1000:8.1f} ms  ratio {t_dual / t_single:.2f}x"
    )
    print(
        f"dual save, TF's way (save + second name-based Saver):  {t_naive * 1000:8.1f} ms  ratio {t_naive / t_single:.2f}x"
    )
    print(f"est_ckpt dual vs TF's dual: {t_dual / t_naive:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
