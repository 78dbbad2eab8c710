"""Reading European exports: numbers with decimal commas, day/month dates, configured fact
columns, and columns that end up with nothing to learn from. Every finding names the file, the
column and the fix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.data.config import DataConfig
from features.data.loading import load_lead_data, unused_columns
from features.data.validation import DataValidationError, Finding
from leadscore.cli import app


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def flat(
    tmp_path: Path, columns: dict[str, list[str]], n: int | None = None, **config
) -> DataConfig:
    """A flat leads file (id, won, the given columns) as a config to load."""
    n = n or len(next(iter(columns.values())))
    frame = pd.DataFrame(
        {"id": [f"L{i}" for i in range(n)], "won": ["oui", "non"] * (n // 2) + ["oui"] * (n % 2)}
    )
    for name, values in columns.items():
        frame[name] = values
    path = tmp_path / "leads.csv"
    frame.to_csv(path, sep=";", index=False)
    return DataConfig(leads=path, label="won", **config).with_overrides(id="id")


def finding(findings: list[Finding], column: str, level: str) -> Finding:
    (found,) = [f for f in findings if f.column == column and f.level == level]
    return found


def errors_of(config: DataConfig) -> list[Finding]:
    with pytest.raises(DataValidationError) as caught:
        load_lead_data(config)
    return caught.value.report.errors


# ---- numbers --------------------------------------------------------------------------------------


def test_decimal_commas_are_detected_with_a_note(tmp_path):
    config = flat(tmp_path, {"Chiffre d'affaires": ["1.234,5", "12,25", "7"],
                             "Visites": ["3", "12", "0"]})  # fmt: skip
    data = load_lead_data(config)
    assert data.attribute_types["Chiffre d'affaires"] == "numeric"
    assert data.leads["Chiffre d'affaires"].tolist() == [1234.5, 12.25, 7.0]
    note = finding(data.report.notes, "Chiffre d'affaires", "note")
    assert note.message == "numbers read with a decimal comma (1.234,5 = 1234.5)"
    assert note.examples == ("'1.234,5'", "'12,25'") and "--decimal" in note.fix
    assert not [f for f in data.report.findings if f.column == "Visites" and "numbers" in f.message]


def test_thousands_commas_with_decimal_points_are_detected(tmp_path):
    data = load_lead_data(flat(tmp_path, {"Revenue": ["1,234.5", "99.5", "2,000,000"]}))
    assert data.leads["Revenue"].tolist() == [1234.5, 99.5, 2_000_000.0]
    note = finding(data.report.notes, "Revenue", "note")
    assert note.message == "numbers read with a decimal point (1,234.5 = 1234.5)"


def test_numbers_that_read_both_ways_are_not_guessed(tmp_path):
    data = load_lead_data(flat(tmp_path, {"Umsatz": ["1,234", "5,678", "12"]}))
    assert data.attribute_types["Umsatz"] == "categorical"  # not numbers, as before: no guess
    warning = finding(data.report.warnings, "Umsatz", "warning")
    assert warning.message == (
        "numbers such as '1,234' are a thousand or a decimal depending on the country: the "
        "column is not read as numbers"
    )
    assert warning.fix == (
        "set 'decimal: \",\"' (--decimal ,) if ',' is the decimal mark, or 'decimal: \".\"' "
        "(--decimal .) if ',' separates thousands"
    )
    config = flat(tmp_path, {"Umsatz": ["1,234", "5,678", "12"]}, decimal=",")
    assert load_lead_data(config).leads["Umsatz"].tolist() == [1.234, 5.678, 12.0]


def test_an_ambiguous_column_follows_the_files_other_numbers(tmp_path):
    config = flat(tmp_path, {"Umsatz": ["1,234", "5,678", "12"], "Zeit": ["0,5", "2,25", "1"]})
    data = load_lead_data(config)
    assert data.leads["Umsatz"].tolist() == [1.234, 5.678, 12.0]
    note = finding(data.report.notes, "Umsatz", "note")
    assert note.message == (
        "numbers such as '1,234' read either way; read with a decimal comma (1.234,5 = 1234.5), "
        "like the file's other numbers"
    )


def test_thousands_points_alone_are_read_as_before_with_a_warning(tmp_path):
    data = load_lead_data(flat(tmp_path, {"Betrag": ["1.500", "2.750", "12"]}))
    assert data.leads["Betrag"].tolist() == [1.5, 2.75, 12.0]
    warning = finding(data.report.warnings, "Betrag", "warning")
    assert warning.message.startswith("numbers such as '1.500' read with a decimal point; if '.' ")
    assert "they are a thousand times too small" in warning.message
    assert "--decimal ," in warning.fix
    confirmed = load_lead_data(flat(tmp_path, {"Betrag": ["1.500", "2.750", "12"]}, decimal="."))
    assert not [f for f in confirmed.report.findings if f.column == "Betrag"]


def test_points_and_commas_mixed_in_a_column(tmp_path):
    data = load_lead_data(flat(tmp_path, {"Score": ["2.5", "2,5", "3"]}))
    assert data.attribute_types["Score"] == "categorical"
    warning = finding(data.report.warnings, "Score", "warning")
    assert warning.message == (
        "numbers are written both with a decimal point and with a decimal comma: the column is "
        "not read as numbers"
    )
    assert warning.examples == ("'2.5'", "'2,5'")


def test_the_configured_format_reads_every_column(tmp_path):
    config = flat(tmp_path, {"A": ["1 234,5", "2"], "B": ["1.5", "2"]}, decimal=",", thousands=" ")
    data = load_lead_data(config)
    assert data.leads["A"].tolist() == [1234.5, 2.0]
    assert data.attribute_types["B"] == "categorical"  # 1.5 is no number with a decimal comma
    assert not [f for f in data.report.findings if "decimal" in f.message]


def test_touchpoint_values_and_outcome_amounts_with_decimal_commas(tmp_path):
    leads = write(tmp_path / "l.csv", "lead_id;created_at\nA;2024-01-01\nB;2024-01-02\n")
    tp = write(
        tmp_path / "t.csv",
        "lead_id;occurred_at;channel;activity;value\nA;2024-01-02;Email;Email Opened;1,5\n"
        "B;2024-01-03;Email;Email Opened;12\n",
    )
    out = write(
        tmp_path / "o.csv",
        "lead_id;closed_at;won;amount\nA;2024-02-01;gagné;22.400,50\nB;2024-02-02;perdu;900\n",
    )
    data = load_lead_data(DataConfig(leads=leads, touchpoints=tp, outcomes=out))
    assert data.touchpoints["value"].tolist() == [1.5, 12.0]
    assert data.outcomes["amount"].tolist() == [22400.5, 900.0]
    assert data.outcomes["won"].tolist() == [True, False]
    assert finding(data.report.notes, "amount", "note").examples == ("'22.400,50'",)


# ---- day and month --------------------------------------------------------------------------------


def timestamped(tmp_path: Path, dates: list[str], **config) -> DataConfig:
    rows = "".join(f"L{i};{d}\n" for i, d in enumerate(dates))
    return DataConfig(leads=write(tmp_path / "leads.csv", "lead_id;created_at\n" + rows), **config)


def test_day_first_dates_are_an_error_even_when_most_read_month_first(tmp_path):
    # 2 of 40 dates only read day-first: month-first would silently swap the other 38
    dates = [f"{d:02d}/{m:02d}/2024" for m in range(1, 11) for d in range(1, 5)][:38]
    config = timestamped(tmp_path, dates + ["13/03/2024", "25/12/2024"])
    (error,) = errors_of(config)
    assert error.column == "created_at" and error.rows == 2
    assert error.message == (
        "5% of created_at timestamps cannot be read as dates month-first (the default): the dates "
        "are day-first, so reading them month-first would swap day and month in the others"
    )
    assert error.examples == ("'13/03/2024'", "'25/12/2024'")
    assert error.fix == "set 'dayfirst: true' in the config or pass --dayfirst"
    data = load_lead_data(timestamped(tmp_path, dates + ["13/03/2024"], dayfirst=True))
    assert data.leads["created_at"].iloc[1] == pd.Timestamp("2024-01-02", tz="UTC")
    assert data.leads["created_at"].iloc[-1] == pd.Timestamp("2024-03-13", tz="UTC")


def test_dates_that_read_both_ways_are_a_warning_naming_the_fix(tmp_path):
    data = load_lead_data(timestamped(tmp_path, ["03/04/2024", "05/06/2024", "07/07/2024"]))
    (warning,) = [w for w in data.report.warnings if "day-first" in w.message]
    assert warning.column == "created_at"
    assert warning.message == (
        "every created_at date reads both day-first and month-first; read month-first (MM/DD/YYYY)"
    )
    assert warning.examples == ("'03/04/2024'", "'05/06/2024'")
    assert "--dayfirst" in warning.fix and "'dayfirst: false' (--no-dayfirst)" in warning.fix
    assert data.leads["created_at"][0] == pd.Timestamp("2024-03-04", tz="UTC")
    confirmed = load_lead_data(timestamped(tmp_path, ["03/04/2024", "05/06/2024"], dayfirst=False))
    assert not [w for w in confirmed.report.warnings if "day-first" in w.message]


def test_month_first_dates_with_dayfirst_set(tmp_path):
    (error,) = errors_of(timestamped(tmp_path, ["03/04/2024", "12/31/2024"], dayfirst=True))
    assert error.message == (
        "50% of created_at timestamps cannot be read as dates day-first (dayfirst: true): the "
        "dates are month-first"
    )
    assert error.examples == ("'12/31/2024'",)
    assert error.fix == "remove 'dayfirst: true' from the config, or pass --no-dayfirst"


def test_day_first_and_month_first_mixed(tmp_path):
    (error,) = errors_of(timestamped(tmp_path, ["13/04/2024", "12/31/2024", "01/01/2024"]))
    assert error.message == "created_at dates are written both day-first and month-first"
    assert error.examples == ("'13/04/2024'", "'12/31/2024'")
    assert "ISO 8601" in error.fix


def test_iso_dates_and_a_datetime_format_are_not_questioned(tmp_path):
    data = load_lead_data(timestamped(tmp_path, ["2024-03-04", "2024-05-06T10:00:00Z"]))
    assert not [f for f in data.report.findings if "day-first" in f.message]
    config = timestamped(tmp_path, ["03/04/2024", "05/06/2024"], datetime_format="%d/%m/%Y")
    data = load_lead_data(config)
    assert data.leads["created_at"][0] == pd.Timestamp("2024-04-03", tz="UTC")
    assert not [f for f in data.report.findings if "day-first" in f.message]


def test_a_date_attribute_that_is_day_first(tmp_path):
    dates = ["01/02/2024", "13/02/2024", "05/03/2024", "28/03/2024"]
    (error,) = errors_of(flat(tmp_path, {"Date de création": dates}))
    assert error.column == "Date de création" and error.rows == 2
    assert error.message.startswith("50% of 'Date de création' timestamps cannot be read as dates")
    data = load_lead_data(flat(tmp_path, {"Date de création": dates}, dayfirst=True))
    assert data.attribute_types["Date de création"] == "datetime"
    assert data.leads["Date de création"][1] == pd.Timestamp("2024-02-13", tz="UTC")


# ---- configured fact columns ----------------------------------------------------------------------


def test_configured_fact_columns_are_checked(tmp_path):
    config = flat(
        tmp_path,
        {"Liste rouge": ["Oui", "peut-être", "Non", "non"], "Bloqué": ["oui", "non"] * 2},
        do_not_contact_columns=["liste rouge", "Bloqué", "Opposition"],
        demo_request_columns=["Démo"],
        exclude=["Bloqué"],
    )
    data = load_lead_data(config)
    warnings = {w.message: w for w in data.report.warnings}
    values = warnings[
        "values of the do-not-contact column that are not yes/no: the hard rule does not count "
        "them as yes"
    ]
    assert values.column == "Liste rouge" and values.examples == ("'peut-être'",)
    assert values.rows == 1
    absent = warnings[
        "do-not-contact columns named under 'do_not_contact_columns' are not in the file"
    ]
    assert absent.examples == ("'Opposition'",)
    assert warnings["demo-request columns named under 'demo_request_columns' are not in the file"]
    excluded = warnings[
        "the do-not-contact column is also under 'exclude:', so the hard rule cannot read it"
    ]
    assert excluded.column == "Bloqué" and "remove 'Bloqué' from 'exclude:'" in excluded.fix


# ---- columns with nothing to learn from -----------------------------------------------------------


def test_a_column_with_no_readable_value_is_left_out_with_a_warning(tmp_path):
    config = flat(tmp_path, {"Score": ["high", "low", "high", "n/a"], "Source": list("abab")},
                  types={"Score": "numeric"})  # fmt: skip
    data = load_lead_data(config)
    assert "Score" not in data.attribute_types and "Score" not in data.leads
    (warning,) = [
        w for w in data.report.warnings if w.column == "Score" and "no value" in w.message
    ]
    assert warning.message == "no value can be read as numeric: the column is empty and is not used"
    assert warning.examples == ("'high'", "'low'") and warning.rows == 3
    assert warning.fix == "fix the values, or set 'types: {Score: categorical}' in the config"
    assert [f.column for f in unused_columns(data.report)] == ["Score"]


def test_a_constant_column_is_no_feature_but_stays_for_the_rules(tmp_path):
    config = flat(tmp_path, {"Ne pas contacter": ["Oui"] * 4, "Magazine": ["No", "No", None, "No"],
                             "Source": list("abab")})  # fmt: skip
    data = load_lead_data(config)
    assert list(data.attribute_types) == ["Magazine", "Source"]  # Magazine: 'No' or missing
    assert data.leads["Ne pas contacter"].tolist() == [True] * 4  # the hard rule still reads it
    warning = finding(data.report.warnings, "Ne pas contacter", "warning")
    assert warning.message == "column has the same value in every row and is not used as a feature"
    assert warning.examples == ("'Oui'",)


def test_validate_names_the_columns_it_leaves_out(tmp_path):
    config = flat(tmp_path, {"Score": ["high", "low"] * 2, "Pays": ["France"] * 4},
                  types={"Score": "numeric"})  # fmt: skip
    result = CliRunner().invoke(
        app, ["validate", "--leads", str(config.leads.path), "--id", "id", "--label", "won",
              "--type", "Score=numeric"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    path = config.leads.path
    assert (
        f"WARNING {path}, column 'Score': no value can be read as numeric: the column is empty "
        "and is not used (4 rows)"
    ) in result.output
    assert "column 'Pays': column has the same value in every row and is not used" in result.output


def test_a_column_with_a_value_in_a_few_rows_is_a_warning_as_in_train(tmp_path):
    """`validate` said "the data can be used" about a column with a value in 2 of 300 rows, then
    `train` set it aside for the models fitted on rows without any (issue 12): both say so."""
    rare = [None] * 300
    rare[5], rare[200] = "3", "7"
    config = flat(tmp_path, {"rare": rare, "some": ["1"] * 20 + [None] * 280,
                             "Source": list("abc") * 100})  # fmt: skip
    data = load_lead_data(config)
    warning = finding(data.report.warnings, "rare", "warning")
    assert warning.message == (
        "column has a value in only 2 of 300 rows: too few to learn from; a model fitted on rows "
        "where it has none leaves it out (train says which)"
    )
    assert warning.rows == 2 and warning.examples == ("'3'", "'7'")
    assert warning.fix == (
        "more rows with a value would let the model learn from it; to silence this, add it to "
        "'exclude:'"
    )
    assert "rare" in data.attribute_types  # still used where it has values
    assert unused_columns(data.report) == []
    # 20 of 300 rows is enough, and a small file is not warned about its every column
    assert not [w for w in data.report.warnings if w.column in ("some", "Source")]
    small = load_lead_data(flat(tmp_path, {"Magazine": ["No", "No", None, "Yes"]}))
    assert not [w for w in small.report.warnings if "only" in w.message]
