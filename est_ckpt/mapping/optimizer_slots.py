"""Which optimizer slots a checkpoint holds, for which variable, holding which state (without TensorFlow).

A slot is recognised by how each optimizer names it, on either side of a conversion:

| writer | slot key | its variable |
|---|---|---|
| TF1 optimizer (`AdamOptimizer` ...) | `<v>/Adam`, `<v>/Adam_1` (`<v>/t_0/Adam` in canned v1 Estimators) | the key `<v>` |
| TF 2.11+ Keras optimizer | the variable named `m/<v>`, `v/<v>`, `accumulator/<v>` ... | the variable named `<v>` |
| legacy Keras optimizer, eager | `<v path>/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE` | the object at `<v path>` |
| legacy Keras optimizer, graph (v2 canned Estimators) | `training/Adam/<v>/m` | the key `<v>` |

Each slot gets a *kind*, the state it holds; two slots carry over only when their kinds
are equal. The kind comes from the slot's name and, for Keras, from its siblings (`m` is
Adam's first moment next to `v`, SGD's velocity alone; `momentum` is RMSprop's next to
`velocity`/`rms`, SGD's alone). TF1 slots follow `TF1_OPTIMIZERS`, the one table of how TF1
optimizers name theirs: `RMSProp_1` is the mean gradient of a centered RMSProp (which has
`RMSProp_2`), else its momentum.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from est_ckpt.format import checkpoint, keys


@dataclasses.dataclass(frozen=True)
class Tf1Optimizer:
    """How a TF1 optimizer names its slots: the k-th slot of `<v>` is `<v>/<op>_k` (the first `<v>/<op>`).

    Attributes:
      op: the name TF gives the slot ops (`Adam`), uniquified with `_k` per further slot.
      slots: the slot names in the order the optimizer creates them (`get_slot(var, name)`).
      kinds: the state each slot holds (None: no Keras counterpart; such a slot is left a variable).
    """

    op: str
    slots: tuple[str, ...]
    kinds: tuple[Optional[str], ...]

    @property
    def suffixes(self) -> tuple[str, ...]:
        return tuple(self.op + (f"_{k}" if k else "") for k in range(len(self.slots)))


# THE table of TF1 slots: each optimizer as `tf.compat.v1.train.*Optimizer._create_slots` creates them.
TF1_OPTIMIZERS = (
    Tf1Optimizer("Adam", ("m", "v"), ("adam_m", "adam_v")),
    Tf1Optimizer("Adagrad", ("accumulator",), ("accumulator",)),
    Tf1Optimizer("ProximalAdagrad", ("accumulator",), ("accumulator",)),
    Tf1Optimizer("Ftrl", ("accum", "linear"), ("accumulator", "ftrl_linear")),
    Tf1Optimizer("Adadelta", ("accum", "accum_update"), ("adadelta_grad", "adadelta_delta")),
    Tf1Optimizer("RMSProp", ("rms", "momentum"), ("rms", "rms_momentum")),
    # centered=True: `RMSPropOptimizer` makes `mg` between them, so its momentum is `<v>/RMSProp_2`.
    Tf1Optimizer("RMSProp", ("rms", "mg", "momentum"), ("rms", "rms_mean_gradient", "rms_momentum")),
    Tf1Optimizer("Momentum", ("momentum",), ("tf1_momentum",)),
)
# Slot suffixes this module recognises (those with a kind).
TF1_SUFFIXES = frozenset(
    suffix for o in TF1_OPTIMIZERS for suffix, kind in zip(o.suffixes, o.kinds) if kind is not None
)


def _fewest_slots(fits: list[Tf1Optimizer]) -> list[Tf1Optimizer]:
    fewest = min((len(o.slots) for o in fits), default=0)
    return [o for o in fits if len(o.slots) == fewest]


def tf1_kind(suffix: str, sibling_suffixes: set) -> Optional[str]:
    """The kind of the TF1 slot `<v>/<suffix>`, given the suffixes of all of `<v>`'s slots."""
    fits = _fewest_slots([o for o in TF1_OPTIMIZERS if set(sibling_suffixes) | {suffix} <= set(o.suffixes)])
    return fits[0].kinds[fits[0].suffixes.index(suffix)] if fits else None


def tf1_slot_suffix(slot_name: str, all_slot_names: set, op: Optional[str] = None) -> Optional[str]:
    """The suffix (`Adam_1`) TF1 gives slot `slot_name` of a variable whose slots are `all_slot_names`.

    Args:
      op: the optimizer's op name where the slot's recorded name tells it, else None.

    Returns:
      None where the slots do not tell one optimizer apart.
    """
    names = set(all_slot_names) | {slot_name}
    fits = [o for o in TF1_OPTIMIZERS if (op is None or o.op == op) and names <= set(o.slots)]
    exact = [o for o in fits if set(o.slots) == names]
    fits = exact or (_fewest_slots(fits) if op is not None else fits)
    if len({o.slots for o in fits}) != 1:
        return None
    return fits[0].suffixes[fits[0].slots.index(slot_name)]


# The name scopes optimizers keep their own variables under (`Adam/m/dense/kernel`, `training/Adam/...`).
OPTIMIZER_SCOPES = frozenset(
    ("adam", "adamw", "adamax", "nadam", "sgd", "rmsprop", "adagrad", "adadelta", "ftrl", "lion", "lamb",
     "momentum", "training", "optimizer")
)  # fmt: skip

KERAS_SLOT_NAMES = frozenset(
    (
        "m",
        "v",
        "vhat",
        "velocity_hat",
        "accumulator",
        "linear",
        "velocity",
        "rms",
        "momentum",
        "mg",
        "average_gradient",
        "u",  # Adamax's exponentially weighted infinity norm (TF 2.11+)
        "accumulated_grad",  # Adadelta (TF 2.11+)
        "accumulated_delta_var",
        "accum_grad",  # Adadelta (legacy Keras)
        "accum_var",
        "lion_m",  # Lion's momentum: only Keras 3's edges tell it from SGD's
    )
)
# TF1 MomentumOptimizer's accumulator and Keras SGD's velocity: the same state scaled by -learning_rate
# (TF1: accum = momentum * accum + g, var -= lr * accum; Keras: v = momentum * v - lr * g, var += v), so
# a conversion computes one from the other (`tools.onto.momentum`) rather than copying it.
SCALED = frozenset(("tf1_momentum", "keras_momentum"))
CENTERED = (
    "a centered RMSProp keeps the mean gradient (its denominator is ms - mg**2), a plain one does not: "
    "the same slots update another way"
)
_TOWER = re.compile(r"t_\d+")
STEP_NAMES = ("global_step", "iteration", "iter")


@dataclasses.dataclass(frozen=True)
class Slot:
    """One slot variable: its key, its variable's key, its kind, the name it goes by."""

    key: str
    variable_key: str
    kind: str
    name: str


def _keras_kind(name: str, siblings: set) -> str:
    if name == "m":
        return "adam_m" if siblings & {"v", "u"} else "keras_momentum"
    if name == "momentum":
        return "rms_momentum" if siblings & {"velocity", "rms"} else "keras_momentum"
    return {
        "v": "adam_v",
        "vhat": "adam_vhat",
        "velocity_hat": "adam_vhat",
        "accumulator": "accumulator",
        "linear": "ftrl_linear",
        "velocity": "rms",
        "rms": "rms",
        "mg": "rms_mean_gradient",
        "average_gradient": "rms_mean_gradient",
        "u": "adamax_u",
        "accumulated_grad": "adadelta_grad",
        "accum_grad": "adadelta_grad",
        "accumulated_delta_var": "adadelta_delta",
        "accum_var": "adadelta_delta",
        "lion_m": "lion_m",
    }[name]


def find_slots(info: checkpoint.CheckpointInfo) -> dict[str, dict[str, Slot]]:
    """`{variable key: {kind: Slot}}` for every optimizer slot `info` holds."""
    tensors = {k: t for k, t in info.tensors.items() if k != keys.OBJECT_GRAPH_KEY}
    raw: list[tuple[str, str, str, str, str]] = []  # (key, variable key, slot name, "tf1"|"keras", name)
    if info.format == "keras":  # `format.keras_file` tied each slot to its variable by the optimizer's order
        for key, t in tensors.items():
            if (
                t.slot is not None
                and t.slot.slot_name in KERAS_SLOT_NAMES
                and t.slot.variable_path in tensors
            ):
                raw.append((key, t.slot.variable_path, t.slot.slot_name, "keras", t.name or key))
    elif info.format != "tf2":
        for key in tensors:
            base, _, last = key.rpartition("/")
            if last in TF1_SUFFIXES:
                var = base
                if var not in tensors:
                    head, _, tower = base.rpartition("/")
                    whole = head in tensors and tensors[head].shape == tensors[key].shape
                    # `<v>/t_0/Adam` (a tower), or `<v>/part_0/Ftrl` of a variable in one partition
                    var = head if _TOWER.fullmatch(tower) or (tower == "part_0" and whole) else ""
                if var in tensors:
                    raw.append((key, var, last, "tf1", key))
            elif last in KERAS_SLOT_NAMES and base:
                parts = base.split("/")
                for i in range(1, len(parts)):  # `training/Adam/<v>/m`: the scope is never empty
                    var = "/".join(parts[i:])
                    if var in tensors:
                        raw.append((key, var, last, "keras", key))
                        break
    else:
        by_name: dict[str, list[str]] = {}
        by_path = {keys.strip_value_suffix(k): k for k in tensors if keys.is_variable_key(k)}
        for k, t in tensors.items():
            if t.name:
                by_name.setdefault(t.name, []).append(k)
        for key, t in tensors.items():
            if t.slot is not None and t.slot.slot_name in KERAS_SLOT_NAMES:
                var = by_path.get(t.slot.variable_path)
                if var is not None:
                    raw.append((key, var, t.slot.slot_name, "keras", t.object_path or key))
            elif t.name and t.slot is None:
                head, _, rest = t.name.partition("/")
                if head not in KERAS_SLOT_NAMES and head.lower() in OPTIMIZER_SCOPES and "/" in rest:
                    # tf.keras 2.11+ names its optimizer's variables `Adam/m/dense/kernel`
                    head, _, rest = rest.partition("/")
                named = by_name.get(rest, [])
                if head in KERAS_SLOT_NAMES and len(named) == 1 and len(by_name.get(t.name, [])) == 1:
                    raw.append((key, named[0], head, "keras", t.name))
        raw += _keras3_slots(info, {r[0] for r in raw})
    siblings: dict[str, set] = {}
    for _, var, name, _, _ in raw:
        siblings.setdefault(var, set()).add(name)
    out: dict[str, dict[str, Slot]] = {}
    for key, var, name, writer, label in raw:
        if writer == "tf1":
            kind = tf1_kind(name, siblings[var])
            if kind is None:
                continue
        else:
            kind = _keras_kind(name, siblings[var])
        out.setdefault(var, {})[kind] = Slot(key, var, kind, label)
    return out


# Keras 3 optimizers keep slots as plain variables, tied to the model's by the optimizer's own list edges:
# slot i of `<edge>` belongs to `_trainable_variables/i`. The slot name each edge stands for, by optimizer;
# The optimizer is told by its edges: RMSprop by `_average_gradients` (empty unless centered), SGD by
# `momentums`, Lion by `_momentums` without `_velocities`, Adamax by `_u`; AdamW, Nadam and Lamb keep
# Adam's moments (Nadam also `_u_product`, a plain variable matched by its path).
_KERAS3_EDGES = {
    "adam": {"_momentums": "m", "_velocities": "v", "_velocity_hats": "vhat"},
    "adamax": {"_m": "m", "_u": "u"},
    "adadelta": {
        "_accumulated_grads": "accumulated_grad",
        "_accumulated_delta_vars": "accumulated_delta_var",
    },
    "lion": {"_momentums": "lion_m"},
    "rmsprop": {"_velocities": "rms", "_momentums": "momentum", "_average_gradients": "mg"},
    "sgd": {"momentums": "momentum"},
    "adagrad": {"_accumulators": "accumulator"},
    "ftrl": {"_accumulators": "accumulator", "_linears": "linear"},
}


def _keras3_slots(info: checkpoint.CheckpointInfo, known: set) -> list[tuple[str, str, str, str, str]]:
    """`(slot key, variable key, slot name, "keras", label)` found through a Keras 3 optimizer's edges."""
    graph = info.object_graph
    if graph is None:
        return []

    def value_key(node_id: int) -> Optional[str]:
        for attr in graph.nodes[node_id].attributes:
            if attr.name == "VARIABLE_VALUE" and attr.checkpoint_key in info.tensors:
                return attr.checkpoint_key
        return None

    out = []
    for node in graph.nodes:
        edges = {name: child for child, name in node.children}
        if "_trainable_variables" not in edges:
            continue
        variables = {name: child for child, name in graph.nodes[edges["_trainable_variables"]].children}
        if "_average_gradients" in edges:
            kind = "rmsprop"
        elif "momentums" in edges:
            kind = "sgd"
        elif "_linears" in edges:
            kind = "ftrl"
        elif "_accumulators" in edges:
            kind = "adagrad"
        elif "_u" in edges:
            kind = "adamax"
        elif "_accumulated_grads" in edges:
            kind = "adadelta"
        elif "_momentums" in edges and "_velocities" not in edges:
            kind = "lion"
        else:
            kind = "adam"
        for edge, slot_name in _KERAS3_EDGES[kind].items():
            if edge not in edges:
                continue
            for child, index in graph.nodes[edges[edge]].children:
                key, var = value_key(child), variables.get(index)
                var_key = value_key(var) if var is not None else None
                if key and var_key and key not in known:
                    out.append((key, var_key, slot_name, "keras", info.tensors[key].name or key))
    return out


def different(
    source_kinds: dict[str, Slot], target_kinds: dict[str, Slot]
) -> Optional[tuple[Slot, Slot, str]]:
    """`(source slot, target slot, why)` when one variable's slots mean different things on each side."""
    if "rms" in source_kinds and "rms" in target_kinds:
        s_c, t_c = source_kinds.get("rms_mean_gradient"), target_kinds.get("rms_mean_gradient")
        if (s_c is None) != (t_c is None):
            other = s_c or source_kinds["rms"]
            return other, t_c or target_kinds["rms"], CENTERED
    return None


def u_product_key(info: checkpoint.CheckpointInfo) -> Optional[str]:
    """The key of Nadam's `u_product` (the product of its momentum schedule so far), if `info` has one."""
    if info.keras is not None:
        found = [k for k, d in info.keras.datasets.items() if d.slot_name == "u_product"]
    else:
        found = [k for k, t in info.tensors.items() if (t.object_path or "").endswith("/_u_product")]
    return found[0] if len(found) == 1 else None


def step_key(info: checkpoint.CheckpointInfo) -> Optional[str]:
    """The key counting training steps: `global_step`, or a Keras optimizer's `iteration`/`iter`."""
    found = step_keys(info)
    return found[0] if found else None


def step_keys(info: checkpoint.CheckpointInfo) -> list[str]:
    """Every key counting training steps (a v2 `DNNLinearCombined` Estimator keeps one per optimizer)."""
    out = []
    for key, t in info.tensors.items():
        if t.shape != () or not t.dtype.startswith("int"):
            continue
        if info.format == "keras":
            if (t.name or "").endswith("/iteration"):
                out.append(key)
            continue
        if info.format != "tf2":
            if key == "global_step" or key.endswith("/iter"):  # `training/Ftrl/iter`: a Keras optimizer's
                out.append(key)
            continue
        path = t.object_path or ""
        if t.name in STEP_NAMES or path.endswith(("/iter", "/_iterations")) or path == "global_step":
            out.append(key)
    return sorted(out, key=lambda k: k != "global_step")


__all__ = [
    "OPTIMIZER_SCOPES",
    "CENTERED",
    "SCALED",
    "TF1_OPTIMIZERS",
    "TF1_SUFFIXES",
    "Slot",
    "Tf1Optimizer",
    "different",
    "find_slots",
    "step_key",
    "step_keys",
    "tf1_kind",
    "tf1_slot_suffix",
    "u_product_key",
]
