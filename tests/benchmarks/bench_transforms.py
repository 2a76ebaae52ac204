"""Benchmark: value transforms (`convert --like --rules`) against the TF way and against numpy.

Two measurements, each command in a fresh process (wall time, peak RSS):

1. BERT-base (110M parameters, google-research/bert names and shapes, written
   by TensorFlow's SaveV2) onto Model Garden's `BertEncoder` layout
   (`MultiHeadAttention` kernels `[768, 12, 64]`, `[12, 64, 768]`), TEMPLATE an
   eager `tf.train.Checkpoint` of the new variables. TF's way: the new
   variables, `tf.train.load_checkpoint`, numpy reshape, `assign`,
   `Checkpoint.write`. est-ckpt: `est-ckpt convert SRC DST --like=TEMPLATE
   --rules=bert` (reshapes are index only). Goal: at most 0.1x time and memory.
2. A transposing transform of one `[N, N]` float32 tensor (1 GiB by default):
   numpy reading it, transposing it in memory (`np.ascontiguousarray(a.T)`) and
   writing it, against `est-ckpt convert --like --rules=transpose.json`, which
   streams it tile by tile. Goal: at most 2x numpy's time, at most 64 MiB peak.

Exit 1 if a goal is missed. Run it standalone:

    python tests/benchmarks/bench_transforms.py [--transpose-mb=1024] [--bert-layers=12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _util import report_against_tf, workdir  # noqa: E402
from bench_convert import EST_CKPT, _dir_size, _measure  # noqa: E402

# What both BERT scripts share: TensorFlow, the two layouts' shapes, the new model's variables.
_BERT = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf

def shapes(layers, h=768, inner=3072, vocab=30522, positions=512, types=2, heads=12):
    tf1, keras = {}, {}
    def pair(t, k, shape, k_shape=None):
        tf1[t] = shape
        keras[k] = k_shape or shape
    pair("bert/embeddings/word_embeddings", "word_embeddings/embeddings", [vocab, h])
    pair("bert/embeddings/token_type_embeddings", "type_embeddings/embeddings", [types, h])
    pair("bert/embeddings/position_embeddings", "position_embedding/embeddings", [positions, h])
    for p in ("gamma", "beta"):
        pair(f"bert/embeddings/LayerNorm/{p}", f"embeddings/layer_norm/{p}", [h])
    for n in range(layers):
        t, k = f"bert/encoder/layer_{n}/", f"transformer/layer_{n}/"
        for q in ("query", "key", "value"):
            pair(t + f"attention/self/{q}/kernel", k + f"self_attention/{q}/kernel", [h, h], [h, heads, h // heads])
            pair(t + f"attention/self/{q}/bias", k + f"self_attention/{q}/bias", [h], [heads, h // heads])
        pair(t + "attention/output/dense/kernel", k + "self_attention/attention_output/kernel", [h, h], [heads, h // heads, h])
        pair(t + "attention/output/dense/bias", k + "self_attention/attention_output/bias", [h])
        for p in ("gamma", "beta"):
            pair(t + f"attention/output/LayerNorm/{p}", k + f"self_attention_layer_norm/{p}", [h])
            pair(t + f"output/LayerNorm/{p}", k + f"output_layer_norm/{p}", [h])
        pair(t + "intermediate/dense/kernel", k + "intermediate/kernel", [h, inner])
        pair(t + "intermediate/dense/bias", k + "intermediate/bias", [inner])
        pair(t + "output/dense/kernel", k + "output/kernel", [inner, h])
        pair(t + "output/dense/bias", k + "output/bias", [h])
    pair("bert/pooler/dense/kernel", "pooler_transform/kernel", [h, h])
    pair("bert/pooler/dense/bias", "pooler_transform/bias", [h])
    return tf1, keras

def new_encoder(keras_shapes):
    model = tf.Module()
    model.vars = [tf.Variable(tf.zeros(s), name=n) for n, s in keras_shapes.items()]
    return model
"""

_GENERATE_BERT = (
    _BERT
    + """
src, template, layers = sys.argv[1], sys.argv[2], int(sys.argv[3])
tf1_shapes, keras_shapes = shapes(layers)
rng = np.random.default_rng(0)
names = list(tf1_shapes)
tensors = [tf.constant(rng.standard_normal(tf1_shapes[n], dtype=np.float32)) for n in names]
tf.raw_ops.SaveV2(prefix=src, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
model = new_encoder(keras_shapes)
tf.train.Checkpoint(encoder=model).write(template)
print(sum(int(np.prod(s)) for s in tf1_shapes.values()))
"""
)

# TF's way: the new variables, each value read, reshaped by numpy, assigned, the new checkpoint written.
_TF_BERT = (
    _BERT
    + """
src, out, layers = sys.argv[1], sys.argv[2], int(sys.argv[3])
tf1_shapes, keras_shapes = shapes(layers)
model = new_encoder(keras_shapes)
reader = tf.train.load_checkpoint(src)
for v, name in zip(model.vars, tf1_shapes):
    v.assign(reader.get_tensor(name).reshape(v.shape))
tf.train.Checkpoint(encoder=model).write(out)
"""
)

_GENERATE_SQUARE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
src, template, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
w = tf.random.uniform([n, n], seed=0)
tf.raw_ops.SaveV2(prefix=src, tensor_names=["w"], shape_and_slices=[""], tensors=[w])
tf.raw_ops.SaveV2(prefix=template, tensor_names=["w_t"], shape_and_slices=[""], tensors=[tf.zeros([n, n])])
"""

# numpy transposing it in memory: the tensor's bytes read, transposed, written.
_NUMPY_TRANSPOSE = """
import sys
import numpy as np
data, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
a = np.fromfile(data, dtype="<f4", count=n * n).reshape(n, n)
np.ascontiguousarray(a.T).tofile(out)
"""


def _bert(work: str, layers: int) -> int:
    src = os.path.join(work, "bert", "bert_model.ckpt")
    template = os.path.join(work, "bert_tpl", "ckpt")
    os.makedirs(os.path.dirname(src))
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _GENERATE_BERT, src, template, str(layers)],
        check=True,
        capture_output=True,
        text=True,
    )
    params = int(out.stdout.split()[-1])
    print(
        f"BERT ({layers} layers): {params / 1e6:.0f}M parameters, SRC {_dir_size(src) / (1 << 20):.0f} MiB "
        f"(generated in {time.perf_counter() - t:.1f} s)"
    )
    theirs = _measure(
        [sys.executable, "-c", _TF_BERT, src, os.path.join(work, "tf_bert", "ckpt"), str(layers)]
    )
    ours = _measure(
        [
            EST_CKPT,
            "convert",
            src,
            os.path.join(work, "ours_bert", "ckpt"),
            f"--like={template}",
            "--rules=bert",
        ]
    )
    return report_against_tf(
        "TF (load_checkpoint, numpy reshape, assign, Checkpoint.write)",
        theirs,
        "est-ckpt convert --like --rules=bert (reshapes index only)",
        ours,
    )


def _transpose(work: str, megabytes: float) -> int:
    n = int((megabytes * (1 << 20) / 4) ** 0.5)
    src = os.path.join(work, "square", "model.ckpt")
    template = os.path.join(work, "square_tpl", "model.ckpt")
    os.makedirs(os.path.dirname(src))
    os.makedirs(os.path.dirname(template))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", _GENERATE_SQUARE, src, template, str(n)], check=True)
    print(
        f"transpose: one float32 [{n}, {n}] tensor, {n * n * 4 / (1 << 20):.0f} MiB (generated in {time.perf_counter() - t:.1f} s)"
    )
    rules = os.path.join(work, "transpose.json")
    with open(rules, "w") as f:
        json.dump(
            {
                "est_ckpt_rules": 1,
                "rules": [{"target": "w_t", "source": "w", "transforms": [{"transpose": [1, 0]}]}],
            },
            f,
        )
    data = src + ".data-00000-of-00001"
    theirs = _measure([sys.executable, "-c", _NUMPY_TRANSPOSE, data, os.path.join(work, "numpy.bin"), str(n)])
    os.remove(os.path.join(work, "numpy.bin"))
    ours = _measure(
        [
            EST_CKPT,
            "convert",
            src,
            os.path.join(work, "ours_t", "model.ckpt"),
            f"--like={template}",
            f"--rules={rules}",
        ]
    )
    for label, run in (
        ("numpy (read, transpose in memory, write)", theirs),
        ("est-ckpt convert --like (tiles)", ours),
    ):
        print(f"{label + ':':<42} {run['seconds']:7.2f} s  {run['peak_mib']:7.0f} MiB peak")
    ratio = ours["seconds"] / theirs["seconds"]
    print(
        f"ratio est-ckpt / numpy: time {ratio:.3f}x (goal <= 2x), est-ckpt peak {ours['peak_mib']:.0f} MiB (goal <= 64 MiB)"
    )
    return 0 if ratio <= 2 and ours["peak_mib"] <= 64 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--transpose-mb", type=float, default=1024.0, help="size of the transposed tensor (MiB)"
    )
    parser.add_argument("--bert-layers", type=int, default=12, help="BERT layers (12: BERT-base, 110M)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    with workdir("bench-transforms-", args.keep) as work:
        failed = _bert(work, args.bert_layers)
        failed |= _transpose(work, args.transpose_mb)
        return failed


if __name__ == "__main__":
    sys.exit(main())
