"""Rename rules and assignment maps: how a target variable's name becomes a source name.

`AssignmentMap` is `tf.compat.v1.train.init_from_checkpoint`'s `{source: target}`
grammar (exact names, `'old_scope/': 'new_scope/'`, `'/': 'new_scope/'`,
`'old_scope/': '/'`) plus TF's `var_name_to_prev_var_name` renames, as dict
lookups: scope entries are found by walking a name's own `/` prefixes.
`RenameRules` are ordered `(regex, replacement)` pairs tried by one compiled
alternation: the first full match wins, its replacement a template of group
references parsed once. Both refuse malformed entries with a `MappingError`
and record which entries were used.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence

from est_ckpt.errors import MappingError

# Numbered or named backreferences inside a pattern break when rules are combined.
_BACKREF = re.compile(r"\\\d|\(\?P=")
# `\g<name>`, `\g<1>`, `\1` in a replacement; any other escape is refused.
_TEMPLATE_TOKEN = re.compile(r"\\(?:g<(\w+)>|([1-9]\d?)|(.|\Z))", re.S)

RenameRule = tuple  # (regex: str, replacement: Optional[str])


class RenameRules:
    """Ordered `(regex, replacement)` rules tried in one pass: the first full match wins.

    Args:
      rules: `(regex, replacement)` pairs; a replacement may hold group
        references (`\\1`, `\\g<1>`, `\\g<name>`) and no other escapes, or be
        None (the variable is left alone).

    Raises:
      MappingError: a rule is not a pair, its regex does not compile, or its
        replacement refers to a group the regex does not define.
    """

    def __init__(self, rules: Sequence[RenameRule]):
        self.rules: list = []
        self.templates: list = []
        for i, rule in enumerate(rules):
            if not (isinstance(rule, (tuple, list)) and len(rule) == 2):
                raise MappingError(f"rename_rules[{i}] must be a (regex, replacement) pair (got {rule!r}).")
            pattern, replacement = rule
            if replacement is not None and not isinstance(replacement, str):
                raise MappingError(
                    f"rename_rules[{i}] replacement must be a string or None (got {replacement!r})."
                )
            try:
                compiled = re.compile(pattern)
            except (re.error, TypeError) as e:
                raise MappingError(f"rename_rules[{i}] regex {pattern!r} does not compile: {e}.") from None
            self.rules.append((compiled, replacement))
            self.templates.append(_parse_template(replacement, compiled, i))
        self.used = [False] * len(self.rules)
        self._shifted: dict[int, list] = {}
        self._combined = None
        if len(self.rules) > 1 and not any(_BACKREF.search(c.pattern) for c, _ in self.rules):
            # One alternation tries the rules in order at the start of the name; the
            # wrapping group that matched names the rule, and the rule's own groups
            # follow it. Rules with backreferences, inline flags or clashing group
            # names cannot be combined and are tried one by one.
            try:
                self._combined = re.compile(
                    "|".join(f"(?P<_r{i}>(?:{c.pattern})\\Z)" for i, (c, _) in enumerate(self.rules))
                )
                self._group_rule = {self._combined.groupindex[f"_r{i}"]: i for i in range(len(self.rules))}
            except re.error:
                self._combined = None

    def apply(self, name: str) -> tuple[bool, Optional[str]]:
        """Returns `(matched, source_name)`; `source_name` None means skip the variable."""
        if not self.rules:
            return False, None
        if self._combined is not None:
            m = self._combined.match(name)
            if m is None:
                return False, None
            group = m.lastindex
            i = self._group_rule.get(group)
            if i is None:
                i = self._which(m)
                group = self._combined.groupindex[f"_r{i}"]
            self.used[i] = True
            return True, self._expand(i, m, group)
        for i, (compiled, _) in enumerate(self.rules):
            m = compiled.fullmatch(name)
            if m is not None:
                self.used[i] = True
                return True, self._expand(i, m, 0)
        return False, None

    def _expand(self, i: int, m: re.Match, offset: int) -> Optional[str]:
        template = self.templates[i]
        if template is None or type(template) is str:
            return template
        fmt, refs = template
        if offset:
            # Numbered groups of rule i are shifted by `offset` inside the combined pattern.
            refs = self._shifted.get(i)
            if refs is None:
                refs = self._shifted[i] = [r + offset if type(r) is int else r for r in template[1]]
        if len(refs) == 1:
            return fmt.format(m.group(refs[0]) or "")
        return fmt.format(*[v or "" for v in m.group(*refs)])

    def _which(self, m: re.Match) -> int:
        for i in range(len(self.rules)):
            if m.group(f"_r{i}") is not None:
                return i
        raise AssertionError("a combined match names no rule")

    def unused(self) -> list[str]:
        return [
            f"rename_rules[{i}] ({c.pattern!r}, {r!r})"
            for i, ((c, r), u) in enumerate(zip(self.rules, self.used))
            if not u
        ]


class AssignmentMap:
    """`init_from_checkpoint`'s `{source: target}` grammar, as dict lookups.

    Args:
      assignment_map: `{source: target}` entries: exact names or scopes.
      target_names: the names of the variables being mapped (a target ending
        in `/` that names one of them is a variable, not a scope).
      prev_names: TF's `{target: source}` exact renames.

    Raises:
      MappingError: an entry is not a pair of strings, maps a scope onto a
        variable or the other way round, or clashes with another entry.
    """

    def __init__(
        self,
        assignment_map: Optional[Mapping[str, str]],
        target_names: set,
        prev_names: Optional[Mapping[str, str]] = None,
    ):
        # target -> (source, entry); target scope ('' is the root) -> (source prefix, entry).
        self.exact: dict[str, tuple[str, str]] = {}
        self.scopes: dict[str, tuple[str, str]] = {}
        self.used: dict[str, bool] = {}
        self.active = False
        self._depths: Optional[list[int]] = None
        # TF's `var_name_to_prev_var_name` is `{target: source}`, so one source may feed several targets.
        for target, source in (prev_names or {}).items():
            if not isinstance(source, str) or not isinstance(target, str):
                raise MappingError(
                    f"var_name_to_prev_var_name must map variable names to checkpoint names, both strings "
                    f"(got {target!r}: {source!r})."
                )
            entry = f"var_name_to_prev_var_name {target!r}: {source!r}"
            self.used[entry] = False
            self.active = True
            self.exact[target] = (source, entry)
        for source, target in (assignment_map or {}).items():
            if not isinstance(source, str) or not isinstance(target, str):
                raise MappingError(
                    f"assignment_map entries must map a checkpoint name to a variable name, both strings "
                    f"(got {source!r}: {target!r})."
                )
            entry = f"assignment_map {source!r}: {target!r}"
            self.used[entry] = False
            self.active = True
            if source.endswith("/") and (target.endswith("/") or target == "/"):
                scope = "" if target == "/" else target[:-1]
                prefix = "" if source == "/" else source
                if scope in self.scopes:
                    raise MappingError(
                        f"{entry} and {self.scopes[scope][1]} both map onto scope '{target}': keep one."
                    )
                self.scopes[scope] = (prefix, entry)
            elif source.endswith("/"):
                raise MappingError(
                    f"{entry}: a scope (ending in '/') must map onto a scope: write "
                    f"{{'{source}': '{target}/'}} ('old_scope/': 'new_scope/')."
                )
            elif target.endswith("/") and target not in target_names:
                raise MappingError(
                    f"{entry}: a variable name must map onto a variable name; to map a scope write "
                    f"{{'{source}/': '{target}'}}."
                )
            else:
                if target in self.exact:
                    raise MappingError(
                        f"{entry} and {self.exact[target][1]} both initialise variable '{target}': keep one."
                    )
                self.exact[target] = (source, entry)

    def lookup(self, name: str) -> tuple[Optional[str], Optional[str]]:
        """Returns `(source_name, via)` or `(None, None)` when no entry covers `name`."""
        hit = self.exact.get(name)
        if hit is not None:
            self.used[hit[1]] = True
            return hit[0], "assignment_map"
        if not self.scopes:
            return None, None
        if self._depths is None:
            # Only prefixes with as many '/' as some scope entry can match: find those, deepest first.
            self._depths = sorted({scope.count("/") + 1 for scope in self.scopes if scope}, reverse=True)
        cuts = []
        end = -1
        for _ in range(self._depths[0] if self._depths else 0):
            end = name.find("/", end + 1)
            if end < 0:
                break
            cuts.append(end)
        for depth in self._depths:
            if depth <= len(cuts):
                end = cuts[depth - 1]
                hit = self.scopes.get(name[:end])
                if hit is not None:
                    self.used[hit[1]] = True
                    return hit[0] + name[end + 1 :], "scope"
        hit = self.scopes.get("")
        if hit is not None:
            self.used[hit[1]] = True
            return hit[0] + name, "scope"
        return None, None

    def unused(self) -> list[str]:
        return [entry for entry, used in self.used.items() if not used]


def _parse_template(replacement: Optional[str], compiled: re.Pattern, i: int):
    """Parses a replacement once: None, a constant string, or a list of strings and `(group, numbered)`."""
    if replacement is None or "\\" not in replacement:
        return replacement
    pieces: list = []
    pos = 0
    for token in _TEMPLATE_TOKEN.finditer(replacement):
        if token.group(3) is not None:
            raise MappingError(
                f"rename_rules[{i}] replacement {replacement!r}: only group references (\\1, \\g<1>, "
                f"\\g<name>) may follow a backslash (got '\\{token.group(3)}')."
            )
        ref = token.group(1) if token.group(1) is not None else token.group(2)
        pieces.append(replacement[pos : token.start()])
        if ref.isdigit():
            if int(ref) > compiled.groups:
                raise MappingError(
                    f"rename_rules[{i}] replacement {replacement!r} refers to group {ref}, but "
                    f"{compiled.pattern!r} has {compiled.groups}."
                )
            pieces.append((int(ref), True))
        else:
            if ref not in compiled.groupindex:
                raise MappingError(
                    f"rename_rules[{i}] replacement {replacement!r} refers to group '{ref}', which "
                    f"{compiled.pattern!r} does not define."
                )
            pieces.append((ref, False))
        pos = token.end()
    pieces.append(replacement[pos:])
    # A `str.format` string and its group references: one C-level call per rename.
    fmt = "".join(p.replace("{", "{{").replace("}", "}}") if type(p) is str else "{}" for p in pieces)
    return fmt, [p[0] if p[1] else p[0] for p in pieces if type(p) is not str]
