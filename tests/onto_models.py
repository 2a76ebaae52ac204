"""Shared by the optimizer-state tests of `convert --like`: a tiny dense model, TF1 and Keras optimizers alike.

`graph`/`train_tf1` build and train a TF1 graph of one dense layer
(`dense/kernel`, `dense/bias`) on fixed data; `keras` builds the same layer
as an eager Keras model with its optimizer's variables; `keras_step` is one
Keras training step on the same data. `OPTIMIZERS` pairs each TF1 optimizer
with the Keras optimizer of the same hyperparameters.
"""

from __future__ import annotations

import numpy as np

X = np.random.RandomState(1).randn(8, 4).astype(np.float32)
Y = np.random.RandomState(2).randn(8, 3).astype(np.float32)

# (TF1 optimizer, Keras optimizer with the same hyperparameters)
OPTIMIZERS = {
    "adam": (
        lambda tf1: tf1.train.AdamOptimizer(0.1, beta1=0.8, beta2=0.95, epsilon=1e-8),
        lambda tf: tf.keras.optimizers.Adam(0.1, beta_1=0.8, beta_2=0.95, epsilon=1e-8),
    ),
    "adagrad": (
        lambda tf1: tf1.train.AdagradOptimizer(0.1, initial_accumulator_value=0.1),
        lambda tf: tf.keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-10),
    ),
    "ftrl": (
        lambda tf1: tf1.train.FtrlOptimizer(
            0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01
        ),
        lambda tf: tf.keras.optimizers.Ftrl(
            0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01
        ),
    ),
    "rmsprop": (
        lambda tf1: tf1.train.RMSPropOptimizer(0.01, decay=0.9, momentum=0.5, epsilon=1e-7),
        lambda tf: tf.keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-7),
    ),
}


def graph(tf, optimizer):
    tf1 = tf.compat.v1
    x = tf1.constant(X)
    rng = np.random.RandomState(0)
    out = tf1.layers.dense(
        x,
        3,
        name="dense",
        kernel_initializer=tf1.constant_initializer(rng.randn(4, 3)),
        bias_initializer=tf1.constant_initializer(rng.randn(3)),
    )
    loss = tf1.reduce_mean(tf1.square(out - Y))
    gs = tf1.train.get_or_create_global_step()
    return optimizer.minimize(loss, global_step=gs)


def train_tf1(tf, make_optimizer, path: str, *, steps: int, restore: str = None) -> dict:
    """Trains the TF1 graph `steps` steps (from `restore` if given), saves to `path`; returns the weights."""
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        train_op = graph(tf, make_optimizer(tf1))
        saver = tf1.train.Saver()
        with tf1.Session() as sess:
            if restore:
                saver.restore(sess, restore)
            else:
                sess.run(tf1.global_variables_initializer())
            for _ in range(steps):
                sess.run(train_op)
            if path:
                saver.save(sess, path)
            return {v.op.name: sess.run(v) for v in tf1.trainable_variables()}


def keras(tf, make_optimizer):
    model = tf.keras.Sequential([tf.keras.layers.Dense(3, name="dense")])
    model.build((None, 4))
    optimizer = make_optimizer(tf)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def keras_step(tf, model, optimizer):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(X) - Y))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
