"""`est-ckpt inspect PATH [--json] [--values]`."""

from __future__ import annotations

import argparse
import json
import sys

from est_ckpt.commands import parsing
from est_ckpt.format import checkpoint, keys

USAGE = "inspect PATH [--json] [--values [--all_values]]"
# How many values of a tensor the text output shows without --all_values.
SHOWN_VALUES = 6
# And how many characters of one string value.
SHOWN_CHARS = 40


def add_flags(parser: parsing.Parser) -> None:
    parser.add_bool("json", parsing.JSON_HELP)
    parser.add_bool(
        "values",
        f"Also print each tensor's values: as text, its first {SHOWN_VALUES} and min/max; with --json, all.",
    )
    parser.add_bool("all_values", "With --values: print every value of every tensor as text too.")


def to_json(info: checkpoint.CheckpointInfo) -> dict:
    """The JSON of `est-ckpt inspect --json` (without values)."""
    return {
        "prefix": info.prefix,
        "format": info.format,
        "tensors": [
            {"key": t.key, "dtype": t.dtype, "shape": list(t.shape), "name": t.name}
            for t in info.tensors.values()
        ],
        "duplicate_names": info.duplicate_names,
    }


def _json_value(value):
    import numpy as np

    if value.dtype == object:
        return (
            [v.decode("utf-8", "backslashreplace") for v in value.reshape(-1)]
            if value.ndim
            else value.item().decode("utf-8", "backslashreplace")
        )
    if np.iscomplexobj(value):
        return np.stack([value.real, value.imag], axis=-1).tolist()
    if (
        value.dtype.kind not in "biuf"
        or value.dtype.name in ("bfloat16",)
        or value.dtype.itemsize == 1
        and value.dtype.kind == "V"
    ):
        value = value.astype(np.float32)
    return value.tolist()


def _text_value(value, everything: bool) -> str:
    """One tensor's values for a person: the first few (or all), then min and max of numbers."""
    import numpy as np

    flat = value.reshape(-1)
    shown = flat if everything else flat[:SHOWN_VALUES]
    if value.dtype == object:
        items = [v.decode("utf-8", "backslashreplace") for v in shown]
        if not everything:
            items = [i if len(i) <= SHOWN_CHARS else i[: SHOWN_CHARS - 3] + "..." for i in items]
        items = [repr(i) for i in items]
    else:
        if np.iscomplexobj(value) or value.dtype.kind not in "biuf" or value.dtype.name == "bfloat16":
            flat = shown = np.asarray(_json_value(shown), dtype=object).reshape(-1)
        items = [f"{v:.6g}" if isinstance(v, (float, np.floating)) else str(v) for v in shown.tolist()]
    if value.ndim == 0:
        return items[0]
    more = "" if len(shown) == flat.size else f", ... ({flat.size} values)"
    text = f"[{', '.join(items)}{more}]"
    if value.dtype.kind in "biuf" and value.dtype.name != "bfloat16" and flat.size > len(shown):
        text += f" min={flat.min():.6g} max={flat.max():.6g}"
    return text


def run(args: argparse.Namespace) -> int:
    if len(args.positionals) != 1:
        raise parsing.UsageError("inspect takes exactly one PATH.")
    if args.all_values and not args.values:
        raise parsing.UsageError("--all_values applies to --values.")
    info = checkpoint.read_checkpoint(args.positionals[0])
    values = {}
    if args.values:
        values = {k: info.read_tensor(k) for k in info.tensors if k != keys.OBJECT_GRAPH_KEY}
    if args.json:
        out = to_json(info)
        if args.values:
            for t in out["tensors"]:
                t["value"] = _json_value(values[t["key"]]) if t["key"] in values else None
        # json.dumps uses the C encoder; json.dump streams through the pure-Python one.
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    lines = [f"{info.prefix}  format={info.format}  tensors={len(info.tensors)}"]
    rows = [("KEY", "DTYPE", "SHAPE", "NAME")]
    for t in info.tensors.values():
        rows.append((t.key, t.dtype, str(list(t.shape)), t.name if t.name is not None else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        line = "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3]
        if args.values and r[0] in values:
            line += "  = " + _text_value(values[r[0]], args.all_values)
        lines.append(line.rstrip())
    for name, ks in info.duplicate_names.items():
        lines.append(f"warning: name '{name}' is held by {len(ks)} keys: {', '.join(ks)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
