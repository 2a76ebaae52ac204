"""Runnable examples of `est_ckpt` in an Estimator pipeline.

- `python -m est_ckpt.examples.train --model_dir=DIR [--flagfile=configs/x.flags]`:
  a launch script configured only by flags (see `configs/`).
- `est-ckpt demo`: the whole migration story (`est_ckpt.examples.demo`).

Both learn the same deterministic in-code dataset, `blobs`, with the same
seeded Keras classifier, `classifier`.
"""

from __future__ import annotations

NUM_FEATURES = 4
NUM_CLASSES = 3
FEATURE_KEY = "x"


def blobs(num_examples: int, *, seed: int):
    """Returns `(x, y)`: a deterministic, nearly separable 3-class problem in 4 dimensions.

    The class centres are fixed (the same for every `seed`), so a train split
    (`seed=0`) and an eval split (`seed=1`) come from one distribution.

    Args:
      num_examples: how many examples.
      seed: seed of the examples (not of the centres).

    Returns:
      `x`: float32 `[num_examples, 4]`; `y`: int32 `[num_examples]` in `[0, 3)`.
    """
    import numpy as np

    centres = np.random.RandomState(42).normal(size=(NUM_CLASSES, NUM_FEATURES)) * 2.5
    rs = np.random.RandomState(seed)
    y = rs.randint(0, NUM_CLASSES, size=num_examples).astype(np.int32)
    x = (centres[y] + rs.normal(size=(num_examples, NUM_FEATURES))).astype(np.float32)
    return x, y


def classifier(hidden_units: int, *, seed: int):
    """Returns the examples' two-layer Keras classifier, named `classifier/{hidden,logits}`.

    Its initial weights depend only on `seed`: Keras initializers without a
    seed draw one from Python's `random` in every process, and ignore the
    graph-level seed (`RunConfig(tf_random_seed=...)`), so an unseeded model
    starts from different weights in every run.

    Args:
      hidden_units: width of the hidden layer.
      seed: seed of the initial weights (each layer gets its own, derived from it).
    """
    from est_ckpt.tf import runtime

    keras = runtime.tf().keras
    return keras.Sequential(
        [
            keras.layers.Dense(
                hidden_units,
                activation="relu",
                name="hidden",
                kernel_initializer=keras.initializers.GlorotUniform(seed=2 * seed),
            ),
            keras.layers.Dense(
                NUM_CLASSES,
                name="logits",
                kernel_initializer=keras.initializers.GlorotUniform(seed=2 * seed + 1),
            ),
        ],
        name="classifier",
    )


def input_fn(num_examples: int, *, seed: int, batch_size: int = 32, repeat: bool):
    """Returns an Estimator `input_fn` over `blobs(num_examples, seed=seed)`."""

    def fn():
        from est_ckpt.tf import runtime

        x, y = blobs(num_examples, seed=seed)
        ds = runtime.tf().data.Dataset.from_tensor_slices(({FEATURE_KEY: x}, y))
        if repeat:
            ds = ds.repeat()
        return ds.batch(batch_size)

    return fn
