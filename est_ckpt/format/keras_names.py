"""The names Keras 3 gives the variables of a `.weights.h5`, which keeps them by position only.

`name_variables` reconstructs, without Keras, each dataset's name
(`sequential/dense/kernel`, `adam/sequential_dense_kernel_momentum`) from the
`name` attribute of each layer's `vars` group, Keras's own variable order for
its built-in layers (the tables below, as Keras 3.15 builds them), the order
the layers' data were written in, the optimizer's slot order, and a `.keras`
archive's `config.json`; and which variable each optimizer slot belongs to.
Where a name cannot be known, it is left out and a sentence says why.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

_COUNTER = re.compile(r"_\d+$")

# -- names Keras gives its built-in layers' variables, in the order it creates them -----------------

_KERNEL_BIAS = ("kernel", "bias")
_VARIABLE_NAMES = {
    "dense": _KERNEL_BIAS,
    "einsum_dense": _KERNEL_BIAS,
    "conv1d": _KERNEL_BIAS,
    "conv2d": _KERNEL_BIAS,
    "conv3d": _KERNEL_BIAS,
    "conv1d_transpose": _KERNEL_BIAS,
    "conv2d_transpose": _KERNEL_BIAS,
    "conv3d_transpose": _KERNEL_BIAS,
    "depthwise_conv1d": _KERNEL_BIAS,
    "depthwise_conv2d": _KERNEL_BIAS,
    "separable_conv1d": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "separable_conv2d": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "embedding": ("embeddings",),
    "lstm_cell": ("kernel", "recurrent_kernel", "bias"),
    "gru_cell": ("kernel", "recurrent_kernel", "bias"),
    "simple_rnn_cell": ("kernel", "recurrent_kernel", "bias"),
    "p_re_lu": ("alpha",),
    "seed_generator": ("seed_generator_state",),
}
# Classes whose variables are all there or fall away from the end (`use_bias=False`).
_TRAILING_OPTIONAL = frozenset(_VARIABLE_NAMES) - {"seed_generator"}
# Scale and center each add one variable: which remain is told by the count, or by the config.
_NORMALIZATION = {
    "batch_normalization": (
        ("gamma", "scale"),
        ("beta", "center"),
        ("moving_mean", None),
        ("moving_variance", None),
    ),
    "layer_normalization": (("gamma", "scale"), ("beta", "center")),
    "group_normalization": (("gamma", "scale"), ("beta", "center")),
}
_NOT_TRAINABLE = frozenset(("moving_mean", "moving_variance", "seed_generator_state"))
# A nested layer, by the attribute that holds it in its parent: its class.
_NESTED_CLASS = {
    "cell": None,
    "query_dense": "einsum_dense",
    "key_dense": "einsum_dense",
    "value_dense": "einsum_dense",
    "output_dense": "einsum_dense",
    "seed_generator": "seed_generator",
}
# The order a layer's sublayers' variables take in `trainable_variables` where it is not the file's.
_SUBLAYER_ORDER = {"multi_head_attention": ("query_dense", "key_dense", "value_dense", "output_dense")}

# Each Keras 3 optimizer's slots after `iteration` and `learning_rate`, as `build` creates them: a tuple of
# (slot names interleaved per variable) groups, one after another; the name est_ckpt's slot kinds use and
# the suffix Keras gives the variable.
_OPTIMIZER_SLOTS = {
    "adam": ((("m", "momentum"), ("v", "velocity")), (("vhat", "velocity_hat"),)),
    "adam_w": ((("m", "momentum"), ("v", "velocity")), (("vhat", "velocity_hat"),)),
    "lamb": ((("m", "momentum"), ("v", "velocity")),),
    "nadam": ((("m", "momentum"), ("v", "velocity")),),
    "adamax": ((("m", "momentum"), ("u", "norm")),),
    "adadelta": (
        (("accumulated_grad", "accumulated_grad"), ("accumulated_delta_var", "accumulated_delta_var")),
    ),
    "ftrl": ((("accumulator", "accumulator"), ("linear", "linear")),),
    "adagrad": ((("accumulator", "accumulator"),),),
    "sgd": ((("momentum", "momentum"),),),
    "lion": ((("lion_m", "momentum"),),),
    "rm_sprop": (
        (("velocity", "velocity"),),
        (("momentum", "momentum"),),
        (("average_gradient", "average_gradient"),),
    ),
}


def _layer_configs(config: dict) -> dict[str, dict]:
    """`{layer name: layer config}` of a `.keras` model's top-level layers (each with `class_name`)."""
    out: dict[str, dict] = {}
    for layer in (config.get("config") or {}).get("layers") or []:
        if isinstance(layer, dict):
            cfg = layer.get("config") or {}
            out[cfg.get("name") or layer.get("name")] = {**cfg, "class_name": layer.get("class_name")}
    return out


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _variable_names(cls: Optional[str], n: int, config: Optional[dict]) -> Optional[tuple[str, ...]]:
    """The names of a layer's `n` variables, in order; None where they cannot be known."""
    if cls in _NORMALIZATION:
        specs = _NORMALIZATION[cls]
        if config is not None:
            names = tuple(name for name, flag in specs if flag is None or config.get(flag, True))
        else:
            full = tuple(name for name, _ in specs)
            stats = tuple(name for name, flag in specs if flag is None)
            names = full if n == len(full) else stats if stats and n == len(stats) else ()
        return names if len(names) == n else None
    names = _VARIABLE_NAMES.get(cls or "")
    if names is None:
        return None
    if n == len(names):
        return names
    return names[:n] if cls in _TRAILING_OPTIONAL and 0 < n < len(names) else None


@dataclasses.dataclass
class _Layer:
    group: str  # its HDF5 group
    name: str  # layer.name
    cls: Optional[str]
    datasets: list  # its `vars` group's HDF5 datasets, by index
    children: list  # (attribute, _Layer) of its sublayers
    config: Optional[dict] = None


# The class of an RNN layer's `cell`.
_RNN_CELLS = {"lstm": "lstm_cell", "gru": "gru_cell", "simple_rnn": "simple_rnn_cell"}


def _holds_layer(obj) -> bool:
    """Whether an HDF5 object is a layer's group (one holding `vars`)."""
    return hasattr(obj, "keys") and "vars" in obj


def _read_layers(group, configs: dict) -> list[_Layer]:
    """The layers under `group` (a `layers` group), each with its sublayers."""
    return [_layer(group[key], key, None, configs) for key in group if _holds_layer(group[key])]


def _layer(group, key: str, parent_cls: Optional[str], configs: dict) -> _Layer:
    var_group = group["vars"]
    name = str(var_group.attrs.get("name", key))
    config = configs.get(name) if parent_cls is None else None
    if config is not None and config.get("class_name"):
        cls = _snake(config["class_name"])
    elif parent_cls is not None and key in _NESTED_CLASS:
        cls = _NESTED_CLASS[key] or _RNN_CELLS.get(parent_cls)
    else:
        cls = _COUNTER.sub("", key) if parent_cls is None else None
    indices = sorted(int(k) for k in var_group if k.isdigit())
    layer = _Layer(group.name.lstrip("/"), name, cls, [var_group[str(i)] for i in indices], [], config)
    for child_key in group:
        if child_key == "vars":
            continue
        child = group[child_key]
        if _holds_layer(child):
            layer.children.append((child_key, _layer(child, child_key, cls or "", configs)))
        elif hasattr(child, "keys") and child_key == "layers":
            layer.children.extend((n.group.rpartition("/")[2], n) for n in _read_layers(child, {}))
    return layer


def _first_offset(layer: _Layer) -> int:
    offsets = [d.id.get_offset() or 0 for d in layer.datasets]
    offsets += [_first_offset(c) for _, c in layer.children]
    return min(offsets, default=1 << 62)


class _Namer:
    """Names every dataset of the file and lists the trainable variables in Keras's order."""

    def __init__(self):
        self.names: dict[str, str] = {}
        self.trainable: list[str] = []  # keys, in `model.trainable_variables` order
        self.unnamed: list[str] = []
        self.order_known = True

    def layer(self, layer: _Layer, prefix: str) -> None:
        path = f"{prefix}{layer.name}"
        names = _variable_names(layer.cls, len(layer.datasets), layer.config) if layer.datasets else ()
        keys_ = [d.name.lstrip("/") for d in layer.datasets]
        if names is None:
            self.unnamed.append(
                f"'{layer.group}' ({layer.cls or 'a custom layer'}, {len(keys_)} variable(s)): Keras's names "
                "for its variables are not known, so they go by their keys"
            )
            self.order_known = False
        else:
            for key, var in zip(keys_, names):
                self.names[key] = f"{path}/{var}"
                if var not in _NOT_TRAINABLE and (
                    layer.config is None or layer.config.get("trainable", True)
                ):
                    self.trainable.append(key)
        order = _SUBLAYER_ORDER.get(layer.cls or "")
        children = layer.children
        if order is not None and {k for k, _ in children} >= set(order):
            rank = {k: i for i, k in enumerate(order)}
            children = sorted(children, key=lambda kc: (rank.get(kc[0], len(rank)), _first_offset(kc[1])))
        else:
            holding = [c for _, c in children if _has_variables(c)]
            if len(holding) > 1 or (holding and layer.datasets):
                self.order_known = False  # the file's walk order need not be `trainable_variables` order
            children = sorted(children, key=lambda kc: _first_offset(kc[1]))
        for _, child in children:
            self.layer(child, f"{path}/")


def _has_variables(layer: _Layer) -> bool:
    return bool(layer.datasets) or any(_has_variables(c) for _, c in layer.children)


def _slot_plan(optimizer: str, n_slots: int, n_vars: int, config: Optional[dict]) -> Optional[list]:
    """`[(variable index, slot name, suffix)]` for each slot position, or None where the layout is unknown."""
    groups = _OPTIMIZER_SLOTS.get(_COUNTER.sub("", optimizer))
    if groups is None or n_vars == 0:
        return None
    base = _COUNTER.sub("", optimizer)
    if base == "rm_sprop":
        cfg = config or {}
        chosen = [groups[0]]
        if n_slots == 2 * n_vars and config is not None:
            chosen.append(groups[1] if cfg.get("momentum", 0) else groups[2])
        elif n_slots == 3 * n_vars:
            chosen += [groups[1], groups[2]]
        elif n_slots != n_vars:
            return None
        groups = tuple(chosen)
    elif base in ("adam", "adam_w"):
        groups = groups if n_slots == 3 * n_vars else groups[:1]
    out = []
    for group in groups:
        for i in range(n_vars):
            for slot_name, suffix in group:
                out.append((i, slot_name, suffix))
    if base == "nadam":
        out.append((None, "u_product", "variable"))
    return out if len(out) == n_slots else None


def _optimizer_config(config: dict) -> Optional[dict]:
    compile_config = config.get("compile_config") or {}
    opt = compile_config.get("optimizer")
    return (opt.get("config") or {}) if isinstance(opt, dict) else None


def name_variables(h5, config: dict) -> tuple[dict[str, str], dict[str, tuple], list[str]]:
    """`(names, slots, unnamed)` of an open `.weights.h5` (`config`: a `.keras` archive's, or `{}`).

    Returns:
      names: `{dataset key: Keras's name}` where known.
      slots: `{slot key: (its variable's key or None, slot name)}` for the optimizer's slots.
      unnamed: why the names of other datasets are not known (sentences naming them).
    """
    configs = _layer_configs(config)
    layers = _read_layers(h5["layers"], configs) if "layers" in h5 else []
    model_name = str(h5["vars"].attrs.get("name", "")) if "vars" in h5 else ""
    # Sequential's variables carry its name (`net/dense/kernel`), a functional model's do not; only a
    # functional model lists its InputLayer among its layers.
    has_input = any(_COUNTER.sub("", layer.group.rpartition("/")[2]) == "input_layer" for layer in layers)
    model_class = config.get("class_name") or ("Functional" if has_input else "Sequential")
    prefix = f"{model_name}/" if model_class == "Sequential" and model_name else ""
    if configs:
        rank = {name: i for i, name in enumerate(configs)}
        layers.sort(key=lambda layer: (rank.get(layer.name, len(rank)), _first_offset(layer)))
    else:
        layers.sort(key=_first_offset)
    namer = _Namer()
    for layer in layers:
        namer.layer(layer, prefix)
    names, slots = dict(namer.names), {}
    unnamed = list(namer.unnamed)
    if "optimizer" in h5 and "vars" in h5["optimizer"]:
        opt_group = h5["optimizer"]["vars"]
        opt = str(opt_group.attrs.get("name", "optimizer"))
        count = sum(1 for k in opt_group if k.isdigit())
        if count >= 1:
            names["optimizer/vars/0"] = f"{opt}/iteration"
        if count >= 2:
            names["optimizer/vars/1"] = f"{opt}/learning_rate"
        plan = (
            _slot_plan(opt, count - 2, len(namer.trainable), _optimizer_config(config)) if count > 2 else []
        )
        if plan is None or (count > 2 and not namer.order_known):
            unnamed.append(
                f"'optimizer/vars/2' to 'optimizer/vars/{count - 1}' ({opt}): which variable each slot "
                "belongs to is not known, so they go by their keys"
            )
        else:
            for pos, (i, slot_name, suffix) in enumerate(plan, start=2):
                key = f"optimizer/vars/{pos}"
                if i is None:  # Nadam's `_u_product`: optimizer state of no one variable
                    names[key] = f"{opt}/{suffix}"
                    slots[key] = (None, slot_name)
                    continue
                var = namer.trainable[i]
                names[key] = f"{opt}/{names[var].replace('/', '_')}_{suffix}"
                slots[key] = (var, slot_name)
    return names, slots, unnamed


__all__ = ["name_variables"]
