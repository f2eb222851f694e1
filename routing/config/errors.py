"""Configuration errors as an operator sees them.

Every error names ``file:line:column``, quotes the line, puts carets under the
problem and, where it can, says what to do::

    orders.conf:3:22: unknown exchange type 'topik': did you mean 'topic'?
        exchange orders type topik durable
                             ^^^^^

Parsing never stops at the first error: ``check`` returns all of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigErrors", "did_you_mean"]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``": did you mean 'x'?"`` for the closest candidate, or ``""``."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f": did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class ConfigError:
    """One problem in one file, at one place."""

    filename: str
    line: int  # 1-based
    column: int  # 1-based
    message: str
    source_line: str = ""
    length: int = 1
    hint: str | None = None

    def __str__(self) -> str:
        out = [f"{self.filename}:{self.line}:{self.column}: {self.message}"]
        if self.source_line:
            text = self.source_line.expandtabs(4)
            # Tabs before the column widen the caret's indentation the same way.
            prefix = self.source_line[: self.column - 1].expandtabs(4)
            out.append(f"    {text}")
            out.append("    " + " " * len(prefix) + "^" * max(1, self.length))
        if self.hint:
            out.append(f"    hint: {self.hint}")
        return "\n".join(out)


class ConfigErrors(Exception):
    """Raised by ``routing.config.parse``: every error found, in file order."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.filename, e.line, e.column))
        super().__init__(str(self))

    def __str__(self) -> str:
        n = len(self.errors)
        summary = f"{n} error{'s' if n != 1 else ''}"
        return "\n".join([*(str(e) for e in self.errors), summary])
