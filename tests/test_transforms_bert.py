"""A BERT-shaped TF1 model (google-research/bert's variable names and shapes, our own code, 2 layers) onto a
Keras encoder built on `MultiHeadAttention` with Model Garden's `BertEncoder` layout, with the `bert` preset.

Every encoder variable is mapped (no `--keep_unmapped`), the reshapes are
index only (no byte of the result is written: every data file of DST is a
hard link), and the encoder computes the TF1 graph's outputs within 1e-5.
The way back (Keras onto the TF1 graph) holds too.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import est_ckpt
from tests.cli import run_cli

pytestmark = pytest.mark.keras2
tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

VOCAB, TYPES, POSITIONS = 40, 2, 16
H, HEADS, INNER, LAYERS, SEQ, BATCH = 16, 4, 32, 2, 7, 3
D = H // HEADS
IDS = np.random.RandomState(0).randint(0, VOCAB, (BATCH, SEQ)).astype(np.int32)
TYPE_IDS = np.random.RandomState(1).randint(0, TYPES, (BATCH, SEQ)).astype(np.int32)


def _gelu(x):
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def _layer_norm(x, scope):
    with tf1.variable_scope(scope):
        gamma = tf1.get_variable("gamma", [H], initializer=tf1.random_normal_initializer(1.0, 0.1))
        beta = tf1.get_variable("beta", [H], initializer=tf1.random_normal_initializer(0.0, 0.1))
    mean, var = tf.nn.moments(x, [-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-12)


def _dense(x, units, scope, activation=None):
    with tf1.variable_scope(scope):
        kernel = tf1.get_variable(
            "kernel", [x.shape[-1], units], initializer=tf1.random_normal_initializer(0, 0.2)
        )
        bias = tf1.get_variable("bias", [units], initializer=tf1.random_normal_initializer(0, 0.1))
    y = tf.einsum("bsh,hu->bsu", x, kernel) + bias if x.shape.ndims == 3 else tf.matmul(x, kernel) + bias
    return activation(y) if activation else y


class Tf1Bert:
    """google-research/bert's modeling.py structure and names, written here (no dropout, no mask)."""

    def __init__(self):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(0)
            self.ids = tf1.placeholder(tf.int32, [None, SEQ])
            self.types = tf1.placeholder(tf.int32, [None, SEQ])
            init = tf1.random_normal_initializer(0, 0.2)
            with tf1.variable_scope("bert"):
                with tf1.variable_scope("embeddings"):
                    word = tf1.get_variable("word_embeddings", [VOCAB, H], initializer=init)
                    token_type = tf1.get_variable("token_type_embeddings", [TYPES, H], initializer=init)
                    position = tf1.get_variable("position_embeddings", [POSITIONS, H], initializer=init)
                    x = tf.gather(word, self.ids) + tf.gather(token_type, self.types) + position[:SEQ]
                    x = _layer_norm(x, "LayerNorm")
                with tf1.variable_scope("encoder"):
                    for n in range(LAYERS):
                        with tf1.variable_scope(f"layer_{n}"):
                            x = self._layer(x)
                self.sequence = x
                with tf1.variable_scope("pooler"):
                    self.pooled = _dense(x[:, 0], H, "dense", tf.tanh)
            with tf1.variable_scope("cls/predictions"):  # a pre-training head: not part of the encoder
                tf1.get_variable("output_bias", [VOCAB], initializer=tf1.zeros_initializer())
            self.saver = tf1.train.Saver()
            self.sess = tf1.Session(graph=self.graph)
            self.sess.run(tf1.global_variables_initializer())

    @staticmethod
    def _layer(x):
        with tf1.variable_scope("attention"):
            with tf1.variable_scope("self"):
                heads = [
                    tf.transpose(tf.reshape(_dense(x, H, name), [-1, SEQ, HEADS, D]), [0, 2, 1, 3])
                    for name in ("query", "key", "value")
                ]
                scores = tf.matmul(heads[0], heads[1], transpose_b=True) / math.sqrt(D)
                context = tf.matmul(tf.nn.softmax(scores), heads[2])
                context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, SEQ, H])
            with tf1.variable_scope("output"):
                attended = _layer_norm(_dense(context, H, "dense") + x, "LayerNorm")
        inner = _dense(attended, INNER, "intermediate/dense", _gelu)
        with tf1.variable_scope("output"):
            return _layer_norm(_dense(inner, H, "dense") + attended, "LayerNorm")

    def save(self, path) -> str:
        with self.graph.as_default():
            return self.saver.save(self.sess, str(path))

    def restore(self, prefix: str) -> None:
        with self.graph.as_default():
            self.saver.restore(self.sess, prefix)

    def outputs(self):
        return self.sess.run([self.sequence, self.pooled], {self.ids: IDS, self.types: TYPE_IDS})


class _Block(tf.keras.layers.Layer):
    """Model Garden's `TransformerEncoderBlock` (post-norm), with its sublayer names."""

    def __init__(self, name):
        super().__init__(name=name)
        ln = dict(epsilon=1e-12, axis=-1)
        self.attention = tf.keras.layers.MultiHeadAttention(HEADS, D, name="self_attention")
        self.attention_norm = tf.keras.layers.LayerNormalization(name="self_attention_layer_norm", **ln)
        self.intermediate = tf.keras.layers.EinsumDense(
            "abc,cd->abd", (None, INNER), bias_axes="d", name="intermediate"
        )
        self.out = tf.keras.layers.EinsumDense("abc,cd->abd", (None, H), bias_axes="d", name="output")
        self.out_norm = tf.keras.layers.LayerNormalization(name="output_layer_norm", **ln)

    def call(self, x):
        attended = self.attention_norm(self.attention(x, x) + x)
        return self.out_norm(self.out(_gelu(self.intermediate(attended))) + attended)


class _PositionEmbedding(tf.keras.layers.Layer):
    """Model Garden's `PositionEmbedding`: a `[max_length, width]` table, its first rows added."""

    def build(self, shape):
        self.embeddings = self.add_weight("embeddings", [POSITIONS, H])

    def call(self, x):
        return x + self.embeddings[: x.shape[1]]


def _keras_encoder():
    ids = tf.keras.Input((SEQ,), dtype=tf.int32)
    types = tf.keras.Input((SEQ,), dtype=tf.int32)
    word = tf.keras.layers.Embedding(VOCAB, H, name="word_embeddings")(ids)
    token_type = tf.keras.layers.Embedding(TYPES, H, name="type_embeddings")(types)
    x = _PositionEmbedding(name="position_embedding")(word + token_type)
    x = tf.keras.layers.LayerNormalization(epsilon=1e-12, name="embeddings/layer_norm")(x)
    for n in range(LAYERS):
        x = _Block(f"transformer/layer_{n}")(x)
    pooled = tf.keras.layers.Dense(H, activation="tanh", name="pooler_transform")(x[:, 0])
    return tf.keras.Model([ids, types], [x, pooled])


def _data_files(prefix: str) -> list[str]:
    directory, base = os.path.split(prefix)
    return [os.path.join(directory, f) for f in os.listdir(directory) if f.startswith(base + ".data-")]


def test_bert_onto_a_keras_encoder_with_model_gardens_layout(tmp_path):
    """Every encoder variable mapped, the reshapes index only, the encoder's outputs the TF1 graph's within 1e-5."""
    bert = Tf1Bert()
    src = bert.save(tmp_path / "tf1" / "bert_model.ckpt")
    encoder = _keras_encoder()
    template = tf.train.Checkpoint(encoder=encoder).write(str(tmp_path / "tpl" / "ckpt"))
    plan = json.loads(run_cli("map", src, f"--target={template}", "--rules=bert", "--json").stdout)
    reshaped = [m for m in plan["mapped"] if m.get("transforms")]
    assert len(reshaped) == LAYERS * 7  # q, k, v kernels and biases, and the output kernel
    assert all(m["index_only"] for m in reshaped)
    assert plan["unmapped"] == [] and plan["unused_sources"] == ["cls/predictions/output_bias"]

    dst = str(tmp_path / "out" / "ckpt")
    proc = run_cli("convert", src, dst, f"--like={template}", "--rules=bert")
    assert proc.returncode == 0, proc.stderr
    assert all(os.stat(f).st_nlink > 1 for f in _data_files(dst)), "a data shard was written"
    status = tf.train.Checkpoint(encoder=encoder).read(dst)
    status.assert_existing_objects_matched()
    got = encoder([IDS, TYPE_IDS])
    for mine, theirs in zip(got, bert.outputs()):
        np.testing.assert_allclose(mine.numpy(), theirs, atol=1e-5)


def test_keras_encoder_back_onto_the_bert_graph(tmp_path):
    """The way back: the Keras encoder's weights onto google-research/bert's names, same outputs."""
    bert = Tf1Bert()
    template = bert.save(tmp_path / "tpl" / "bert_model.ckpt")
    encoder = _keras_encoder()
    for v in encoder.weights:  # weights of its own, unlike the TF1 graph's
        v.assign(np.random.RandomState(len(v.name)).normal(0, 0.2, v.shape).astype(np.float32))
    src = tf.train.Checkpoint(encoder=encoder).write(str(tmp_path / "keras" / "ckpt"))
    dst = str(tmp_path / "out" / "bert_model.ckpt")
    proc = run_cli("convert", src, dst, f"--like={template}", "--rules=bert", "--keep_unmapped")
    assert proc.returncode == 0, proc.stderr
    bert.restore(dst)
    for mine, theirs in zip(bert.outputs(), encoder([IDS, TYPE_IDS])):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-5)
    assert est_ckpt.verify_checkpoint(dst).ok


def test_attention_preset_tf1_dense_projections_onto_multi_head_attention(tmp_path):
    """`--rules=attention`: TF1 dense q/k/v/output `[hidden, heads*head_dim]` onto Keras MultiHeadAttention."""
    x_value = np.random.RandomState(2).randn(BATCH, SEQ, H).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(1)
        x = tf1.placeholder(tf.float32, [None, SEQ, H])
        with tf1.variable_scope("attention"):
            q, k, v = (
                tf.transpose(tf.reshape(_dense(x, H, name), [-1, SEQ, HEADS, D]), [0, 2, 1, 3])
                for name in ("query", "key", "value")
            )
            context = tf.matmul(tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / math.sqrt(D)), v)
            out = _dense(tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, SEQ, H]), H, "output")
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            expected = sess.run(out, {x: x_value})
            src = tf1.train.Saver().save(sess, str(tmp_path / "tf1" / "model.ckpt"))
    inputs = tf.keras.Input((SEQ, H))
    layer = tf.keras.layers.MultiHeadAttention(HEADS, D, name="self_attention")
    model = tf.keras.Model(inputs, layer(inputs, inputs))
    template = tf.train.Checkpoint(model=model).write(str(tmp_path / "tpl" / "ckpt"))
    dst = str(tmp_path / "out" / "ckpt")
    proc = run_cli("convert", src, dst, f"--like={template}", "--rules=attention")
    assert proc.returncode == 0, proc.stderr
    assert all(os.stat(f).st_nlink > 1 for f in _data_files(dst)), "a data shard was written"
    tf.train.Checkpoint(model=model).read(dst).assert_consumed()
    np.testing.assert_allclose(model(x_value).numpy(), expected, atol=1e-5)
