"""`est-ckpt inspect PATH [--json] [--values]`."""

from __future__ import annotations

import argparse
import json
import sys

from est_ckpt.commands import parsing
from est_ckpt.format import checkpoint, keys

USAGE = "inspect PATH [--json] [--values]"


def add_flags(parser: parsing.Parser) -> None:
    parser.add_bool("json", parsing.JSON_HELP)
    parser.add_bool("values", "Also print every tensor's value.")


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


def run(args: argparse.Namespace) -> int:
    if len(args.positionals) != 1:
        raise parsing.UsageError("inspect takes exactly one PATH.")
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
            line += "  = " + " ".join(repr(values[r[0]]).split())
        lines.append(line.rstrip())
    for name, ks in info.duplicate_names.items():
        lines.append(f"warning: name '{name}' is held by {len(ks)} keys: {', '.join(ks)}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
