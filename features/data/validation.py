"""The validation report: findings a person can act on.

Every finding names the file, the column, how many rows, a few examples and what to do. Errors stop
`load_lead_data` (it raises `DataValidationError(report)`); warnings describe recoverable problems
whose rows were kept or counted as dropped; notes record what the reader decided on the user's behalf
(delimiter, encoding, time zone, inferred types).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

from features.data.values import isin

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
    """Data row numbers (1-based, the header not counted) of the first few offending rows."""
    return tuple(f"row {int(i) + 1}" for i in list(index)[:limit])


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

    def record_table(
        self, name: str, file: str, rows_read: int, rows_kept: int, **extra: Any
    ) -> None:
        self.tables[name] = {
            "file": file,
            "rows_read": int(rows_read),
            "rows_kept": int(rows_kept),
            **extra,
        }

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
        verdict = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)" + (
            ": fix the errors above and run again." if self.errors else ": the data can be used."
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


# --------------------------------------------------------------------------------------------------
# Checks: pure functions of frames that add findings to a report

# A column with more bad timestamps than this is misread (format, day-first), not a few typos.
BAD_SHARE_FOR_ERROR = 0.05


def check_required_columns(
    frame: pd.DataFrame,
    required: dict[str, str],
    file: str,
    report: ValidationReport,
    *,
    table: str,
) -> bool:
    """`required` maps a role ('lead id') to the mapped column name. True when all are present."""
    import difflib

    columns = [str(c) for c in frame.columns]
    ok = True
    for role, column in required.items():
        if column in columns:
            continue
        ok = False
        squashed = {_squash(c): c for c in columns}
        close = [squashed[_squash(column)]] if _squash(column) in squashed else []
        close += [
            squashed[c]
            for c in difflib.get_close_matches(_squash(column), list(squashed), n=3, cutoff=0.6)
            if squashed[c] not in close
        ]
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        option = ROLE_OPTIONS.get((table, role))
        how = f"pass {option} COLUMN or set" if option else "set"
        report.error(
            f"required {role} column '{column}' is missing",
            file=file,
            column=column,
            examples=format_examples(columns, limit=12),
            fix=f"{hint}{how} '{table}: {{{ROLE_KEYS[role]}: COLUMN}}' in the config; the examples are "
            "the file's columns",
        )
    return ok


def _squash(name: str) -> str:
    """'Lead ID' and 'lead_id' compare equal."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


ROLE_KEYS = {
    "lead id": "lead_id",
    "created at": "created_at",
    "occurred at": "occurred_at",
    "channel": "channel",
    "activity": "activity",
    "campaign": "campaign",
    "value": "value",
    "closed at": "closed_at",
    "won": "won",
    "amount": "amount",
    "label": "label",
}


ROLE_OPTIONS = {
    ("leads", "lead id"): "--id",
    ("leads", "created at"): "--created-at",
    ("leads", "label"): "--label",
}


def check_duplicate_ids(ids: pd.Series, file: str, column: str, report: ValidationReport) -> bool:
    """Every lead appears once. True when there are no duplicates."""
    duplicated = ids.duplicated(keep=False) & ids.notna()
    if not duplicated.any():
        return True
    n_ids = int(ids[duplicated].nunique())
    report.error(
        f"lead ids are not unique: {n_ids:,} "
        + ("id appears" if n_ids == 1 else "ids appear")
        + " more than once",
        file=file,
        column=column,
        rows=int(duplicated.sum()),
        examples=format_examples(ids[duplicated].head(200)),
        fix="each lead must be one row: remove the duplicate rows, or map the id column with --id "
        "if this is not the lead id",
    )
    return False


def check_unknown_leads(
    ids: pd.Series,
    known: pd.Series,
    file: str,
    column: str,
    report: ValidationReport,
    *,
    table: str,
) -> pd.Series:
    """Rows whose lead is in the leads file. Unknown leads are dropped with a warning, or an error
    when none match (the id columns are mapped wrong)."""

    known_mask = isin(ids, known)
    unknown = ~known_mask
    n = int(unknown.sum())
    if n == 0:
        return known_mask
    examples = format_examples(ids[unknown].head(200))
    if n == len(ids):
        report.error(
            f"none of the {table}' lead ids are in the leads file",
            file=file,
            column=column,
            rows=n,
            examples=examples,
            fix=f"map the same id in both files: the leads id (--id) and '{table}: {{lead_id: COLUMN}}'",
        )
    else:
        report.warning(
            f"{table} for leads that are not in the leads file were dropped",
            file=file,
            column=column,
            rows=n,
            examples=examples,
            fix="add those leads to the leads file, or ignore this if they were deleted in the CRM",
        )
    return known_mask


def check_outcomes_before_created(
    outcomes: pd.DataFrame, created: pd.Series, file: str, report: ValidationReport
) -> pd.Series:
    """Rows of canonical outcomes closed at or after their lead was created. Earlier ones are
    dropped with a warning, or an error when they are common (a wrong column or time zone)."""
    position = created.index.get_indexer(outcomes["lead_id"])
    created_at = pd.Series(created.array.take(position, allow_fill=True), index=outcomes.index)
    early = (outcomes["closed_at"] < created_at).fillna(False).astype(bool)
    n = int(early.sum())
    if n == 0:
        return ~early
    examples = tuple(
        f"{lid}: created {c:%Y-%m-%d %H:%M}, closed {d:%Y-%m-%d %H:%M}"
        for lid, c, d in zip(
            outcomes["lead_id"][early].head(5),
            created_at[early].head(5),
            outcomes["closed_at"][early].head(5),
        )
    )
    share = n / len(outcomes)
    if share > BAD_SHARE_FOR_ERROR:
        report.error(
            f"{share:.0%} of outcomes are dated before their lead was created",
            file=file,
            column="closed_at",
            rows=n,
            examples=examples,
            fix="check that --created-at and the outcomes' closed_at columns are the right ones and "
            "in the same time zone ('timezone:' in the config)",
        )
    else:
        report.warning(
            "outcomes dated before their lead was created were dropped (those leads count as open)",
            file=file,
            column="closed_at",
            rows=n,
            examples=examples,
            fix="correct the dates in the CRM export",
        )
    return ~early


def parse_label(
    values: pd.Series,
    positive: str | None,
    file: str,
    column: str,
    report: ValidationReport,
    *,
    words: dict[str, bool],
    role: str = "label",
) -> pd.Series | None:
    """0/1 as nullable Int8 (missing stays missing), or None after recording an error.

    With `positive`, rows equal to it are 1 and every other value is 0. Without it the column
    must hold two values that read as yes/no (1/0, true/false, won/lost ...)."""
    present = values.notna()
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean").astype("Int8")
    text = values.astype(str).str.strip()
    counts = text[present].value_counts()
    if positive is not None:
        target = str(positive).strip()
        matches = text == target
        if not matches[present].any():
            try:
                number = float(target)
                matches = pd.to_numeric(text, errors="coerce") == number
            except ValueError:
                pass
        if not matches[present].any():
            matches = text.str.lower() == target.lower()
        if not matches[present].any():
            report.error(
                f"no row has the positive {role} value {target!r}",
                file=file,
                column=column,
                rows=int(present.sum()),
                examples=format_examples(counts.index[:10]),
                fix="pass --positive with one of the values shown (the one meaning the lead converted)",
            )
            return None
        if len(counts) > 2:
            report.note(
                f"{role} has {len(counts)} values; {target!r} counts as 1 and the others as 0",
                file=file,
                column=column,
                examples=format_examples(counts.index[:10]),
            )
        out = matches.astype("Int8")
        out[~present] = pd.NA
        return out
    lowered = {v: words.get(v.lower()) for v in counts.index}
    unknown = [v for v, b in lowered.items() if b is None]
    if len(counts) > 2 or unknown:
        report.error(
            f"{role} is not binary: {len(counts)} distinct values"
            + (f", {len(unknown)} not readable as yes/no" if unknown else ""),
            file=file,
            column=column,
            rows=int(text[present].isin(unknown).sum()) if unknown else int(present.sum()),
            examples=tuple(f"{v!r} ({n:,} rows)" for v, n in counts.head(8).items()),
            fix=f"pass --positive VALUE (e.g. --positive {counts.index[0]!r}) to count that value as "
            "1 and every other value as 0, or map the right column with --label",
        )
        return None
    out = text.str.lower().map({k.lower(): int(v) for k, v in lowered.items()}).astype("Int8")
    out[~present] = pd.NA
    return out
