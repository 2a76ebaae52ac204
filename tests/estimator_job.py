"""A v1 canned `DNNClassifier`, trained for the Keras 3 environment's tests by the Estimator environment's Python.

Keras 3 (TF 2.16+) and Estimator (TF <= 2.15) never share an environment, so the
Keras 3 tests (`test_keras3_estimator.py`) run this file with the interpreter that
`make test` names in `EST_CKPT_ESTIMATOR_PYTHON`::

    python tests/estimator_job.py WORKDIR Adagrad|Adam

It reads `WORKDIR/data.npz` (`x` [n, d] float32, `y` [n, 1] int), trains
`tf.compat.v1.estimator.DNNClassifier(hidden_units=[8])` for 5 steps on that one
batch into `WORKDIR/model_dir`, writes the logits it predicts there to
`WORKDIR/logits.npy`, then trains a copy one step further and writes every
numeric variable of that step, by TF1 name, to `WORKDIR/next.npz`.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np


def main(workdir: str, optimizer: str) -> None:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf1 = tf.compat.v1
    data = np.load(os.path.join(workdir, "data.npz"))
    x, y = data["x"], data["y"]
    make_optimizer = {
        "Adagrad": lambda: tf1.train.AdagradOptimizer(0.05),
        "Adam": lambda: tf1.train.AdamOptimizer(0.01),
    }[optimizer]

    def estimator(model_dir: str):
        return tf1.estimator.DNNClassifier(
            hidden_units=[8],
            feature_columns=[tf.feature_column.numeric_column("x", shape=[x.shape[1]])],
            optimizer=make_optimizer,
            model_dir=model_dir,
            config=tf.estimator.RunConfig(tf_random_seed=7),  # the same start in every run
        )

    def batch():
        return tf.data.Dataset.from_tensors(({"x": x}, y)).repeat()

    model_dir = os.path.join(workdir, "model_dir")
    estimator(model_dir).train(batch, steps=5)
    predicted = estimator(model_dir).predict(lambda: tf.data.Dataset.from_tensors({"x": x}))
    np.save(os.path.join(workdir, "logits.npy"), np.stack([p["logits"] for p in predicted]))
    next_dir = os.path.join(workdir, "next_dir")
    shutil.copytree(model_dir, next_dir)
    estimator(next_dir).train(batch, steps=1)
    reader = tf.train.load_checkpoint(next_dir)
    values = {
        name: reader.get_tensor(name)
        for name, dtype in reader.get_variable_to_dtype_map().items()
        if dtype.is_floating or dtype.is_integer
    }
    np.savez(os.path.join(workdir, "next.npz"), **values)


if __name__ == "__main__":
    main(*sys.argv[1:])
