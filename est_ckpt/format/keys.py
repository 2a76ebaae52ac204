"""The object-path key grammar of object-based (TF2) checkpoints.

A key is the escaped names of the edges from the root object to a variable,
joined by `/`, then `/.ATTRIBUTES/<escaped attribute>`:
`var_list/scoped.Sc/.ATTRIBUTES/VARIABLE_VALUE`. A slot variable's object path
is `<variable path>/.OPTIMIZER_SLOT/<optimizer path>/<escaped slot name>`.

Escaping is TensorFlow's (`trackable_utils.escape_local_name`): `.` becomes
`..` first, then `/` becomes `.S`. Unescaping scans tokens left to right,
because a plain string replace gets names such as `a..Sb` (`a./b`) wrong.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from est_ckpt.errors import KeyGrammarError

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
ATTRIBUTES = ".ATTRIBUTES"
OPTIMIZER_SLOT = ".OPTIMIZER_SLOT"
VARIABLE_VALUE = "VARIABLE_VALUE"
_VALUE_SUFFIX = f"/{ATTRIBUTES}/{VARIABLE_VALUE}"


def escape(name: str) -> str:
    """Escapes one edge or attribute name exactly as TF does."""
    return name.replace(".", "..").replace("/", ".S")


def unescape(escaped: str) -> str:
    """Inverts `escape`, token by token.

    Raises:
      KeyGrammarError: `escaped` holds a `.` that starts no escape sequence, or
        an unescaped `/`.
    """
    if "." not in escaped and "/" not in escaped:
        return escaped
    out = []
    i, n = 0, len(escaped)
    while i < n:
        ch = escaped[i]
        if ch == ".":
            nxt = escaped[i + 1] if i + 1 < n else ""
            if nxt == ".":
                out.append(".")
            elif nxt == "S":
                out.append("/")
            else:
                raise KeyGrammarError(
                    f"'{escaped}' is not an escaped name: '.' at position {i} must be followed by '.' or 'S'."
                )
            i += 2
        elif ch == "/":
            raise KeyGrammarError(f"'{escaped}' is not an escaped name: it holds a raw '/'.")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def join_path(names: Sequence[str]) -> str:
    """Builds an object path from unescaped edge names."""
    return "/".join(escape(n) for n in names)


def split_path(path: str) -> list[str]:
    """Splits an object path into its unescaped edge names."""
    if not path:
        return []
    return [unescape(part) for part in path.split("/")]


def attribute_key(path: str, attribute: str = VARIABLE_VALUE) -> str:
    """Returns `<path>/.ATTRIBUTES/<escaped attribute>` for an (escaped) object path."""
    return f"{path}/{ATTRIBUTES}/{escape(attribute)}"


def variable_key(names: Sequence[str]) -> str:
    """Returns the key of the variable reached by the unescaped edge `names`."""
    return attribute_key(join_path(names))


def slot_path(variable_path: str, optimizer_path: str, slot_name: str) -> str:
    """Returns the object path of a slot variable (TF's `slot_variable_key`)."""
    return f"{variable_path}/{OPTIMIZER_SLOT}/{optimizer_path}/{escape(slot_name)}"


@dataclasses.dataclass(frozen=True)
class ParsedKey:
    """A checkpoint key taken apart.

    Attributes:
      path: the escaped object path before `/.ATTRIBUTES/`.
      attribute: the unescaped attribute name (`VARIABLE_VALUE` for variables).
      slot: for a slot variable, `(variable_path, optimizer_path, slot_name)`
        with escaped paths and an unescaped slot name; else None.
    """

    path: str
    attribute: str
    slot: Optional[tuple[str, str, str]] = None

    @property
    def names(self) -> list[str]:
        """The unescaped edge names of `path`."""
        return split_path(self.path)

    @property
    def key(self) -> str:
        return attribute_key(self.path, self.attribute)


def parse_key(key: str) -> Optional[ParsedKey]:
    """Parses an object-based key; returns None for a key outside the grammar.

    Name-based (TF1) keys such as `dense/kernel` and the object graph key parse
    to None.
    """
    marker = f"/{ATTRIBUTES}/"
    idx = key.rfind(marker)
    if idx <= 0:
        return None
    path, attr = key[:idx], key[idx + len(marker) :]
    try:
        attribute = unescape(attr)
        parts = path.split("/")
        for part in parts:
            if part not in (OPTIMIZER_SLOT,):
                unescape(part)
    except KeyGrammarError:
        return None
    slot = None
    if OPTIMIZER_SLOT in parts:
        i = parts.index(OPTIMIZER_SLOT)
        if 0 < i < len(parts) - 2:
            slot = ("/".join(parts[:i]), "/".join(parts[i + 1 : -1]), unescape(parts[-1]))
    return ParsedKey(path=path, attribute=attribute, slot=slot)


def is_variable_key(key: str) -> bool:
    """Returns whether `key` ends in `/.ATTRIBUTES/VARIABLE_VALUE`."""
    return key.endswith(_VALUE_SUFFIX)


def strip_value_suffix(key: str) -> str:
    """Returns the object path of a `.../.ATTRIBUTES/VARIABLE_VALUE` key, else `key`."""
    return key[: -len(_VALUE_SUFFIX)] if is_variable_key(key) else key
