"""The validation report: findings a person can act on.

Every finding names the file, the column, how many rows, a few examples and what to do. Errors stop
`load_lead_data` (it raises `DataValidationError(report)`); warnings describe recoverable problems
whose rows were kept or counted as dropped; notes record what the reader decided on the user's behalf
(delimiter, encoding, time zone, inferred types).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

import pandas as pd

Level = Literal["error", "warning", "note"]

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Finding:
    """One problem (or decision) found while reading a file."""

    level: Level
    file: str | None
    column: str | None
    rows: int | None
    examples: tuple[str, ...]
    message: str
    fix: str | None = None

    def to_text(self) -> str:
        where = self.file or "config"
        if self.column:
            where += f", column '{self.column}'"
        head = f"{self.level.upper()} {where}: {self.message}"
        if self.rows is not None:
            head += f" ({self.rows:,} row{'s' if self.rows != 1 else ''})"
        lines = [head]
        if self.examples:
            lines.append("    examples: " + ", ".join(self.examples))
        if self.fix:
            lines.append("    fix: " + self.fix)
        return "\n".join(lines)


def format_examples(values: Iterable[Any], limit: int = MAX_EXAMPLES) -> tuple[str, ...]:
    """The first few distinct values, quoted, for a finding."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        text = repr(value) if isinstance(value, str) else str(value)
        if text in seen:
            continue
        seen.add(text)
        out.append(text)
        if len(out) >= limit:
            break
    return tuple(out)


def row_examples(index: Iterable[Any], limit: int = MAX_EXAMPLES) -> tuple[str, ...]:
    """Line numbers (1-based, header is line 1) of the first few offending rows."""
    return tuple(f"line {int(i) + 2}" for i in list(index)[:limit])


@dataclass
class ValidationReport:
    """Everything found while reading and checking the lead data."""

    findings: list[Finding] = field(default_factory=list)
    # Per table: rows read from the file and rows kept in the canonical frame.
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(
        self,
        level: Level,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        rows: int | None = None,
        examples: Iterable[Any] = (),
        fix: str | None = None,
    ) -> Finding:
        found = Finding(
            level=level,
            file=file,
            column=column,
            rows=None if rows is None else int(rows),
            examples=tuple(str(e) for e in examples),
            message=message,
            fix=fix,
        )
        self.findings.append(found)
        return found

    def error(self, message: str, **kwargs: Any) -> Finding:
        return self.add("error", message, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> Finding:
        return self.add("warning", message, **kwargs)

    def note(self, message: str, **kwargs: Any) -> Finding:
        return self.add("note", message, **kwargs)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "note"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def record_table(self, name: str, file: str, rows_read: int, rows_kept: int, **extra: Any) -> None:
        self.tables[name] = {"file": file, "rows_read": int(rows_read), "rows_kept": int(rows_kept), **extra}

    def to_text(self) -> str:
        lines: list[str] = []
        for name, info in self.tables.items():
            dropped = info["rows_read"] - info["rows_kept"]
            line = f"{name}: {info['file']}: {info['rows_read']:,} rows read, {info['rows_kept']:,} kept"
            if dropped:
                line += f", {dropped:,} dropped"
            lines.append(line)
        for level in ("error", "warning", "note"):
            for finding in self.findings:
                if finding.level == level:
                    lines.append(finding.to_text())
        verdict = (
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
            + (": fix the errors above and run again." if self.errors else ": the data can be used.")
        )
        lines.append(verdict)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tables": self.tables,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [{**asdict(f), "examples": list(f.examples)} for f in self.findings],
        }


class DataValidationError(ValueError):
    """The lead data has errors; `report` says which and how to fix them."""

    def __init__(self, report: ValidationReport):
        self.report = report
        errors = report.errors
        first = errors[0].to_text() if errors else "no errors recorded"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"the lead data has errors{more}:\n{first}")

    def __str__(self) -> str:
        return self.report.to_text()


def count_and_examples(mask: pd.Series, values: pd.Series) -> tuple[int, tuple[str, ...]]:
    """How many rows a boolean mask selects and a few of their values."""
    n = int(mask.sum())
    if n == 0:
        return 0, ()
    return n, format_examples(values[mask].head(50))
