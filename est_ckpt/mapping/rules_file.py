"""Rules files: mapping rules with value transforms, kept as data in version control, and the shipped presets.

A rules file is JSON (`docs/transforms.md` has the whole format)::

    {
      "est_ckpt_rules": 1,
      "description": "TF1 LSTMCell <-> Keras LSTM",
      "params": {"tf1": "rnn/lstm_cell", "keras": "lstm/lstm_cell", "forget_bias": 1.0},
      "rules": [
        {"target": "${keras}/recurrent_kernel", "source": "${tf1}/kernel",
         "transforms": [{"slice": {"axis": 0, "begin": "end"}},
                        {"reorder": {"axis": 1, "parts": 4, "order": [0, 2, 1, 3]}}]}
      ]
    }

`target` is a regex over target variable names (the whole name must match);
`source` (or `sources`, a list) is a template of the source name with the
target's groups (`\\1`, `\\g<name>`), as `rename_rules` have it. `${name}`
inserts a text parameter (escaped in `target`); a number parameter is named
in a transform (`"forget_bias"`, `"-forget_bias"`). `load_rules` takes a
path (a value holding a `/` or ending in `.json`) or a preset's name
(`PRESETS`), and parameters that override the file's. For each target the
rules are tried in order: the first whose sources all exist in the source
checkpoint gives its value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Iterable, Iterator, Mapping, Optional, Union

from est_ckpt import fileio
from est_ckpt.errors import MappingError, RulesFileError, TransformError
from est_ckpt.mapping.rules import RenameRules
from est_ckpt.mapping.transforms import check_ops

FORMAT_VERSION = 1
PRESETS = ("attention", "bert", "gru", "lstm")
_PRESET_DIR = os.path.join(os.path.dirname(__file__), "presets")
_PARAM = re.compile(r"\$\{(\w+)\}")


@dataclasses.dataclass(frozen=True)
class Rule:
    """One rule: target regex, source templates, transforms (checked in form, bound per pair).

    Attributes:
      where: where it was written (`'lstm rules[2]'`), for messages.
    """

    where: str
    target: str
    sources: tuple[str, ...]
    transforms: tuple[dict, ...]


class Rules:
    """Rules loaded from a rules file or preset, with their parameters filled in (build with `load_rules`).

    Attributes:
      name: the preset's name or the file's path.
      params: every parameter's value.
      numbers: the number parameters, which transforms name.
      rules: the `Rule`s, in order.
      description: the file's own description.
    """

    def __init__(
        self,
        name: str,
        data: Mapping,
        overrides: Mapping[str, Any],
        params: Mapping[str, Any],
        rules: tuple[Rule, ...],
    ):
        self.name, self.data, self.overrides = name, data, dict(overrides)
        self.params, self.rules = dict(params), rules
        self.numbers = {k: v for k, v in self.params.items() if not isinstance(v, str)}
        self.description = str(data.get("description", ""))
        self._compiled = [re.compile(r.target) for r in rules]

    def __repr__(self) -> str:
        return f"Rules({self.name!r}, {len(self.rules)} rule(s))"

    def candidates(self, name: str) -> Iterator[tuple[int, tuple[str, ...], tuple[dict, ...]]]:
        """`(rule index, source names, transforms)` of each rule whose target regex matches all of `name`, in order."""
        for i, (rule, pattern) in enumerate(zip(self.rules, self._compiled)):
            m = pattern.fullmatch(name)
            if m is not None:
                yield i, tuple(m.expand(s) for s in rule.sources), rule.transforms

    def targets_of(self, names: Iterable[str]) -> list[str]:
        """The target names these rules give to source `names` (for an export, which has no template).

        A rule's first source template is matched against each name; its groups
        fill the target regex, which must be written out but for its groups
        (`layer_(\\d+)/weight`). A target is kept when its rules lead back to
        that name. In order of `names`, each once.

        Raises:
          RulesFileError: a rule whose source matches a name has a target that cannot be filled in.
        """
        sources = [_template_regex(r.sources[0]) for r in self.rules]
        out: dict[str, None] = {}
        for name in names:
            for rule, pattern, source in zip(self.rules, self._compiled, sources):
                m = source.fullmatch(name)
                if m is None:
                    continue
                groups = {(int(k[2:]) if k[2:].isdigit() else k[2:]): v for k, v in m.groupdict().items()}
                target = _fill(rule.target, groups)
                if target is None:
                    raise RulesFileError(
                        f"{rule.where}: its target {rule.target!r} cannot be spelled out from '{name}': with no "
                        "template to match, the target must be written out but for its groups, each filled "
                        'from the source\'s name (e.g. "layer_(\\\\d+)/weight" from "layer_\\\\1/kernel").'
                    )
                if pattern.fullmatch(target) and any(s[0] == name for _, s, _ in self.candidates(target)):
                    out.setdefault(target)
        return list(out)


_REFERENCE = re.compile(r"\\(?:(\d+)|g<(\w+)>)")


def _template_regex(template: str) -> re.Pattern:
    """A regex matching the names `template` (a source with `\\1`, `\\g<name>`) expands to; group `g_<ref>`."""
    parts, seen, pos = [], set(), 0
    for m in _REFERENCE.finditer(template):
        group = "g_" + (m.group(1) or m.group(2))
        parts += [
            re.escape(template[pos : m.start()]),
            f"(?P={group})" if group in seen else f"(?P<{group}>.+?)",
        ]
        seen.add(group)
        pos = m.end()
    return re.compile("".join(parts) + re.escape(template[pos:]))


def _fill(pattern: str, groups: Mapping[Any, str]) -> Optional[str]:
    """`pattern` spelled out with its capturing groups replaced by `groups` (by number or name); None where
    it holds any other pattern (a class, a quantifier, an alternative) or a group with no value."""
    out, i, number = [], 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 == len(pattern) or pattern[i + 1].isalnum():
                return None
            out.append(pattern[i + 1])
            i += 2
        elif c == "(":
            named = re.match(r"\(\?P<(\w+)>", pattern[i:])
            if pattern.startswith("(?", i) and not named:
                return None
            depth, j = 0, i
            while j < len(pattern):  # the group's closing parenthesis, counting the groups inside
                if pattern[j] == "\\":
                    j += 2
                    continue
                if pattern[j] == "[":
                    j = pattern.find("]", j + 2)
                    if j < 0:
                        return None
                elif pattern[j] == "(":
                    depth += 1
                    number += not pattern.startswith("(?", j) or pattern.startswith("(?P<", j)
                elif pattern[j] == ")":
                    depth -= 1
                    if not depth:
                        break
                j += 1
            key = named.group(1) if named else None
            first = number - _count_groups(pattern[i + 1 : j])
            value = groups.get(first, groups.get(key) if key else None)
            if value is None or depth:
                return None
            out.append(value)
            i = j + 1
        elif c in ".^$*+?{}[]|)":
            return None
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _count_groups(text: str) -> int:
    return len(re.findall(r"(?<!\\)\((?!\?)|(?<!\\)\(\?P<", text))


def _substitute(text: Any, params: Mapping[str, Any], where: str, *, regex: bool) -> str:
    if not isinstance(text, str):
        raise RulesFileError(f"{where}: expected a string (got {text!r:.80}).")

    def value(m: re.Match) -> str:
        name = m.group(1)
        if name not in params or not isinstance(params[name], str):
            raise RulesFileError(f"{where}: '${{{name}}}' names no text parameter of this file's 'params'.")
        return re.escape(params[name]) if regex else params[name].replace("\\", "\\\\")

    return _PARAM.sub(value, text)


def parse_rules(data: Any, name: str, **params: Any) -> Rules:
    """Rules from the parsed JSON of a rules file; `params` override the file's.

    Raises:
      RulesFileError: the data does not follow the format, or a parameter is unknown.
    """
    if not isinstance(data, Mapping) or data.get("est_ckpt_rules") != FORMAT_VERSION:
        raise RulesFileError(
            f'{name}: not an est_ckpt rules file: a JSON object with "est_ckpt_rules": {FORMAT_VERSION} is expected.'
        )
    unknown = set(data) - {"est_ckpt_rules", "description", "params", "rules"}
    if unknown:
        raise RulesFileError(f"{name}: unknown field(s) {', '.join(sorted(map(repr, unknown)))}.")
    defaults = data.get("params", {})
    if not isinstance(defaults, Mapping):
        raise RulesFileError(f"{name}: 'params' must be an object of names to values.")
    merged = dict(defaults)
    for key, value in params.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise RulesFileError(f"{name}: no parameter '{key}' (parameters: {known}).")
        merged[key] = _coerce(name, key, defaults[key], value)
    rules = []
    items = data.get("rules")
    if not isinstance(items, list) or not items:
        raise RulesFileError(f"{name}: 'rules' must be a non-empty list.")
    for i, item in enumerate(items):
        where = f"{name} rules[{i}]"
        if not isinstance(item, Mapping) or "target" not in item or ("source" in item) == ("sources" in item):
            raise RulesFileError(
                f"{where}: a rule is an object with 'target' and either 'source' or 'sources'."
            )
        extra = set(item) - {"target", "source", "sources", "transforms", "note"}
        if extra:
            raise RulesFileError(f"{where}: unknown field(s) {', '.join(sorted(map(repr, extra)))}.")
        sources = [item["source"]] if "source" in item else item["sources"]
        if not isinstance(sources, list) or not sources:
            raise RulesFileError(f"{where}: 'sources' must be a non-empty list of names.")
        target = _substitute(item["target"], merged, where, regex=True)
        texts = tuple(_substitute(s, merged, where, regex=False) for s in sources)
        try:
            RenameRules([(target, s) for s in texts])
            transforms = check_ops(item.get("transforms", []), where)
        except TransformError as e:
            raise RulesFileError(str(e)) from None
        except MappingError as e:
            raise RulesFileError(f"{where}: {e}") from None
        if len(texts) > 1 and not (transforms and "concat" in transforms[0]):
            raise RulesFileError(
                f'{where}: several sources are joined by a first op {{"concat": {{"axis": a}}}}.'
            )
        rules.append(Rule(where, target, texts, transforms))
    return Rules(name, data, params, merged, tuple(rules))


def _coerce(name: str, key: str, default: Any, value: Any) -> Any:
    if isinstance(default, str):
        return str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RulesFileError(f"{name}: parameter '{key}' is a number (got {value!r}).") from None


def is_path(spec: str) -> bool:
    """Whether a `--rules` value names a file (it holds a `/` or a file suffix), not a preset."""
    return "/" in spec or os.sep in spec or "." in os.path.basename(spec)


def load_rules(spec: Union[str, os.PathLike, Rules, Mapping], **params: Any) -> Rules:
    """Rules from a file, a preset's name (`PRESETS`), parsed JSON, or `Rules` (returned with `params` applied).

    Raises:
      RulesFileError: no such preset or file, not JSON, or not the rules format.
    """
    if isinstance(spec, Rules):
        return spec if not params else parse_rules(spec.data, spec.name, **{**spec.overrides, **params})
    if isinstance(spec, Mapping):
        return parse_rules(spec, "rules", **params)
    spec = os.fspath(spec)
    if is_path(spec):
        try:
            text = fileio.read_bytes(spec).decode("utf-8")
        except FileNotFoundError:
            raise RulesFileError(f"{spec}: no such rules file.") from None
        except (OSError, UnicodeDecodeError) as e:
            raise RulesFileError(f"{spec}: cannot read the rules file: {e}.") from None
        name = spec
    elif spec in PRESETS:
        with open(os.path.join(_PRESET_DIR, f"{spec}.json"), encoding="utf-8") as f:
            text = f.read()
        name = spec
    else:
        raise RulesFileError(
            f"no preset named {spec!r}: the presets are {', '.join(PRESETS)}; a file path holds a '/' or ends "
            "in '.json'."
        )
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RulesFileError(f"{name}: not JSON: {e}.") from None
    return parse_rules(data, name, **params)


RulesArg = Optional[Union[str, os.PathLike, Rules, Mapping]]

__all__ = ["FORMAT_VERSION", "PRESETS", "Rule", "Rules", "RulesArg", "is_path", "load_rules", "parse_rules"]
