"""Checked reading: one reader that raises on the first problem or collects them all.

Every checked reader of the format layer takes `problems=None`: without it the
first problem raises an `est_ckpt.errors` type; with a `Problems` it is
recorded as one line naming its file, and reading goes on as far as it can.
`verify` is that second mode.
"""

from __future__ import annotations

from typing import Optional

from est_ckpt.errors import CorruptCheckpointError, EstCkptError

# What a raised error adds to a problem line about a damaged index.
DAMAGED_INDEX = ". The index is damaged; restore it from a good copy."


class Problems:
    """Problem lines, each naming its file; past `limit` they are only counted."""

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self._lines: list[str] = []
        self._dropped = 0

    def add(self, line: str) -> None:
        if len(self._lines) < self.limit:
            self._lines.append(line)
        else:
            self._dropped += 1

    @property
    def full(self) -> bool:
        """Whether more lines would only be counted."""
        return len(self._lines) >= self.limit

    def __bool__(self) -> bool:
        return bool(self._lines)

    def lines(self) -> list[str]:
        """The lines, then `... and N more problems` if some were only counted."""
        if self._dropped:
            return [*self._lines, f"... and {self._dropped} more problems"]
        return list(self._lines)


def report(
    problems: Optional[Problems],
    line: str,
    *,
    error: type[EstCkptError] = CorruptCheckpointError,
    advice: str = ".",
) -> None:
    """Records `line` in `problems`, or raises `error(line + advice)` when there is none."""
    if problems is None:
        raise error(line + advice)
    problems.add(line)
