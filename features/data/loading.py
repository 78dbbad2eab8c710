"""The lead data contract: canonical names, the column mapping, and `load_lead_data`.

Users keep their files as their CRM exported them; `DataConfig` says which column is which. After
`load_lead_data` every table has canonical names and dtypes (see docs/design.md):

- leads: `lead_id` (str, unique), `created_at` (datetime64[ns, UTC], absent in flat mode), attributes
- touchpoints: `lead_id`, `occurred_at` (UTC), `channel` (in CHANNELS), `activity` (in ACTIVITIES),
  `campaign` (str or missing), `value` (float or NaN)
- outcomes: `lead_id`, `closed_at` (UTC), `won` (bool), `amount` (float or NaN)
- flat mode: leads + a `label` Series of 0/1 aligned with leads, no timestamps
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from features.data import readers, validation
from features.data.config import DataConfig
from features.data.validation import DataValidationError, ValidationReport, format_examples
from features.data.values import (
    COMMA,
    OUTCOME_WORDS,
    POINT,
    NumberFormat,
    NumberReading,
    column_key,
    number_reading,
    placeholder_mask,
    to_boolean,
    to_numeric,
    to_text,
)
from features.data.vocabulary import ACTIVITIES, CHANNELS, lookup_activity, lookup_channel

# --------------------------------------------------------------------------------------------------
# The loaded data


@dataclass
class LeadData:
    """Canonical frames plus the validation report (see the module docstring for the shapes)."""

    leads: pd.DataFrame
    touchpoints: pd.DataFrame | None
    outcomes: pd.DataFrame | None
    label: pd.Series | None
    attribute_types: dict[str, str]
    report: ValidationReport
    # Point in time (data captured by the service): `lead_id`, `known_at`, then the attribute
    # columns of `leads`; each row the lead's attributes as known from `known_at` on. None for
    # files, whose attributes are those of the export.
    attribute_history: pd.DataFrame | None = None

    @property
    def flat(self) -> bool:
        return self.label is not None

    @property
    def attributes(self) -> list[str]:
        return list(self.attribute_types)


def load_lead_data(config: DataConfig, progress: bool = False) -> LeadData:
    """Read the files named in `config`, map columns, infer types and validate.

    Raises `DataValidationError(report)` when the report has errors; warnings are in `.report`.
    """
    report = ValidationReport()
    steps = [("leads", config.leads)]
    if config.touchpoints is not None:
        steps.append(("touchpoints", config.touchpoints))
    if config.outcomes is not None:
        steps.append(("outcomes", config.outcomes))
    _check_mode(config, report)
    if report.errors:
        raise DataValidationError(report)

    raw: dict[str, pd.DataFrame | None] = {}
    with _progress(progress, len(steps) + 1) as advance:
        for name, source in steps:
            advance(f"reading {name}")
            raw[name] = readers.read_table(
                source.path, name, report, delimiter=source.delimiter, encoding=source.encoding
            )
        if report.errors:
            raise DataValidationError(report)
        advance("checking")
        return lead_data_from_frames(raw["leads"], raw.get("touchpoints"), raw.get("outcomes"),
                                     config, report)  # fmt: skip


def lead_data_from_frames(
    leads: pd.DataFrame,
    touchpoints: pd.DataFrame | None,
    outcomes: pd.DataFrame | None,
    config: DataConfig,
    report: ValidationReport | None = None,
) -> LeadData:
    """`load_lead_data` for tables already read (e.g. from a database): the same mapping, types,
    validation and canonical frames. The tables' `path` in `config` only names them in findings.

    Raises `DataValidationError(report)` when the report has errors.
    """
    report = report if report is not None else ValidationReport()
    _check_mode(config, report)
    if report.errors:
        raise DataValidationError(report)
    canonical, label, attribute_types = _canonical_leads(leads, config, report)
    canonical_touchpoints = canonical_outcomes = None
    if touchpoints is not None:
        canonical_touchpoints = _canonical_touchpoints(touchpoints, config, report)
    if outcomes is not None:
        canonical_outcomes = _canonical_outcomes(outcomes, config, report)
    if report.errors:
        raise DataValidationError(report)
    canonical_touchpoints, canonical_outcomes = _cross_checks(
        canonical, canonical_touchpoints, canonical_outcomes, config, report
    )
    if report.errors:
        raise DataValidationError(report)
    return LeadData(
        leads=canonical,
        touchpoints=canonical_touchpoints,
        outcomes=canonical_outcomes,
        label=label,
        attribute_types=attribute_types,
        report=report,
    )


def unused_columns(report: ValidationReport) -> list[validation.Finding]:
    """The warnings about lead columns left out of the attributes: empty, unreadable, the same
    in every row, or identifier-like."""
    return [f for f in report.warnings if f.column is not None and NOT_USED in f.message]


NOT_USED = "not used"  # in the message of every warning about a column left out
# A column with a value in fewer rows than this (and in under FEW_SHARE of them) may have none in
# the rows a cross-validation model is fitted on: train then sets it aside for that model and
# warns; validate says so first, so the two agree on what is usable.
FEW_VALUES = 10
FEW_SHARE = 0.05


class _progress:
    """A rich progress bar over the loading steps, or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total
        self._bar: Any = None

    def __enter__(self):
        if not self.enabled:
            return lambda description: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.__enter__()
        task = self._bar.add_task("loading", total=self.total)

        def advance(description: str) -> None:
            self._bar.update(task, description=description, advance=1)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _check_mode(config: DataConfig, report: ValidationReport) -> None:
    if config.flat and (config.touchpoints is not None or config.outcomes is not None):
        report.error(
            "a label column (flat mode) cannot be combined with touchpoints or outcomes files",
            column=config.label,
            fix="either drop --label (outcomes give the labels) or drop --touchpoints/--outcomes",
        )
    if config.timezone is not None:
        try:
            pd.Timestamp("2024-01-01").tz_localize(config.timezone)
        except (KeyError, ValueError, TypeError):  # zoneinfo/pytz raise KeyError subclasses
            report.error(
                f"unknown time zone {config.timezone!r}",
                column="timezone",
                fix="use an IANA name such as UTC, Europe/Berlin or America/New_York",
            )


def _lead_ids(values: pd.Series) -> pd.Series:
    """Lead ids as stripped text; integral floats (ids read next to missing values) lose '.0'."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == whole.round()).all():
            values = values.astype("Int64")
    text = to_text(values).str.strip()
    return text.where(text != "", other=pd.NA)


def _timestamps(
    values: pd.Series,
    config: DataConfig,
    report: ValidationReport,
    file: str,
    column: str,
    *,
    what: str,
) -> tuple[pd.Series, pd.Series]:
    """Parsed UTC timestamps and the mask of rows to keep; findings for bad and naive values."""
    misordered = _day_month_findings(values, config, report, file, column, what=what)
    parsed, bad, naive = readers.parse_timestamps(
        values,
        timezone=config.timezone,
        dayfirst=bool(config.dayfirst),
        datetime_format=config.datetime_format,
    )
    repeated = readers.repeated_clock_times(
        values, bad, config.timezone, dayfirst=bool(config.dayfirst)
    )
    if repeated.any():
        report.warning(
            f"rows whose {what} time falls in the hour the clocks go back in {config.timezone} "
            "were dropped: that local time happened twice, so the moment is unknown",
            file=file,
            column=column,
            rows=int(repeated.sum()),
            examples=readers.bad_value_examples(values, repeated),
            fix="export the times with their UTC offset (e.g. 2026-10-25T02:30:00+01:00) or "
            "in UTC (and set 'timezone: UTC')",
        )
    n_bad = int((bad & ~repeated).sum())
    if n_bad and not misordered:
        share = n_bad / len(values)
        hint = (
            "the dates look day-first: set 'dayfirst: true' in the config"
            if not config.dayfirst and readers.dayfirst_helps(values, bad & ~repeated)
            else "write them as YYYY-MM-DD HH:MM:SS (ISO 8601), or set 'datetime_format:' "
            "(e.g. '%d/%m/%Y %H:%M') in the config"
        )
        if share > validation.BAD_SHARE_FOR_ERROR:
            report.error(
                f"{share:.0%} of {what} timestamps cannot be read as dates",
                file=file,
                column=column,
                rows=n_bad,
                examples=readers.bad_value_examples(values, bad & ~repeated),
                fix=hint,
            )
        else:
            report.warning(
                f"rows whose {what} timestamp cannot be read as a date were dropped",
                file=file,
                column=column,
                rows=n_bad,
                examples=readers.bad_value_examples(values, bad & ~repeated),
                fix=hint,
            )
    missing = values.isna()
    if missing.any():
        report.warning(
            f"rows without a {what} timestamp were dropped",
            file=file,
            column=column,
            rows=int(missing.sum()),
            examples=validation.row_examples(values.index[missing.to_numpy()]),
            fix=f"fill in the {what} date in the CRM export",
        )
    if naive and config.timezone is None and (~missing).any():
        report.warning(
            "timestamps have no time zone; read as UTC",
            file=file,
            column=column,
            fix="if they are local times, set 'timezone:' (e.g. Europe/Berlin) in the config",
        )
    return parsed, ~(bad | missing)


def _day_month_findings(
    values: pd.Series,
    config: DataConfig,
    report: ValidationReport,
    file: str,
    column: str,
    *,
    what: str,
) -> bool:
    """Report dates whose day and month order contradicts `dayfirst` (or is a guess); True when
    an error was recorded (the dates would be misread)."""
    if config.datetime_format:
        return False
    order = readers.day_month_order(values)
    if order is None:
        return False
    share = (order.day_first + order.month_first) / max(len(values), 1)
    if order.day_first and order.month_first:
        report.error(
            f"{what} dates are written both day-first and month-first",
            file=file,
            column=column,
            rows=order.day_first + order.month_first,
            examples=order.day_first_examples[:2] + order.month_first_examples[:2],
            fix="export the dates in one form (ISO 8601, YYYY-MM-DD, is safest) or set "
            "'datetime_format:' (e.g. '%d/%m/%Y') in the config",
        )
        return True
    if order.day_first and not config.dayfirst:
        setting = "(the default)" if config.dayfirst is None else "(dayfirst: false)"
        report.error(
            f"{share:.0%} of {what} timestamps cannot be read as dates month-first {setting}: "
            "the dates are day-first, so reading them month-first would swap day and month "
            "in the others",
            file=file,
            column=column,
            rows=order.day_first,
            examples=order.day_first_examples,
            fix="set 'dayfirst: true' in the config or pass --dayfirst",
        )
        return True
    if order.month_first and config.dayfirst:
        report.error(
            f"{share:.0%} of {what} timestamps cannot be read as dates day-first "
            "(dayfirst: true): the dates are month-first",
            file=file,
            column=column,
            rows=order.month_first,
            examples=order.month_first_examples,
            fix="remove 'dayfirst: true' from the config, or pass --no-dayfirst",
        )
        return True
    if order.ambiguous and config.dayfirst is None:
        report.warning(
            f"every {what} date reads both day-first and month-first; read month-first "
            "(MM/DD/YYYY)",
            file=file,
            column=column,
            examples=order.ambiguous,
            fix="if they are day-first (DD/MM/YYYY), set 'dayfirst: true' in the config or pass "
            "--dayfirst; set 'dayfirst: false' (--no-dayfirst) to confirm month-first",
        )
    return False


def _canonical_leads(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport
) -> tuple[pd.DataFrame, pd.Series | None, dict[str, str]]:
    source = config.leads
    file = str(source.path)
    required = {"lead id": source.lead_id}
    if config.flat:
        required["label"] = config.label
    elif source.created_at is not None:
        required["created at"] = source.created_at
    if not validation.check_required_columns(raw, required, file, report, table="leads"):
        return raw.iloc[:0], None, {}
    rows_read = len(raw)
    keep = pd.Series(True, index=raw.index)

    ids = _lead_ids(raw[source.lead_id])
    missing_id = ids.isna()
    if missing_id.any():
        report.warning(
            "rows without a lead id were dropped",
            file=file,
            column=source.lead_id,
            rows=int(missing_id.sum()),
            examples=validation.row_examples(ids.index[missing_id.to_numpy()]),
            fix="every lead needs an id; check the export or map the id column with --id",
        )
        keep &= ~missing_id
    validation.check_duplicate_ids(ids, file, source.lead_id, report)

    created = None
    if not config.flat and source.created_at is not None:
        created, ok = _timestamps(
            raw[source.created_at], config, report, file, source.created_at, what="created_at"
        )
        keep &= ok

    label = None
    if config.flat:
        label = validation.parse_label(
            raw[config.label],
            config.positive,
            file,
            config.label,
            report,
            words=OUTCOME_WORDS,
        )
        if label is not None:
            no_label = label.isna()
            if no_label.any():
                report.warning(
                    "rows without a label were dropped",
                    file=file,
                    column=config.label,
                    rows=int(no_label.sum()),
                    examples=validation.row_examples(label.index[no_label.to_numpy()]),
                    fix="fill in the label, or drop these leads from the export",
                )
                keep &= ~no_label

    used = {source.lead_id, config.label, source.created_at if not config.flat else None}
    missing_excluded = [c for c in config.exclude if c not in raw.columns]
    if missing_excluded:
        report.warning(
            "columns to exclude are not in the file",
            file=file,
            examples=format_examples(missing_excluded),
            fix="check the spelling against the file's header",
        )
    attribute_columns = [c for c in raw.columns if c not in used and c not in config.exclude]
    unknown_types = [c for c in config.types if c not in raw.columns]
    if unknown_types:
        report.warning(
            "type overrides name columns that are not in the file",
            file=file,
            examples=format_examples(unknown_types),
            fix="check the spelling of the columns under 'types:' against the file's header",
        )

    _fact_column_findings(raw, config, report, file)

    kept = keep.to_numpy()
    out: dict[str, pd.Series] = {"lead_id": ids[kept]}
    if created is not None:
        out["created_at"] = created[kept]
    attributes, attribute_types = _attributes(
        raw.loc[kept, attribute_columns], config, report, file
    )
    frame = pd.DataFrame(out)
    for name in attributes.columns:
        frame[name] = attributes[name]
    frame = frame.reset_index(drop=True)
    if label is not None:
        label = label[kept].astype("int64").reset_index(drop=True).rename("label")
        if label.nunique() < 2:
            report.warning(
                f"every lead has label {int(label.iloc[0]) if len(label) else '-'}; a model needs both",
                file=file,
                column=config.label,
                rows=len(label),
                fix="check --label and --positive, or export a longer period with conversions",
            )
    report.record_table("leads", file, rows_read, len(frame))
    return frame, label, attribute_types


def _fact_column_findings(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport, file: str
) -> None:
    """The configured do-not-contact and demo-request columns are in the file, not excluded,
    and hold yes/no values (anything else never triggers the hard rule)."""
    header = {column_key(c): c for c in raw.columns}
    excluded = {column_key(c) for c in config.exclude}
    placeholders = {p.strip().lower() for p in config.placeholders}
    for key, names, what in (
        ("do_not_contact_columns", config.do_not_contact_columns, "do-not-contact"),
        ("demo_request_columns", config.demo_request_columns, "demo-request"),
    ):
        missing = [c for c in names if column_key(c) not in header]
        if missing:
            report.warning(
                f"{what} columns named under '{key}' are not in the file",
                file=file,
                examples=format_examples(missing),
                fix="check the spelling against the file's header (case, accents and spaces do "
                "not matter)",
            )
        for name in names:
            column = header.get(column_key(name))
            if column is None:
                continue
            if column_key(name) in excluded:
                report.warning(
                    f"the {what} column is also under 'exclude:', so the hard rule cannot read it",
                    file=file,
                    column=column,
                    fix=f"remove '{column}' from 'exclude:' (or from '{key}:')",
                )
                continue
            values = raw[column]
            mask, _ = placeholder_mask(values, placeholders)
            _, bad = to_boolean(values.where(~mask))
            if bad.any():
                report.warning(
                    f"values of the {what} column that are not yes/no: the hard rule does not "
                    "count them as yes",
                    file=file,
                    column=column,
                    rows=int(bad.sum()),
                    examples=format_examples(values[bad].head(100)),
                    fix="write yes or no (oui/non, ja/nein, sí/no ... are read too) in the column",
                )


def _attributes(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport, file: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Typed attribute columns and their types.

    Columns that end up with nothing to learn from (empty after placeholders and unreadable
    values, or one value in every row) are left out of the types with a warning, so `validate`
    and `train` agree on what is usable; constant ones stay in the frame (a hard rule may read
    them, and a model trained when they varied needs their values).
    """
    placeholders = {p.strip().lower() for p in config.placeholders}
    present: dict[str, pd.Series] = {}
    for name in raw.columns:
        values = raw[name]
        mask, found = placeholder_mask(values, placeholders)
        if found:
            report.warning(
                "placeholder values read as missing",
                file=file,
                column=name,
                rows=int(mask.sum()),
                examples=format_examples(found),
                fix="nothing to do if they mean 'not filled in'; otherwise remove them from "
                "'placeholders:' in the config",
            )
            values = values.where(~mask)
        if values.isna().all():
            report.warning(
                "column is empty and is not used",
                file=file,
                column=name,
                rows=len(values),
                fix="nothing to do, or add it to 'exclude:'",
            )
            continue
        present[name] = values
    number_formats = _number_formats(present, config, report, file)
    columns: dict[str, pd.Series] = {}
    types: dict[str, str] = {}
    for name, values in present.items():
        number_format = number_formats.get(name)
        kind = config.types.get(name) or readers.infer_type(values, number_format)
        misordered = kind == "datetime" and _day_month_findings(
            values, config, report, file, name, what=f"'{name}'"
        )
        converted, bad = _convert(values, kind, config, number_format)
        if misordered:  # the error says why these are unreadable
            bad = pd.Series(False, index=values.index)
        if converted.isna().all():
            report.warning(
                f"no value can be read as {kind}: the column is empty and is not used",
                file=file,
                column=name,
                rows=int(bad.sum()),
                examples=format_examples(values[bad].head(100)),
                fix=f"fix the values, or set 'types: {{{name}: categorical}}' in the config",
            )
            continue
        if bad.any():
            report.warning(
                f"values that are not {kind} read as missing",
                file=file,
                column=name,
                rows=int(bad.sum()),
                examples=format_examples(values[bad].head(100)),
                fix=f"fix the values, or set 'types: {{{name}: categorical}}' in the config",
            )
        known = converted.dropna()
        if known.nunique() == 1 and len(known) == len(converted):
            report.warning(
                "column has the same value in every row and is not used as a feature",
                file=file,
                column=name,
                rows=len(converted),
                examples=format_examples(values.head(1)),
                fix="nothing to do: it carries no information (add it to 'exclude:' to silence "
                "this)",
            )
            columns[name] = converted
            continue
        if len(known) < FEW_VALUES and len(known) < FEW_SHARE * len(converted):
            report.warning(
                f"column has a value in only {len(known):,} of {len(converted):,} rows: too few "
                "to learn from; a model fitted on rows where it has none leaves it out (train "
                "says which)",
                file=file,
                column=name,
                rows=len(known),
                examples=format_examples(values[converted.notna()].head(100)),
                fix="more rows with a value would let the model learn from it; to silence this, "
                "add it to 'exclude:'",
            )
        if known.nunique() == 1:
            report.note(
                "column has a single value and carries no information",
                file=file,
                column=name,
                examples=format_examples(known.head(1)),
            )
        integral = kind == "numeric" and bool((known == known.round()).all())
        every_row = len(values) >= 50 and len(known) == len(values)
        if (
            (kind == "categorical" or integral)
            and every_row
            and known.is_unique
            and name not in config.types
        ):
            # An id is no attribute: a sequential one encodes time (it flatters random CV by
            # interpolating drift and cannot extrapolate to new leads), a random one is noise.
            report.warning(
                "every value is different: this looks like an identifier and is not used as a feature",
                file=file,
                column=name,
                rows=len(values),
                examples=format_examples(known.head(3)),
                fix=f"add '{name}' to 'exclude:' to silence this; to use it anyway, set "
                f"'types: {{{name}: {kind}}}' in the config",
            )
            continue
        columns[name] = converted
        types[name] = kind
    if types:
        by_kind: dict[str, list[str]] = {}
        for name, kind in types.items():
            by_kind.setdefault(kind, []).append(name)
        report.note(
            "attribute types: "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(by_kind.items())),
            file=file,
            fix="override any of them with 'types: {column: categorical|numeric|boolean|datetime}'",
        )
    frame = pd.DataFrame(columns, index=raw.index)
    return frame, types


def _number_formats(
    columns: dict[str, pd.Series], config: DataConfig, report: ValidationReport, file: str
) -> dict[str, NumberFormat | None]:
    """How each text column writes its numbers: the config's format, else what its values show,
    else (values such as 1,234 that read both ways) what the file's other columns show."""
    if config.number_format is not None:
        return dict.fromkeys(columns, config.number_format)
    readings: dict[str, NumberReading] = {}
    for name, values in columns.items():
        if config.types.get(name) in ("categorical", "boolean", "datetime"):
            continue
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        if pd.api.types.is_datetime64_any_dtype(values):
            continue
        reading = number_reading(values)
        if reading.kind != "text":
            readings[name] = reading
    kinds = {r.kind for r in readings.values()}
    in_file = None
    if "decimal_comma" in kinds and "decimal_point" not in kinds:
        in_file = COMMA
    elif "decimal_point" in kinds and "decimal_comma" not in kinds:
        in_file = POINT
    formats: dict[str, NumberFormat | None] = {}
    for name, reading in readings.items():
        formats[name] = _number_format_finding(name, reading, in_file, report, file)
    return formats


_DECIMAL_FIX = (
    "set 'decimal:' (and 'thousands:') in the config, or pass --decimal ',' / --decimal '.'"
)


def _number_format_finding(
    column: str,
    reading: NumberReading,
    in_file: NumberFormat | None,
    report: ValidationReport,
    file: str,
) -> NumberFormat | None:
    """The format to read `column` in, after recording what was decided and why."""
    if reading.number_format is not None:
        report.note(
            f"numbers read with a {reading.number_format.describe()}",
            file=file,
            column=column,
            examples=format_examples(reading.examples),
            fix=f"if that is wrong, {_DECIMAL_FIX}",
        )
        return reading.number_format
    if reading.kind == "mixed":
        report.warning(
            "numbers are written both with a decimal point and with a decimal comma: the column "
            "is not read as numbers",
            file=file,
            column=column,
            examples=format_examples(reading.examples),
            fix=f"{_DECIMAL_FIX} (values written the other way are then missing)",
        )
        return None
    if reading.kind != "ambiguous":
        return None
    if in_file is not None:
        report.note(
            f"numbers such as {reading.examples[0]!r} read either way; read with a "
            f"{in_file.describe()}, like the file's other numbers",
            file=file,
            column=column,
            examples=format_examples(reading.examples),
            fix=f"if that is wrong, {_DECIMAL_FIX}",
        )
        return in_file
    example = reading.examples[0]
    if reading.default is None:
        report.warning(
            f"numbers such as {example!r} are a thousand or a decimal depending on the country: "
            "the column is not read as numbers",
            file=file,
            column=column,
            examples=format_examples(reading.examples),
            fix="set 'decimal: \",\"' (--decimal ,) if ',' is the decimal mark, or "
            "'decimal: \".\"' (--decimal .) if ',' separates thousands",
        )
        return None
    report.warning(
        f"numbers such as {example!r} read with a decimal point; if '.' separates thousands "
        "in this file they are a thousand times too small",
        file=file,
        column=column,
        examples=format_examples(reading.examples),
        fix="set 'decimal: \",\"' (--decimal ,) if '.' separates thousands, or 'decimal: \".\"' "
        "(--decimal .) to confirm and silence this",
    )
    return reading.default


def _convert(
    values: pd.Series, kind: str, config: DataConfig, number_format: NumberFormat | None = None
) -> tuple[pd.Series, pd.Series]:
    if kind == "numeric":
        return to_numeric(values, number_format)
    if kind == "boolean":
        return to_boolean(values)
    if kind == "datetime":
        parsed, bad, _ = readers.parse_timestamps(
            values,
            timezone=config.timezone,
            dayfirst=bool(config.dayfirst),
            datetime_format=config.datetime_format,
        )
        return parsed, bad
    return to_text(values), pd.Series(False, index=values.index)


def _numbers(
    values: pd.Series, config: DataConfig, report: ValidationReport, file: str, column: str
) -> tuple[pd.Series, pd.Series]:
    """A numeric column of touchpoints or outcomes (value, amount) read in the config's format,
    else the one its values show."""
    number_format = config.number_format
    if number_format is None and not pd.api.types.is_numeric_dtype(values):
        reading = number_reading(values)
        if reading.kind != "text":
            number_format = _number_format_finding(column, reading, None, report, file)
    return to_numeric(values, number_format)


def _explicit_optional(source: BaseModel, field: str) -> bool:
    """An optional column the user mapped to a name of their own (so it must be in the file)."""
    value = getattr(source, field)
    return value is not None and value != type(source).model_fields[field].default


def _canonical_touchpoints(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport
) -> pd.DataFrame | None:
    source = config.touchpoints
    file = str(source.path)
    required = {
        "lead id": source.lead_id,
        "occurred at": source.occurred_at,
        "channel": source.channel,
        "activity": source.activity,
    }
    for role, field in (("campaign", "campaign"), ("value", "value")):
        if _explicit_optional(source, field):
            required[role] = getattr(source, field)
    if not validation.check_required_columns(raw, required, file, report, table="touchpoints"):
        return None
    keep = pd.Series(True, index=raw.index)
    ids = _lead_ids(raw[source.lead_id])
    keep &= _drop_missing_ids(ids, file, source.lead_id, report, what="touchpoints")
    occurred, ok = _timestamps(
        raw[source.occurred_at], config, report, file, source.occurred_at, what="occurred_at"
    )
    keep &= ok
    channel = _normalised(
        raw[source.channel],
        lookup_channel,
        config.channel_map,
        file,
        source.channel,
        report,
        what="channel",
        key="channel_map",
        allowed=CHANNELS,
    )
    activity = _normalised(
        raw[source.activity],
        lookup_activity,
        config.activity_map,
        file,
        source.activity,
        report,
        what="activity",
        key="activity_map",
        allowed=ACTIVITIES,
    )
    kept = keep.to_numpy()
    frame = pd.DataFrame(
        {
            "lead_id": ids[kept],
            "occurred_at": occurred[kept],
            "channel": channel[kept],
            "activity": activity[kept],
        }
    )
    placeholders = {p.strip().lower() for p in config.placeholders}
    if source.campaign is not None and source.campaign in raw.columns:
        campaign = raw[source.campaign]
        mask, _ = placeholder_mask(campaign, placeholders)
        frame["campaign"] = to_text(campaign.where(~mask))[kept]
    else:
        frame["campaign"] = pd.Series(pd.NA, index=frame.index, dtype="str")
    if source.value is not None and source.value in raw.columns:
        value, bad = _numbers(raw[source.value], config, report, file, source.value)
        if bad.any():
            report.warning(
                "values that are not numbers read as missing",
                file=file,
                column=source.value,
                rows=int(bad.sum()),
                examples=format_examples(raw[source.value][bad].head(100)),
                fix="the touchpoint value must be a number (seconds, pages viewed ...)",
            )
        frame["value"] = value[kept]
    else:
        frame["value"] = np.nan
    frame = frame.reset_index(drop=True)
    report.record_table("touchpoints", file, len(raw), len(frame))
    return frame


def _drop_missing_ids(
    ids: pd.Series, file: str, column: str, report: ValidationReport, *, what: str
) -> pd.Series:
    missing = ids.isna()
    if missing.any():
        report.warning(
            f"{what} without a lead id were dropped",
            file=file,
            column=column,
            rows=int(missing.sum()),
            examples=validation.row_examples(ids.index[missing.to_numpy()]),
            fix="check the export, or map the lead id column in the config",
        )
    return ~missing


def _normalised(
    values: pd.Series,
    lookup: Any,
    extra: dict[str, str],
    file: str,
    column: str,
    report: ValidationReport,
    *,
    what: str,
    key: str,
    allowed: tuple[str, ...],
) -> pd.Series:
    """Canonical names via the unique values only (touchpoint files have millions of rows)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = [lookup(u, extra) for u in uniques]
    unknown = [(u, i) for i, (u, m) in enumerate(zip(uniques, mapped)) if m is None]
    canonical = np.array([allowed.index(m or "other") for m in mapped] + [allowed.index("other")])
    result = to_text(
        pd.Series(
            pd.Categorical.from_codes(canonical[codes], categories=list(allowed)),
            index=values.index,
        )
    )
    n_missing = int((codes == -1).sum())
    if unknown:
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        unknown.sort(key=lambda item: -counts[item[1]])
        n_unknown = int(sum(counts[i] for _, i in unknown))
        report.warning(
            f"unrecognised {what} values read as 'other'",
            file=file,
            column=column,
            rows=n_unknown,
            examples=tuple(f"{u!r} ({counts[i]:,} rows)" for u, i in unknown[:5]),
            fix=f"map them in the config, e.g. '{key}: {{{unknown[0][0]!r}: ...}}', to one of: "
            + ", ".join(allowed),
        )
    if n_missing:
        report.warning(
            f"rows without a {what} read as 'other'",
            file=file,
            column=column,
            rows=n_missing,
            examples=validation.row_examples(values.index[codes == -1]),
            fix=f"fill in the {what} in the export",
        )
    return result


def _canonical_outcomes(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport
) -> pd.DataFrame | None:
    source = config.outcomes
    file = str(source.path)
    required = {"lead id": source.lead_id, "closed at": source.closed_at, "won": source.won}
    if _explicit_optional(source, "amount"):
        required["amount"] = source.amount
    if not validation.check_required_columns(raw, required, file, report, table="outcomes"):
        return None
    keep = pd.Series(True, index=raw.index)
    ids = _lead_ids(raw[source.lead_id])
    keep &= _drop_missing_ids(ids, file, source.lead_id, report, what="outcomes")
    closed, ok = _timestamps(
        raw[source.closed_at], config, report, file, source.closed_at, what="closed_at"
    )
    keep &= ok
    won = validation.parse_label(
        raw[source.won],
        config.positive,
        file,
        source.won,
        report,
        words=OUTCOME_WORDS,
        role="won",
    )
    if won is None:
        return None
    no_won = won.isna()
    if no_won.any():
        report.warning(
            "outcomes without a won value were dropped (those leads count as open)",
            file=file,
            column=source.won,
            rows=int(no_won.sum()),
            examples=validation.row_examples(won.index[no_won.to_numpy()]),
            fix="fill in won/lost in the export",
        )
        keep &= ~no_won
    if source.amount is not None and source.amount in raw.columns:
        amount, bad = _numbers(raw[source.amount], config, report, file, source.amount)
        if bad.any():
            report.warning(
                "amounts that are not numbers read as missing",
                file=file,
                column=source.amount,
                rows=int(bad.sum()),
                examples=format_examples(raw[source.amount][bad].head(100)),
                fix="write amounts as plain numbers (1234.5) without currency signs",
            )
    else:
        amount = pd.Series(np.nan, index=raw.index)
    kept = keep.to_numpy()
    frame = pd.DataFrame(
        {
            "lead_id": ids[kept],
            "closed_at": closed[kept],
            "won": won[kept].astype(bool),
            "amount": amount[kept].astype("float64"),
        }
    ).reset_index(drop=True)
    # One outcome per lead: the first win, else the last loss (re-opened and lost again).
    if frame["lead_id"].duplicated().any():
        order = frame.assign(_rank=np.where(frame["won"], 0, 1)).sort_values(
            ["lead_id", "_rank", "closed_at"], ascending=[True, True, True]
        )
        wins_first = order[order["won"]].drop_duplicates("lead_id", keep="first")
        losses = order[~order["won"] & ~order["lead_id"].isin(wins_first["lead_id"])]
        last_loss = losses.drop_duplicates("lead_id", keep="last")
        deduped = pd.concat([wins_first, last_loss]).drop(columns="_rank")
        n_extra = len(frame) - len(deduped)
        report.warning(
            "leads with several outcomes: kept the first win, else the last loss",
            file=file,
            column=source.lead_id,
            rows=n_extra,
            examples=format_examples(frame["lead_id"][frame["lead_id"].duplicated()].head(100)),
            fix="nothing to do if deals were re-opened; otherwise remove the duplicate rows",
        )
        frame = deduped.sort_index().reset_index(drop=True)
    report.record_table("outcomes", file, len(raw), len(frame))
    return frame


def _cross_checks(
    leads: pd.DataFrame,
    touchpoints: pd.DataFrame | None,
    outcomes: pd.DataFrame | None,
    config: DataConfig,
    report: ValidationReport,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    ids = leads["lead_id"]
    if touchpoints is not None and len(touchpoints):
        file = str(config.touchpoints.path)
        known = validation.check_unknown_leads(
            touchpoints["lead_id"],
            ids,
            file,
            config.touchpoints.lead_id,
            report,
            table="touchpoints",
        )
        if not known.all():
            touchpoints = touchpoints[known.to_numpy()].reset_index(drop=True)
            report.tables["touchpoints"]["rows_kept"] = len(touchpoints)
    if outcomes is not None and len(outcomes):
        file = str(config.outcomes.path)
        known = validation.check_unknown_leads(
            outcomes["lead_id"], ids, file, config.outcomes.lead_id, report, table="outcomes"
        )
        if not known.all():
            outcomes = outcomes[known.to_numpy()].reset_index(drop=True)
        if "created_at" in leads and len(outcomes):
            created = leads.set_index("lead_id")["created_at"]  # stays datetime64, not objects
            ok = validation.check_outcomes_before_created(outcomes, created, file, report)
            if not ok.all():
                outcomes = outcomes[ok.to_numpy()].reset_index(drop=True)
        report.tables["outcomes"]["rows_kept"] = len(outcomes)
    if not config.flat and config.outcomes is None:
        report.note(
            "no outcomes file: every lead is open (fine for scoring; training needs outcomes)",
            file=str(config.leads.path),
        )
    return touchpoints, outcomes
