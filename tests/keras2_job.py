"""A tf.keras 2 model, trained for the Keras 3 environment's `map --suggest` test by the Estimator env's Python.

    python tests/keras2_job.py WORKDIR

It reads `WORKDIR/data.npz` (`x` [n, 4], `y` [n, 1] float32), builds
`Dense(8, relu) · LayerNormalization · Dense(8, relu) · Dense(1)` (tf.keras 2.15,
auto-named `dense`, `layer_normalization`, `dense_1`, `dense_2`), trains it 3
steps with Adam (MSE) and writes `tf.train.Checkpoint(model, optimizer)` to
`WORKDIR/keras2/ckpt`; then it takes one more step and writes every trainable
weight, in the model's order, to `WORKDIR/next.npz` (`w0`, `w1`, ...).
"""

from __future__ import annotations

import os
import sys

import numpy as np


def main(workdir: str) -> None:
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    data = np.load(os.path.join(workdir, "data.npz"))
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((4,)),
            tf.keras.layers.Dense(8, activation="relu"),
            tf.keras.layers.LayerNormalization(),
            tf.keras.layers.Dense(8, activation="relu"),
            tf.keras.layers.Dense(1),
        ]
    )
    model.compile(tf.keras.optimizers.Adam(0.01), "mse")
    for _ in range(3):
        model.train_on_batch(data["x"], data["y"])
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(os.path.join(workdir, "keras2", "ckpt"))
    model.train_on_batch(data["x"], data["y"])
    np.savez(
        os.path.join(workdir, "next.npz"),
        **{f"w{i}": v.numpy() for i, v in enumerate(model.trainable_weights)},
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
