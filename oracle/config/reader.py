"""Typed reading of TOML tables with errors that point at the file and key.

A :class:`Table` wraps one TOML table; every accessor records the key as known, and
:meth:`Table.finish` reports the keys nobody asked for, with a "did you mean" hint.
Problems are collected in a shared :class:`Problems` list rather than raised one at a
time, so a user sees everything wrong with a file at once.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oracle.errors import MiraError


class ConfigError(MiraError, ValueError):
    """A configuration or feed spec is invalid. ``problems`` lists every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        if len(problems) == 1:  # the usual case: one line naming the file, key and fix
            super().__init__(f"invalid configuration: {problems[0]}")
            return
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration ({len(problems)} problems):\n{lines}")


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    value: Any
    expected: str

    def __str__(self) -> str:
        shown = _show(self.value)
        return f"{self.file}: {self.key or '(top level)'} = {shown}: {self.expected}"


@dataclass
class Problems:
    items: list[Problem] = field(default_factory=list)

    def add(self, file: str, key: str, value: Any, expected: str) -> None:
        self.items.append(Problem(file, key, value, expected))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(list(self.items))


_MISSING: Any = object()


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(missing)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


class Table:
    """One TOML table, read with types and limits."""

    def __init__(self, data: Any, *, file: str | Path, prefix: str, problems: Problems) -> None:
        self.file = str(file)
        self.prefix = prefix
        self.problems = problems
        if not isinstance(data, dict):
            problems.add(self.file, prefix, data, f"expected a table, got {_type_name(data)}")
            data = {}
        self.data: dict[str, Any] = data
        self._known: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, value: Any, expected: str) -> None:
        self.problems.add(self.file, self.key(name), value, expected)

    def removed(self, name: str, why: str) -> None:
        """A key this version no longer reads: named with what to do instead, rather than
        a generic "unknown key" (whose spelling hint could point at an unrelated key)."""
        self._known.add(name)
        if name in self.data:
            self.fail(name, self.data[name], f"no longer supported: {why}")

    def has(self, name: str) -> bool:
        self._known.add(name)
        return name in self.data

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        self._known.add(name)
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            self.fail(name, _MISSING, "required")
        return default

    def string(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        choices: Iterable[str] | None = None,
        max_len: int = 1000,
    ) -> Any:
        value = self.raw(name, default)
        if value is default and name not in self.data:
            return value
        if not isinstance(value, str):
            self.fail(name, value, f"expected a string, got {_type_name(value)}")
            return default if default is not _MISSING else ""
        if len(value) > max_len:
            self.fail(name, value, f"expected at most {max_len} characters")
        if choices is not None:
            allowed = sorted(choices)
            if value not in allowed:
                self.fail(
                    name, value, f"expected one of {', '.join(allowed)}{_hint(value, allowed)}"
                )
        return value

    def integer(
        self, name: str, default: Any = _MISSING, *, low: int | None = None, high: int | None = None
    ) -> Any:
        value = self.raw(name, default)
        if value is default and name not in self.data:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, value, f"expected an integer, got {_type_name(value)}")
            return default if default is not _MISSING else (low or 0)
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(name, value, f"expected an integer in [{low}, {high}]")
        return value

    def number(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
    ) -> Any:
        value = self.raw(name, default)
        if value is default and name not in self.data:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(name, value, f"expected a number, got {_type_name(value)}")
            return default if default is not _MISSING else 0.0
        value = float(value)
        if not math.isfinite(value):
            self.fail(name, value, "expected a finite number")
            return value
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and value > high
        if below or above:
            bracket = "(" if low_open else "["
            self.fail(name, value, f"expected a number in {bracket}{low}, {high}]")
        return value

    def boolean(self, name: str, default: Any = _MISSING) -> Any:
        value = self.raw(name, default)
        if value is default and name not in self.data:
            return value
        if not isinstance(value, bool):
            self.fail(name, value, f"expected true or false, got {_type_name(value)}")
            return bool(default) if default is not _MISSING else False
        return value

    def strings(self, name: str, default: Any = _MISSING, *, max_items: int = 1000) -> Any:
        value = self.raw(name, default)
        if value is default and name not in self.data:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(name, value, "expected an array of strings")
            return []
        if len(value) > max_items:
            self.fail(name, value, f"expected at most {max_items} items")
        if len(set(value)) != len(value):
            self.fail(name, value, "expected no duplicates")
        return list(value)

    def table(self, name: str, *, required: bool = True) -> Table | None:
        value = self.raw(name, _MISSING if required else None)
        if value is None or value is _MISSING:
            return None
        return Table(value, file=self.file, prefix=self.key(name), problems=self.problems)

    def tables(self, name: str, *, min_items: int = 0, max_items: int = 100) -> list[Table]:
        value = self.raw(name, [] if min_items == 0 else _MISSING)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(name, value, "expected an array of tables ([[...]])")
            return []
        if not min_items <= len(value) <= max_items:
            self.fail(name, value, f"expected between {min_items} and {max_items} entries")
        return [
            Table(v, file=self.file, prefix=f"{self.key(name)}[{i}]", problems=self.problems)
            for i, v in enumerate(value)
        ]

    def finish(self) -> None:
        """Report every key that no accessor asked for."""
        known = sorted(self._known)
        for name in sorted(set(self.data) - self._known):
            self.fail(name, self.data[name], f"unknown key{_hint(name, known)}")


def _hint(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
