"""Recurrent models through value transforms: TF1 `LSTMCell`/`BasicLSTMCell`/`GRUCell` <-> Keras `LSTM`/`GRU`.

Each way, a model trains two steps with Adam, `convert --like` moves it onto
the other's checkpoint with the `lstm` or `gru` preset, and the other model,
restored from the result, computes the same outputs (1e-5) and, after one more
step on the same batch, the same weights (1e-6): the optimizer state followed
its variable's split, concat and gate reorder, never the forget bias.
"""

from __future__ import annotations

import numpy as np
import pytest

import est_ckpt
from tests.cli import run_cli

pytestmark = pytest.mark.keras2
tf = pytest.importorskip("tensorflow")
tf1 = tf.compat.v1

T, IN, UNITS, BATCH = 5, 3, 4, 6
LR = 0.05
X = np.random.RandomState(0).randn(BATCH, T, IN).astype(np.float32)
Y = np.random.RandomState(1).randn(BATCH, 1).astype(np.float32)


def _cell(kind: str, forget_bias: float):
    cells = tf1.nn.rnn_cell
    if kind == "lstm":
        return cells.LSTMCell(UNITS, forget_bias=forget_bias)
    if kind == "basic_lstm":
        return cells.BasicLSTMCell(UNITS, forget_bias=forget_bias)
    return cells.GRUCell(UNITS)


class Tf1Model:
    """A TF1 graph: an RNN cell over X, a dense head, MSE, Adam; with a name-based Saver."""

    def __init__(self, kind: str, forget_bias: float = 1.0, seed: int = 0):
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            self.x = tf1.placeholder(tf.float32, [None, T, IN])
            self.y = tf1.placeholder(tf.float32, [None, 1])
            _, state = tf1.nn.dynamic_rnn(_cell(kind, forget_bias), self.x, dtype=tf.float32)
            h = state.h if kind != "gru" else state
            self.out = tf1.layers.dense(h, 1, name="dense")
            loss = tf.reduce_mean(tf.square(self.out - self.y))
            step = tf1.train.get_or_create_global_step()
            self.train = tf1.train.AdamOptimizer(LR).minimize(loss, global_step=step)
            self.saver = tf1.train.Saver()
            self.sess = tf1.Session(graph=self.graph)
            self.sess.run(tf1.global_variables_initializer())

    def save(self, path, step: int) -> str:
        with self.graph.as_default():
            return self.saver.save(self.sess, str(path), global_step=step)

    def restore(self, prefix: str) -> None:
        with self.graph.as_default():
            self.saver.restore(self.sess, prefix)

    def run_steps(self, n: int) -> None:
        for _ in range(n):
            self.sess.run(self.train, {self.x: X, self.y: Y})

    def predict(self):
        return self.sess.run(self.out, {self.x: X})

    def values(self) -> dict:
        with self.graph.as_default():
            return {v.op.name: self.sess.run(v) for v in tf1.global_variables()}


def _keras(kind: str, seed: int = 0):
    tf.keras.utils.set_random_seed(seed)
    # Named as the presets expect: Keras numbers a second layer of a class in one process (`lstm_1`).
    rnn = (
        tf.keras.layers.LSTM(UNITS, name="lstm")
        if kind != "gru"
        else tf.keras.layers.GRU(UNITS, reset_after=False, name="gru")
    )
    model = tf.keras.Sequential([tf.keras.Input((T, IN)), rnn, tf.keras.layers.Dense(1, name="dense")])
    opt = tf.keras.optimizers.Adam(LR, epsilon=1e-8)  # TF1 AdamOptimizer's epsilon
    opt.build(model.trainable_variables)
    return model, opt


def _keras_step(model, opt, n: int = 1) -> None:
    for _ in range(n):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(X) - Y))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))


def _keras_save(model, opt, path) -> str:
    return tf.train.Checkpoint(model=model, optimizer=opt).write(str(path))


# The layouts, written here in numpy (independently of est_ckpt's rules): TF1 gates i, j, f, o; Keras i, f, c, o.
def _lstm_to_keras(kernel, bias, forget_bias):
    order = lambda w: np.concatenate([np.split(w, 4, axis=-1)[k] for k in (0, 2, 1, 3)], axis=-1)  # noqa: E731
    b = order(bias).copy()
    b[UNITS : 2 * UNITS] += forget_bias
    return order(kernel[:IN]), order(kernel[IN:]), b


def _gru_to_keras(gates_k, gates_b, cand_k, cand_b):
    r, u = np.split(gates_k, 2, axis=1)
    kernel = np.concatenate([u, r, cand_k], axis=1)
    rb, ub = np.split(gates_b, 2)
    return kernel[:IN], kernel[IN:], np.concatenate([ub, rb, cand_b])


def _expected_keras(kind: str, values: dict, scope: str, forget_bias: float) -> list:
    if kind == "gru":
        k, rk, b = _gru_to_keras(
            *(
                values[f"rnn/gru_cell/{n}"]
                for n in ("gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias")
            )
        )
    else:
        k, rk, b = _lstm_to_keras(values[f"rnn/{scope}/kernel"], values[f"rnn/{scope}/bias"], forget_bias)
    return [k, rk, b, values["dense/kernel"], values["dense/bias"]]


CASES = [
    ("lstm", "lstm_cell", "lstm", 1.0, []),
    ("basic_lstm", "basic_lstm_cell", "lstm", 1.0, ["--rule_param", "tf1=rnn/basic_lstm_cell"]),
    ("lstm", "lstm_cell", "lstm", 0.5, ["--rule_param", "forget_bias=0.5"]),
    ("gru", "gru_cell", "gru", 0.0, []),
]


@pytest.mark.parametrize(
    "kind,scope,preset,forget_bias,params", CASES, ids=["lstm", "basic_lstm", "forget_bias", "gru"]
)
def test_tf1_cell_onto_keras_rnn_continues_training_equal(tmp_path, kind, scope, preset, forget_bias, params):
    """TF1 cell + Adam -> Keras LSTM/GRU: same outputs, and one more step gives the same weights."""
    tf1_model = Tf1Model(kind, forget_bias)
    tf1_model.run_steps(2)
    src = tf1_model.save(tmp_path / "tf1" / "model.ckpt", 2)
    model, opt = _keras(kind, seed=1)
    template = _keras_save(model, opt, tmp_path / "tpl" / "ckpt")
    proc = run_cli(
        "convert",
        src,
        str(tmp_path / "out" / "ckpt"),
        f"--like={template}",
        f"--rules={preset}",
        *params,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    tf.train.Checkpoint(model=model, optimizer=opt).read(str(tmp_path / "out" / "ckpt")).assert_consumed()
    np.testing.assert_allclose(model(X).numpy(), tf1_model.predict(), atol=1e-5)
    assert int(opt.iterations.numpy()) == 2

    tf1_model.run_steps(1)
    _keras_step(model, opt)
    expected = _expected_keras(kind, tf1_model.values(), scope, forget_bias)
    for got, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-6, err_msg=got.name)


@pytest.mark.parametrize(
    "kind,scope,preset,forget_bias,params", CASES, ids=["lstm", "basic_lstm", "forget_bias", "gru"]
)
def test_keras_rnn_onto_tf1_cell_continues_training_equal(tmp_path, kind, scope, preset, forget_bias, params):
    """Keras LSTM/GRU + Adam -> TF1 cell: same outputs, Adam's powers derived, one more step the same weights."""
    # The TF1 graph first: TF1 layers made in a graph invalidate Keras models made before them.
    tf1_model = Tf1Model(kind, forget_bias, seed=3)
    template = tf1_model.save(tmp_path / "tpl" / "model.ckpt", 0)
    model, opt = _keras(kind)
    _keras_step(model, opt, 2)
    src = _keras_save(model, opt, tmp_path / "keras" / "ckpt")
    out = str(tmp_path / "out" / "model.ckpt")
    proc = run_cli("convert", src, out, f"--like={template}", f"--rules={preset}", *params)
    assert proc.returncode == 0, proc.stderr
    tf1_model.restore(out)
    np.testing.assert_allclose(tf1_model.predict(), model(X).numpy(), atol=1e-5)

    tf1_model.run_steps(1)
    _keras_step(model, opt)
    expected = _expected_keras(kind, tf1_model.values(), scope, forget_bias)
    for got, want in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(want, got.numpy(), atol=1e-6, err_msg=got.name)


def test_map_shows_each_pairs_transforms_and_slots_follow_without_the_bias_add(tmp_path):
    """`map --optimizer_state --json` lists the transforms of every computed pair; the bias's slots skip the add."""
    tf1_model = Tf1Model("lstm")
    tf1_model.run_steps(1)
    src = tf1_model.save(tmp_path / "tf1" / "model.ckpt", 1)
    model, opt = _keras("lstm")
    template = _keras_save(model, opt, tmp_path / "tpl" / "ckpt")
    import json

    proc = run_cli("map", src, f"--target={template}", "--rules=lstm", "--optimizer_state", "--json")
    assert proc.returncode == 0, proc.stderr
    mapped = {m["target"]: m for m in json.loads(proc.stdout)["mapped"]}
    bias = mapped["lstm/lstm_cell/bias"]
    assert bias["sources"] == ["rnn/lstm_cell/bias"]
    assert bias["transforms"] == [
        {"reorder": {"axis": 0, "parts": 4, "order": [0, 2, 1, 3]}},
        {"add": {"value": 1.0, "axis": 0, "parts": 4, "index": 1}},
    ]
    slots = [m for t, m in mapped.items() if t.endswith("lstm/lstm_cell/bias") and t != "lstm/lstm_cell/bias"]
    assert len(slots) == 2
    for slot in slots:
        assert slot["transforms"] == [{"reorder": {"axis": 0, "parts": 4, "order": [0, 2, 1, 3]}}]
    kernel = mapped["lstm/lstm_cell/recurrent_kernel"]
    assert kernel["transforms"][0] == {"slice": {"axis": 0, "begin": IN, "size": UNITS}}
    text = run_cli("map", src, f"--target={template}", "--rules=lstm")
    assert (
        "lstm/lstm_cell/kernel <- rnn/lstm_cell/kernel  [ok]  via slice axis 0 [0:3]; reorder axis 1 blocks [0, 2, 1, 3]"
        in text.stdout
    )


def test_a_shape_no_transform_reaches_names_the_pair_and_what_fits(tmp_path):
    """A rule whose transforms give the wrong shape is refused, naming the pair, the shapes and a fix; exit 1."""
    tf1_model = Tf1Model("lstm")
    src = tf1_model.save(tmp_path / "tf1" / "model.ckpt", 1)
    model, opt = _keras("lstm")
    template = _keras_save(model, opt, tmp_path / "tpl" / "ckpt")
    rules = tmp_path / "bad.json"
    rules.write_text(
        '{"est_ckpt_rules": 1, "rules": [{"target": "lstm/lstm_cell/kernel", "source": "rnn/lstm_cell/kernel"},'
        ' {"target": "lstm/lstm_cell/(recurrent_kernel|bias)", "source": "rnn/lstm_cell/bias"}]}'
    )
    proc = run_cli(
        "convert",
        src,
        str(tmp_path / "out" / "ckpt"),
        f"--like={template}",
        f"--rules={rules}",
        "--keep_unmapped",
    )
    assert proc.returncode == 1
    assert (
        "'lstm/lstm_cell/kernel' <- 'rnn/lstm_cell/kernel': the transforms give [7, 16], the target is [3, 16]"
        in proc.stderr
    )
    assert "slice, split or concat" in proc.stderr
    assert not (tmp_path / "out").exists()
    assert est_ckpt.verify_checkpoint(src).ok


def test_lstm_block_cell_keeps_lstm_cells_layout_so_the_preset_serves_it(tmp_path):
    """`LSTMBlockCell` (TF's fused kernel, `tf.raw_ops.LSTMBlockCell`) over the same kernel and bias computes what
    the Keras LSTM converted with the `lstm` preset computes: one layout (gates i, j, f, o), one preset."""
    tf1_model = Tf1Model("lstm")
    tf1_model.run_steps(1)
    src = tf1_model.save(tmp_path / "tf1" / "model.ckpt", 1)
    values = tf1_model.values()
    model, opt = _keras("lstm")
    template = _keras_save(model, opt, tmp_path / "tpl" / "ckpt")
    proc = run_cli("convert", src, str(tmp_path / "out" / "ckpt"), f"--like={template}", "--rules=lstm")
    assert proc.returncode == 0, proc.stderr
    tf.train.Checkpoint(model=model, optimizer=opt).read(str(tmp_path / "out" / "ckpt")).assert_consumed()
    w, b = values["rnn/lstm_cell/kernel"], values["rnn/lstm_cell/bias"]
    zeros = tf.zeros([4 * UNITS // 4], tf.float32)
    c = h = tf.zeros([BATCH, UNITS])
    for t in range(T):
        out = tf.raw_ops.LSTMBlockCell(
            x=X[:, t], cs_prev=c, h_prev=h, w=w, wci=zeros, wcf=zeros, wco=zeros, b=b, forget_bias=1.0,
            cell_clip=-1.0, use_peephole=False,
        )  # fmt: skip
        c, h = out[1], out[6]
    dense = model.layers[-1]
    np.testing.assert_allclose(dense(h).numpy(), model(X).numpy(), atol=1e-5)
