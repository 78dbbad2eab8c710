"""Reading CSV and Parquet files, sniffing delimiters and encodings, and inferring column types.

Functions here read files and turn text into typed columns; they record what they found or decided
in a `ValidationReport` instead of raising, so a person sees every problem at once.
"""

from __future__ import annotations

import codecs
import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.data.validation import ValidationReport, format_examples, row_examples
from features.data.values import BOOLEAN_WORDS, NumberFormat, to_numeric

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".csv.zip")


PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


EXCEL_SUFFIXES = (".xlsx", ".xls", ".xlsm", ".ods")


DELIMITERS = (",", ";", "\t", "|")


SAMPLE_BYTES = 1 << 16


_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


_DATE_LIKE = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


# Timestamps outside these years are almost always typos (0024 for 2024) and overflow ns.
_MIN_YEAR, _MAX_YEAR = 1900, 2200


def _describe_delimiter(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(
        delimiter, repr(delimiter)
    )


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (*CSV_SUFFIXES, *PARQUET_SUFFIXES, *EXCEL_SUFFIXES):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_table(
    path: Path | str | None,
    table: str,
    report: ValidationReport,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> pd.DataFrame | None:
    """The raw table (text columns as `str`), or None after recording an error in `report`."""
    if path is None:
        report.error(
            f"no {table} file given",
            fix=f"pass --{table} PATH or set '{table}: PATH' in the config",
        )
        return None
    path = Path(path)
    file = str(path)
    if not path.exists():
        report.error(
            f"{table} file not found",
            file=file,
            fix=f"check the path (relative paths start at {Path.cwd()}) or pass --{table} PATH",
        )
        return None
    if path.is_dir():
        report.error(
            f"{table} path is a directory, not a file",
            file=file,
            fix=f"point --{table} at a .csv or .parquet file inside it",
        )
        return None
    suffix = _suffix(path)
    if suffix in EXCEL_SUFFIXES:
        report.error(
            "Excel workbooks are not read",
            file=file,
            fix="export the sheet as CSV (File > Save As > 'CSV UTF-8') or Parquet and pass that file",
        )
        return None
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        report.error(
            f"unsupported file type '{suffix or '(none)'}'",
            file=file,
            fix="use a .csv (also .tsv, .txt, .csv.gz) or .parquet file",
        )
        return None
    if path.stat().st_size == 0:
        report.error(
            "file is empty (0 bytes)",
            file=file,
            fix=f"export the {table} again; the file has no header and no rows",
        )
        return None
    if suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(path, report)
    else:
        frame = _read_csv(path, report, delimiter=delimiter, encoding=encoding)
    if frame is None:
        return None
    if len(frame) == 0:
        report.error(
            "file has a header but no rows",
            file=file,
            rows=0,
            examples=format_examples(frame.columns),
            fix=f"export the {table} again with its rows",
        )
        return None
    frame = _positional_index(frame)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _positional_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows numbered 0..n-1, as everything downstream assumes (it aligns columns by index).

    pandas writes a frame's index into Parquet unless told `index=False`: a filtered frame comes
    back with gaps in its index, a frame indexed by lead_id with lead_id as the index. Named
    levels that are not columns become columns again; unnamed ones are dropped.
    """
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return frame
    named = [n for n in index.names if n is not None and str(n) not in frame.columns]
    if named:
        frame = frame.reset_index(level=named)
    return frame.reset_index(drop=True)


def _read_parquet(path: Path, report: ValidationReport) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001  pyarrow raises many types for corrupt files
        report.error(
            f"could not read as Parquet: {str(exc).splitlines()[0][:200]}",
            file=str(path),
            fix="check that the file is a complete Parquet file, or export it as CSV",
        )
        return None


def _sample(path: Path) -> bytes:
    if path.name.lower().endswith((".gz", ".zip")):
        import gzip
        import zipfile

        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read(SAMPLE_BYTES)
        with zipfile.ZipFile(path) as zf, zf.open(zf.namelist()[0]) as fh:
            return fh.read(SAMPLE_BYTES)
    with open(path, "rb") as fh:
        return fh.read(SAMPLE_BYTES)


def sniff_encoding(
    sample: bytes, file: str, report: ValidationReport, encoding: str | None
) -> str | None:
    """The encoding to read with; None after recording an error."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            report.error(
                f"unknown encoding '{encoding}'",
                file=file,
                fix="use an encoding name such as utf-8, cp1252, latin-1 or utf-16",
            )
            return None
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
        except UnicodeDecodeError as exc:
            report.error(
                f"the file is not {encoding}: byte {sample[exc.start : exc.start + 1]!r} at position "
                f"{exc.start} cannot be decoded",
                file=file,
                examples=format_examples([_context(sample, exc.start)]),
                fix=f"set the encoding the file was saved in (e.g. encoding: {_guess_encoding(sample)})"
                " or remove 'encoding' to let leadscore detect it",
            )
            return None
        return encoding
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if sample.startswith(b"PK\x03\x04"):
        report.error(
            "this is a zip archive or an Excel workbook, not a CSV text file",
            file=file,
            fix="export the sheet as CSV (File > Save As > 'CSV UTF-8') and pass that file",
        )
        return None
    if b"\x00" in sample:
        report.error(
            "the file is binary (it contains NUL bytes), not CSV text",
            file=file,
            fix="export the table as CSV or Parquet; if it is UTF-16, save it as UTF-8",
        )
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError as exc:
        guess = _guess_encoding(sample)
        report.warning(
            f"the file is not UTF-8; read as {guess}",
            file=file,
            examples=format_examples([_context(sample, exc.start)]),
            fix=f"check accented names look right; set 'encoding: ...' for {file} if not",
        )
        return guess


def _guess_encoding(sample: bytes) -> str:
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _context(sample: bytes, position: int) -> str:
    return sample[max(0, position - 20) : position + 20].decode("latin-1").replace("\n", " ")


def _count_fields(lines: list[str], delimiter: str) -> list[int]:
    try:
        return [len(row) for row in csv.reader(lines, delimiter=delimiter) if row]
    except csv.Error:
        return []


def sniff_delimiter(text: str) -> str | None:
    """The delimiter giving the most columns, the same number on every sampled line."""
    lines = text.splitlines()[:50]
    if len(lines) > 1 and not text.endswith("\n"):
        lines = lines[:-1]  # the sample may cut the last line
    best, best_fields = None, 1
    for delimiter in DELIMITERS:
        counts = _count_fields(lines, delimiter)
        if not counts:
            continue
        header = counts[0]
        consistent = sum(c == header for c in counts) >= 0.9 * len(counts)
        if consistent and header > best_fields:
            best, best_fields = delimiter, header
    return best


def _read_csv(
    path: Path, report: ValidationReport, *, delimiter: str | None, encoding: str | None
) -> pd.DataFrame | None:
    file = str(path)
    sample = _sample(path)
    chosen_encoding = sniff_encoding(sample, file, report, encoding)
    if chosen_encoding is None:
        return None
    text = codecs.getincrementaldecoder(chosen_encoding)(errors="replace").decode(
        sample, final=False
    )
    if not text.strip():
        report.error(
            "file is empty (only blank lines)",
            file=file,
            fix="export the table again; the file has no header and no rows",
        )
        return None
    sniffed = sniff_delimiter(text)
    if delimiter is not None:
        header_fields = _count_fields(text.splitlines()[:1], delimiter)
        if header_fields and header_fields[0] == 1 and sniffed and sniffed != delimiter:
            report.error(
                f"wrong delimiter: with {_describe_delimiter(delimiter)} the header is one column, "
                f"but the file is {_describe_delimiter(sniffed)}-separated",
                file=file,
                examples=format_examples([text.splitlines()[0][:80]]),
                fix=f"set delimiter: '{sniffed}' (or remove 'delimiter' to let leadscore detect it)",
            )
            return None
        chosen = delimiter
    else:
        chosen = sniffed or ","
        if chosen != ",":
            report.note(f"read as {_describe_delimiter(chosen)}-separated", file=file)
    options = {
        "sep": chosen,
        "encoding": chosen_encoding,
        "dtype": str,
        "keep_default_na": False,
        "na_values": [""],
    }
    try:
        # Arrow's reader is about ten times faster on big files ...
        frame = pd.read_csv(path, engine="pyarrow", **options)
    except Exception:  # noqa: BLE001  ... and on any problem the C reader gives the messages
        frame = _read_csv_c(path, report, options, delimiter=delimiter, encoding=encoding)
        if frame is None:
            return None
    if frame.shape[1] == 1 and delimiter is None:
        only = str(frame.columns[0])
        for other in DELIMITERS:
            if other in only:
                report.error(
                    f"wrong delimiter: the header is one column containing "
                    f"{_describe_delimiter(other)}s, but the rows do not split the same way",
                    file=file,
                    examples=format_examples([only[:80]]),
                    fix=f"check the file is {_describe_delimiter(other)}-separated with the same number "
                    f"of fields on every line, or set delimiter: '{other}'",
                )
                return None
    return frame


def _read_csv_c(
    path: Path,
    report: ValidationReport,
    options: dict,
    *,
    delimiter: str | None,
    encoding: str | None,
) -> pd.DataFrame | None:
    """pandas' C reader, whose errors name the line; None after recording an error."""
    file = str(path)
    try:
        return pd.read_csv(path, engine="c", low_memory=False, **options)
    except UnicodeDecodeError as exc:
        if encoding is None and options["encoding"] == "utf-8":
            report.warning(
                f"the file is not UTF-8 past the first {SAMPLE_BYTES // 1024} KB; read as cp1252",
                file=file,
                fix=f"check accented names look right; set 'encoding: ...' for {file} if not",
            )
            return _read_csv(path, report, delimiter=delimiter, encoding="cp1252")
        report.error(
            f"the file is not {options['encoding']}: {exc.reason} at byte {exc.start}",
            file=file,
            fix="set 'encoding:' to the encoding the file was saved in (e.g. cp1252)",
        )
        return None
    except pd.errors.ParserError as exc:
        message = str(exc).strip().splitlines()[-1]
        report.error(
            f"the file is not consistent CSV: {message}",
            file=file,
            fix=f"check that values containing '{options['sep']}' are quoted, "
            "or set the right 'delimiter:'",
        )
        return None
    except pd.errors.EmptyDataError:
        report.error(
            "file is empty (no header)", file=file, fix="export the table again with a header row"
        )
        return None


def infer_type(series: pd.Series, number_format: NumberFormat | None = None) -> str:
    """'numeric', 'boolean', 'datetime' or 'categorical' for an attribute column.

    Text is numeric when every value is a number written in `number_format` (default: plain
    numbers such as 1234.5)."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    values = series.dropna()
    if pd.api.types.is_numeric_dtype(series):
        uniques = pd.unique(values)
        if len(uniques) and set(np.asarray(uniques, dtype=float).tolist()) <= {0.0, 1.0}:
            return "boolean"
        return "numeric"
    if values.empty:
        return "categorical"
    uniques = pd.Series(pd.unique(values.astype(str).str.strip()))
    lowered = set(uniques.str.casefold())
    if lowered <= set(BOOLEAN_WORDS):
        return "boolean"
    numbers, _ = to_numeric(uniques, number_format)
    if numbers.notna().all():
        # Codes written with leading zeros (postal codes, account numbers) are not quantities.
        return "categorical" if uniques.str.match(r"^0\d").any() else "numeric"
    sample = uniques.head(1000)
    if sample.str.match(_DATE_LIKE).all():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)
        if parsed.notna().mean() >= 0.99:
            return "datetime"
    return "categorical"


def parse_timestamps(
    series: pd.Series,
    *,
    timezone: str | None,
    dayfirst: bool = False,
    datetime_format: str | None = None,
) -> tuple[pd.Series, pd.Series, bool]:
    """UTC timestamps (datetime64[ns, UTC]), a mask of unparseable non-missing values, and whether
    the values had no time zone (and were read in `timezone`, UTC by default)."""
    with warnings.catch_warnings():
        # pandas warns when it falls back to per-value parsing; the report says what failed.
        warnings.simplefilter("ignore", UserWarning)
        return _parse_timestamps(
            series, timezone=timezone, dayfirst=dayfirst, datetime_format=datetime_format
        )


def _parse_timestamps(
    series: pd.Series,
    *,
    timezone: str | None,
    dayfirst: bool = False,
    datetime_format: str | None = None,
) -> tuple[pd.Series, pd.Series, bool]:
    """UTC timestamps (datetime64[ns, UTC]), a mask of unparseable non-missing values, and whether
    the values had no time zone (and were read in `timezone`, UTC by default)."""
    zone = timezone or "UTC"
    if pd.api.types.is_datetime64_any_dtype(series):
        naive = getattr(series.dt, "tz", None) is None
        parsed = in_zone(series, zone) if naive else series
        parsed = parsed.dt.tz_convert("UTC")
        bad = series.notna() & parsed.isna()  # a local time the clocks repeat: two moments
        return _ns(parsed), bad, naive
    present = series.notna()
    text = series.astype(str).str.strip()
    sample = text[present].head(2000)
    with_offset = bool(len(sample)) and bool(sample.str.contains(_OFFSET).mean() >= 0.5)
    kwargs = {"errors": "coerce", "dayfirst": dayfirst, "utc": with_offset}
    if datetime_format:
        parsed = pd.to_datetime(text.where(present), format=datetime_format, **kwargs)
    else:
        parsed = pd.to_datetime(text.where(present), **kwargs)
        failed = present & parsed.isna()
        if failed.any():
            # ISO 8601 variants mixed in one column (with and without seconds, 'T' or ' ').
            # Not format="mixed": it would silently read 01/03 month-first and 13/03 day-first.
            retry = pd.to_datetime(text[failed], format="ISO8601", **kwargs)
            parsed = parsed.copy()
            parsed[failed] = retry.astype(parsed.dtype) if len(retry) else retry
    years = parsed.dt.year
    parsed = parsed.where((years >= _MIN_YEAR) & (years <= _MAX_YEAR))
    if not with_offset:
        parsed = in_zone(parsed, zone)
    parsed = parsed.dt.tz_convert("UTC")
    bad = present & parsed.isna()
    return _ns(parsed), bad, not with_offset


def in_zone(wall_clock: pd.Series, zone: str) -> pd.Series:
    """Zoneless local times (naive datetime64) as the moments they are in `zone`. A time the
    clocks skip (spring forward) is the first moment after the jump; a time they repeat (the
    hour they go back) is two moments, so it is missing (NaT), never a guess. The one reading
    of a zoneless time: the files path's and Spark's (`features.spark.read_table`)."""
    return wall_clock.dt.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")


def repeated_clock_times(
    values: pd.Series, bad: pd.Series, timezone: str | None, dayfirst: bool = False
) -> pd.Series:
    """Which of the `bad` values (`parse_timestamps`' mask) are readable local times without a
    zone that `timezone` repeats (the hour the clocks go back): not unreadable, but two moments."""
    repeated = pd.Series(False, index=values.index)
    if timezone is None or not bad.any():
        return repeated
    candidates = values[bad]
    if pd.api.types.is_datetime64_any_dtype(candidates):
        if getattr(candidates.dt, "tz", None) is not None:
            return repeated
        naive = candidates
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            naive = pd.to_datetime(
                candidates.astype(str).str.strip(), errors="coerce", dayfirst=dayfirst
            )
        if getattr(naive.dt, "tz", None) is not None:
            return repeated
    repeated[bad] = (naive.notna() & in_zone(naive, timezone).isna()).to_numpy()
    return repeated


def _ns(series: pd.Series) -> pd.Series:
    return series.astype("datetime64[ns, UTC]")


def dayfirst_helps(series: pd.Series, bad: pd.Series) -> bool:
    """Whether the values that failed look like day-first dates (13/03/2024)."""
    failed = series[bad].astype(str).str.strip().head(200)
    if failed.empty:
        return False
    first = failed.str.extract(r"^(\d{1,2})[/.-]\d{1,2}[/.-]\d{2,4}\b")[0]
    return bool((pd.to_numeric(first, errors="coerce") > 12).mean() >= 0.5)


def bad_value_examples(series: pd.Series, bad: pd.Series) -> tuple[str, ...]:
    """A few offending values with their line numbers."""
    idx = series.index[bad.to_numpy()][:5]
    lines = row_examples(idx)
    return tuple(f"{line}: {series.loc[i]!r}" for line, i in zip(lines, idx))


# --------------------------------------------------------------------------------------------------
# Day-first or month-first

_DAY_MONTH_START = r"^\s*[0-9]{1,2}[/.-][0-9]{1,2}[/.-]"
_DAY_MONTH = r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}\b"


@dataclass(frozen=True)
class DayMonthOrder:
    """What the 03/04/2024-style dates of a column say about their order.

    `day_first`/`month_first`: rows whose date only reads day-first (13/03/2024) or only
    month-first (03/13/2024), with examples; `ambiguous`: every such date reads both ways
    (03/04/2024), with examples.
    """

    day_first: int
    day_first_examples: tuple[str, ...]
    month_first: int
    month_first_examples: tuple[str, ...]
    ambiguous: tuple[str, ...]


def day_month_order(series: pd.Series) -> DayMonthOrder | None:
    """The day/month evidence of a text column of dates; None when it has no dd/mm/yyyy-like
    dates (ISO 8601 and other forms are unambiguous)."""
    if pd.api.types.is_datetime64_any_dtype(series) or not len(series):
        return None
    text = series.dropna().astype(str)
    try:
        starts = pc.match_substring_regex(pa.array(text.array), _DAY_MONTH_START)
        if not pc.any(starts).as_py():  # one vectorised pass: ISO columns stop here
            return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    codes, uniques = pd.factorize(text)
    parts = pd.Series(uniques, dtype="str").str.extract(_DAY_MONTH)
    first = pd.to_numeric(parts[0], errors="coerce").to_numpy()
    second = pd.to_numeric(parts[1], errors="coerce").to_numpy()
    rows = np.bincount(codes, minlength=len(uniques))
    with np.errstate(invalid="ignore"):
        day_only = (first > 12) & (first <= 31) & (second >= 1) & (second <= 12)
        month_only = (second > 12) & (second <= 31) & (first >= 1) & (first <= 12)
        both = (first >= 1) & (first <= 12) & (second >= 1) & (second <= 12)
    dated = day_only | month_only | both
    if not dated.any():
        return None

    def examples(mask: np.ndarray) -> tuple[str, ...]:
        return format_examples(uniques[mask][:5])

    ambiguous: tuple[str, ...] = ()
    if not (day_only | month_only).any():
        ambiguous = examples(both & (first != second))  # 04/04 reads the same both ways
    return DayMonthOrder(
        day_first=int(rows[day_only].sum()),
        day_first_examples=examples(day_only),
        month_first=int(rows[month_only].sum()),
        month_first_examples=examples(month_only),
        ambiguous=ambiguous,
    )
