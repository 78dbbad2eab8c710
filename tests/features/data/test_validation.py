"""Every error a user can cause with their files: the message names the file, the column, how many
rows, a few examples and the fix. The CLI prints the report and exits non-zero, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.data.validation import DataValidationError, Finding, ValidationReport
from leadscore.cli import app

LEADS = (
    "lead_id,created_at,industry\nL1,2024-01-01 09:00:00,Software\nL2,2024-01-02 10:00:00,Retail\n"
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def errors_of(config: DataConfig) -> list[Finding]:
    with pytest.raises(DataValidationError) as caught:
        load_lead_data(config)
    errors = caught.value.report.errors
    assert errors, "DataValidationError without errors"
    return errors


def only_error(config: DataConfig) -> Finding:
    errors = errors_of(config)
    assert len(errors) == 1, [e.to_text() for e in errors]
    return errors[0]


def leads_csv(tmp_path: Path, text: str = LEADS, name: str = "leads.csv") -> Path:
    return write(tmp_path / name, text)


# ---- files ----------------------------------------------------------------------------------------


def test_file_not_found_names_the_file_and_the_option(tmp_path):
    error = only_error(DataConfig(leads=tmp_path / "missing.csv"))
    assert error.message == "leads file not found"
    assert error.file.endswith("missing.csv")
    assert "--leads" in error.fix


def test_touchpoints_file_not_found_says_which_table(tmp_path):
    error = only_error(DataConfig(leads=leads_csv(tmp_path), touchpoints=tmp_path / "tp.csv"))
    assert error.message == "touchpoints file not found" and "--touchpoints" in error.fix


def test_unsupported_extension(tmp_path):
    error = only_error(DataConfig(leads=write(tmp_path / "leads.json", "[]")))
    assert error.message == "unsupported file type '.json'"
    assert ".csv" in error.fix and ".parquet" in error.fix


def test_excel_workbook_is_refused_with_export_instructions(tmp_path):
    error = only_error(DataConfig(leads=write(tmp_path / "leads.xlsx", b"PK\x03\x04junk")))
    assert error.message == "Excel workbooks are not read"
    assert "CSV UTF-8" in error.fix


def test_excel_file_renamed_to_csv(tmp_path):
    error = only_error(DataConfig(leads=write(tmp_path / "leads.csv", b"PK\x03\x04\x00\x00junk")))
    assert "not a CSV text file" in error.message


def test_empty_file(tmp_path):
    error = only_error(DataConfig(leads=write(tmp_path / "leads.csv", "")))
    assert error.message == "file is empty (0 bytes)"
    assert error.file.endswith("leads.csv")


def test_header_without_rows(tmp_path):
    error = only_error(DataConfig(leads=write(tmp_path / "leads.csv", "lead_id,created_at\n")))
    assert error.message == "file has a header but no rows"
    assert "'lead_id'" in error.examples


def test_corrupt_parquet(tmp_path):
    error = only_error(DataConfig(leads=write(tmp_path / "leads.parquet", b"not parquet at all")))
    assert error.message.startswith("could not read as Parquet")


def test_wrong_delimiter_given_explicitly(tmp_path):
    path = write(tmp_path / "leads.csv", LEADS.replace(",", ";"))
    config = DataConfig(leads={"path": path, "delimiter": ","})
    error = only_error(config)
    assert error.message.startswith("wrong delimiter: with comma the header is one column")
    assert "semicolon-separated" in error.message
    assert "delimiter: ';'" in error.fix


def test_semicolon_file_is_sniffed_with_a_note(tmp_path):
    path = write(tmp_path / "leads.csv", LEADS.replace(",", ";"))
    data = load_lead_data(DataConfig(leads=path))
    assert data.leads["industry"].tolist() == ["Software", "Retail"]
    assert any(n.message == "read as semicolon-separated" for n in data.report.notes)


def test_wrong_encoding_given_explicitly(tmp_path):
    text = "lead_id,created_at,city\nL1,2024-01-01,Zürich\n"
    path = write(tmp_path / "leads.csv", text.encode("cp1252"))
    error = only_error(DataConfig(leads={"path": path, "encoding": "utf-8"}))
    assert error.message.startswith("the file is not utf-8: byte b'\\xfc'")
    assert "encoding: cp1252" in error.fix


def test_cp1252_file_is_read_with_a_warning(tmp_path):
    text = "lead_id,created_at,city\nL1,2024-01-01,Zürich\n"
    path = write(tmp_path / "leads.csv", text.encode("cp1252"))
    data = load_lead_data(DataConfig(leads=path))
    assert data.leads["city"].tolist() == ["Zürich"]
    assert any("not UTF-8; read as cp1252" in w.message for w in data.report.warnings)


def test_utf16_file_with_bom_is_read(tmp_path):
    path = write(tmp_path / "leads.csv", LEADS.encode("utf-16"))
    data = load_lead_data(DataConfig(leads=path))
    assert data.leads["lead_id"].tolist() == ["L1", "L2"]


def test_unknown_encoding_name(tmp_path):
    error = only_error(DataConfig(leads={"path": leads_csv(tmp_path), "encoding": "klingon"}))
    assert error.message == "unknown encoding 'klingon'"


def test_ragged_csv_lines(tmp_path):
    text = LEADS + "L3,2024-01-03 10:00:00,Software, Inc,extra\n"
    error = only_error(DataConfig(leads=write(tmp_path / "leads.csv", text)))
    assert error.message.startswith("the file is not consistent CSV")
    assert "quoted" in error.fix


# ---- columns and rows -----------------------------------------------------------------------------


def test_missing_id_column_suggests_the_close_match(tmp_path):
    path = write(tmp_path / "leads.csv", LEADS.replace("lead_id", "Lead ID"))
    error = only_error(DataConfig(leads=path))
    assert error.message == "required lead id column 'lead_id' is missing"
    assert error.column == "lead_id"
    assert "did you mean 'Lead ID'?" in error.fix and "--id" in error.fix
    assert "'Lead ID'" in error.examples  # the file's columns


def test_missing_created_at_column(tmp_path):
    path = write(tmp_path / "leads.csv", "lead_id,industry\nL1,Software\n")
    error = only_error(DataConfig(leads=path))
    assert error.message == "required created at column 'created_at' is missing"
    assert "--created-at" in error.fix


def test_missing_touchpoint_columns_each_reported(tmp_path):
    tp = write(tmp_path / "tp.csv", "lead_id,when,channel\nL1,2024-01-05,Email\n")
    errors = errors_of(DataConfig(leads=leads_csv(tmp_path), touchpoints=tp))
    messages = {e.message for e in errors}
    assert messages == {
        "required occurred at column 'occurred_at' is missing",
        "required activity column 'activity' is missing",
    }
    assert all("touchpoints: {" in e.fix for e in errors)


def test_duplicate_lead_ids(tmp_path):
    text = LEADS + "L1,2024-01-03 10:00:00,Media\nL2,2024-01-04 10:00:00,Media\n"
    error = only_error(DataConfig(leads=write(tmp_path / "leads.csv", text)))
    assert error.message == "lead ids are not unique: 2 ids appear more than once"
    assert error.rows == 4 and error.column == "lead_id"
    assert error.examples == ("'L1'", "'L2'")
    assert "remove the duplicate rows" in error.fix


def test_unparseable_timestamps_are_an_error_when_common(tmp_path):
    text = "lead_id,created_at\nL1,2024-01-01\nL2,yesterday\nL3,2024-13-45\nL4,2024-01-04\n"
    error = only_error(DataConfig(leads=write(tmp_path / "leads.csv", text)))
    assert error.message == "50% of created_at timestamps cannot be read as dates"
    assert error.rows == 2 and error.column == "created_at"
    assert error.examples == ("row 2: 'yesterday'", "row 3: '2024-13-45'")
    assert "ISO 8601" in error.fix


def test_day_first_dates_get_a_day_first_hint(tmp_path):
    rows = "".join(f"L{d},{d:02d}/03/2024 10:00\n" for d in range(1, 21))
    error = only_error(
        DataConfig(leads=write(tmp_path / "leads.csv", "lead_id,created_at\n" + rows))
    )
    assert "cannot be read as dates" in error.message
    assert "dayfirst: true" in error.fix
    data = load_lead_data(DataConfig(leads=tmp_path / "leads.csv", dayfirst=True))
    assert data.leads["created_at"].iloc[0] == pd.Timestamp("2024-03-01 10:00", tz="UTC")
    assert data.leads["created_at"].iloc[-1] == pd.Timestamp("2024-03-20 10:00", tz="UTC")


def test_a_few_unparseable_timestamps_are_dropped_with_a_warning(tmp_path):
    rows = "".join(f"L{i},2024-01-{i % 28 + 1:02d} 10:00\n" for i in range(40)) + "L99,soon\n"
    data = load_lead_data(
        DataConfig(leads=write(tmp_path / "leads.csv", "lead_id,created_at\n" + rows))
    )
    assert len(data.leads) == 40 and "L99" not in set(data.leads["lead_id"])
    (warning,) = [w for w in data.report.warnings if "cannot be read" in w.message]
    assert warning.rows == 1 and warning.examples == ("row 41: 'soon'",)
    assert data.report.tables["leads"] == {
        "file": str(tmp_path / "leads.csv"),
        "rows_read": 41,
        "rows_kept": 40,
    }


def test_touchpoints_for_unknown_leads_are_dropped_with_a_warning(tmp_path):
    tp = write(
        tmp_path / "tp.csv",
        "lead_id,occurred_at,channel,activity\nL1,2024-01-05,Email,Email Opened\n"
        "L9,2024-01-06,Email,Email Opened\n",
    )
    data = load_lead_data(DataConfig(leads=leads_csv(tmp_path), touchpoints=tp))
    assert data.touchpoints["lead_id"].tolist() == ["L1"]
    (warning,) = [w for w in data.report.warnings if "not in the leads file" in w.message]
    assert warning.rows == 1 and warning.examples == ("'L9'",)
    assert data.report.tables["touchpoints"]["rows_kept"] == 1


def test_touchpoints_matching_no_lead_is_an_error(tmp_path):
    tp = write(
        tmp_path / "tp.csv",
        "lead_id,occurred_at,channel,activity\n1001,2024-01-05,Email,Email Opened\n",
    )
    error = only_error(DataConfig(leads=leads_csv(tmp_path), touchpoints=tp))
    assert error.message == "none of the touchpoints' lead ids are in the leads file"
    assert error.examples == ("'1001'",)
    assert "map the same id in both files" in error.fix


def test_outcomes_before_the_lead_was_created_is_an_error_when_common(tmp_path):
    out = write(
        tmp_path / "out.csv",
        "lead_id,closed_at,won\nL1,2023-12-01 00:00:00,true\nL2,2024-02-01 00:00:00,false\n",
    )
    error = only_error(DataConfig(leads=leads_csv(tmp_path), outcomes=out))
    assert error.message == "50% of outcomes are dated before their lead was created"
    assert error.examples == ("L1: created 2024-01-01 09:00, closed 2023-12-01 00:00",)
    assert "time zone" in error.fix


def test_an_occasional_outcome_before_creation_is_dropped_with_a_warning(tmp_path):
    leads = "lead_id,created_at\n" + "".join(f"L{i},2024-01-01\n" for i in range(30))
    outcomes = "lead_id,closed_at,won\n" + "".join(f"L{i},2024-03-01,no\n" for i in range(1, 30))
    outcomes += "L0,2023-06-01,yes\n"
    data = load_lead_data(
        DataConfig(
            leads=write(tmp_path / "l.csv", leads), outcomes=write(tmp_path / "o.csv", outcomes)
        )
    )
    assert len(data.outcomes) == 29 and not data.outcomes["won"].any()
    assert any(
        "before their lead was created were dropped" in w.message for w in data.report.warnings
    )


def test_label_that_is_not_binary(tmp_path):
    text = "id,Stage\nA,Won\nB,Lost\nC,Nurture\nD,Won\n"
    error = only_error(
        DataConfig(leads=write(tmp_path / "flat.csv", text), label="Stage").with_overrides(id="id")
    )
    assert error.message == "label is not binary: 3 distinct values, 1 not readable as yes/no"
    assert error.examples == ("'Won' (2 rows)", "'Lost' (1 rows)", "'Nurture' (1 rows)")
    assert "--positive" in error.fix


def test_positive_value_makes_a_label_binary(tmp_path):
    text = "id,Stage\nA,Won\nB,Lost\nC,Nurture\nD,Won\n"
    config = DataConfig(leads=write(tmp_path / "flat.csv", text), label="Stage", positive="Won")
    data = load_lead_data(config.with_overrides(id="id"))
    assert data.label.tolist() == [1, 0, 0, 1]


def test_positive_value_that_never_occurs(tmp_path):
    text = "id,Stage\nA,Won\nB,Lost\n"
    config = DataConfig(
        leads=write(tmp_path / "flat.csv", text), label="Stage", positive="Closed Won"
    )
    error = only_error(config.with_overrides(id="id"))
    assert error.message == "no row has the positive label value 'Closed Won'"
    assert error.examples == ("'Won'", "'Lost'")


def test_won_column_that_is_not_binary(tmp_path):
    out = write(
        tmp_path / "out.csv", "lead_id,closed_at,won\nL1,2024-02-01,maybe\nL2,2024-02-01,yes\n"
    )
    error = only_error(DataConfig(leads=leads_csv(tmp_path), outcomes=out))
    assert error.message == "won is not binary: 2 distinct values, 1 not readable as yes/no"
    assert error.column == "won"


def test_flat_mode_cannot_take_outcomes(tmp_path):
    config = DataConfig(leads=leads_csv(tmp_path), label="industry", outcomes=tmp_path / "o.csv")
    error = only_error(config)
    assert error.message.startswith("a label column (flat mode) cannot be combined")


def test_unknown_time_zone(tmp_path):
    error = only_error(DataConfig(leads=leads_csv(tmp_path), timezone="Mars/Olympus"))
    assert error.message == "unknown time zone 'Mars/Olympus'"
    assert "Europe/Berlin" in error.fix


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_local_time_the_clocks_repeat_is_dropped_with_a_warning(tmp_path, kind):
    """In Berlin 02:30 on 2026-10-25 happened twice (CEST, then CET): no moment is right. A
    zoneless Parquet timestamp there was kept with no moment and no finding; text was called
    unreadable and told to use ISO 8601, which it was."""
    moments = ["2026-10-25 01:30", "2026-10-25 02:30", "2026-10-25 03:30"]
    frame = pd.DataFrame({"lead_id": ["L1", "L1", "L2"], "occurred_at": moments,
                          "channel": "email", "activity": "email_open"})  # fmt: skip
    if kind == "parquet":
        frame["occurred_at"] = pd.to_datetime(frame["occurred_at"])  # zoneless timestamps
        tp = tmp_path / "tp.parquet"
        frame.to_parquet(tp)
    else:
        tp = write(tmp_path / "tp.csv", frame.to_csv(index=False))
    data = load_lead_data(
        DataConfig(leads=leads_csv(tmp_path), touchpoints=tp, timezone="Europe/Berlin")
    )
    assert data.touchpoints["occurred_at"].tolist() == [
        pd.Timestamp("2026-10-24 23:30", tz="UTC"),  # 01:30 CEST
        pd.Timestamp("2026-10-25 02:30", tz="UTC"),  # 03:30 CET
    ]
    (warning,) = [w for w in data.report.warnings if w.column == "occurred_at"]
    assert warning.rows == 1
    assert "clocks go back in Europe/Berlin" in warning.message and "dropped" in warning.message
    assert "02:30" in warning.examples[0]
    assert "UTC offset" in warning.fix
    assert not [w for w in data.report.warnings if "cannot be read" in w.message]


def test_unknown_channels_become_other_with_a_warning(tmp_path):
    tp = write(
        tmp_path / "tp.csv",
        "lead_id,occurred_at,channel,activity\nL1,2024-01-05,Carrier Pigeon,visit\n"
        "L2,2024-01-05,Google Ads,visit\n",
    )
    data = load_lead_data(DataConfig(leads=leads_csv(tmp_path), touchpoints=tp))
    assert data.touchpoints["channel"].tolist() == ["other", "paid_search"]
    (warning,) = [w for w in data.report.warnings if "channel" in w.message]
    assert warning.message == "unrecognised channel values read as 'other'"
    assert warning.examples == ("'Carrier Pigeon' (1 rows)",)
    assert "channel_map" in warning.fix


def test_several_errors_are_all_reported_at_once(tmp_path):
    text = "lead_id,created_at\nL1,2024-01-01\nL1,someday\n"
    errors = errors_of(DataConfig(leads=write(tmp_path / "leads.csv", text)))
    assert {e.message.split(":")[0] for e in errors} == {
        "lead ids are not unique",
        "50% of created_at timestamps cannot be read as dates",
    }


# ---- config files ---------------------------------------------------------------------------------


def test_config_file_not_found(tmp_path):
    with pytest.raises(DataValidationError) as caught:
        DataConfig.from_yaml(tmp_path / "nope.yaml")
    assert "config file" in str(caught.value) and "not found" in str(caught.value)


def test_config_with_an_unknown_key_names_it(tmp_path):
    path = write(tmp_path / "c.yaml", "leads: leads.csv\nlabell: Converted\n")
    with pytest.raises(DataValidationError) as caught:
        DataConfig.from_yaml(path)
    (error,) = caught.value.report.errors
    assert error.column == "labell" and "Extra inputs are not permitted" in error.message


def test_config_that_is_not_yaml(tmp_path):
    path = write(tmp_path / "c.yaml", "leads: [unclosed\n")
    with pytest.raises(DataValidationError) as caught:
        DataConfig.from_yaml(path)
    assert caught.value.report.errors[0].message.startswith("config file is not valid YAML")


def test_config_type_override_with_a_bad_type(tmp_path):
    path = write(tmp_path / "c.yaml", "leads: leads.csv\ntypes: {industry: text}\n")
    with pytest.raises(DataValidationError) as caught:
        DataConfig.from_yaml(path)
    (error,) = caught.value.report.errors
    assert error.column == "types.industry" and "'categorical'" in error.message


def test_channel_map_to_an_unknown_channel():
    with pytest.raises(ValueError, match="channel_map maps to unknown channels \\['carrier'\\]"):
        DataConfig(leads="x.csv", channel_map={"Pigeon": "carrier"})


# ---- the report and the CLI -----------------------------------------------------------------------


def test_report_text_and_dict():
    report = ValidationReport()
    report.error(
        "lead ids are not unique",
        file="a.csv",
        column="id",
        rows=3,
        examples=["'x'"],
        fix="remove them",
    )
    report.warning("placeholder values read as missing", file="a.csv", column="city", rows=1)
    text = report.to_text()
    assert "ERROR a.csv, column 'id': lead ids are not unique (3 rows)" in text
    assert "    examples: 'x'" in text and "    fix: remove them" in text
    assert text.splitlines()[-1] == "1 error(s), 1 warning(s): fix the errors above and run again."
    as_dict = report.to_dict()
    assert as_dict["ok"] is False and as_dict["errors"] == 1 and as_dict["warnings"] == 1
    assert json.loads(json.dumps(as_dict))["findings"][0]["examples"] == ["'x'"]


def test_cli_validate_prints_the_report_and_exits_non_zero(tmp_path):
    text = LEADS + "L1,2024-01-03 10:00:00,Media\n"
    path = write(tmp_path / "leads.csv", text)
    result = CliRunner().invoke(app, ["validate", "--leads", str(path)])
    assert result.exit_code == 1
    assert "ERROR" in result.output and "lead ids are not unique" in result.output
    assert "Traceback" not in result.output


def test_cli_validate_json(tmp_path):
    result = CliRunner().invoke(app, ["validate", "--leads", str(tmp_path / "none.csv"), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert report["findings"][0]["message"] == "leads file not found"


def test_cli_validate_good_data_exits_zero(tmp_path):
    path = leads_csv(tmp_path)
    result = CliRunner().invoke(app, ["validate", "--leads", str(path), "--timezone", "UTC"])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


def test_cli_validate_maps_columns_with_options(tmp_path):
    text = "Prospect ID,Converted,Source\np1,1,Web\np2,0,Event\np3,1,Web\n"
    path = write(tmp_path / "flat.csv", text)
    result = CliRunner().invoke(
        app, ["validate", "--leads", str(path), "--id", "Prospect ID", "--label", "Converted"]
    )
    assert result.exit_code == 0, result.output
    assert "3 rows read, 3 kept" in result.output


def test_cli_validate_bad_config_file(tmp_path):
    path = write(tmp_path / "c.yaml", "leads: x.csv\nnonsense: 1\n")
    result = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 1
    assert "nonsense" in result.output and "Traceback" not in result.output


def test_cli_validate_needs_some_input():
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "pass --leads PATH" in result.output


def test_optional_touchpoint_columns_may_be_absent_unless_mapped(tmp_path):
    tp = write(
        tmp_path / "tp.csv",
        "lead_id,occurred_at,channel,activity\nL1,2024-01-05T00:00:00Z,Email,Email Opened\n",
    )
    leads = leads_csv(tmp_path)
    result = CliRunner().invoke(
        app, ["validate", "--leads", str(leads), "--touchpoints", str(tp), "--id", "lead_id"]
    )
    assert result.exit_code == 0, result.output
    config = DataConfig(leads=leads, touchpoints={"path": tp, "campaign": "Campaign Name"})
    error = only_error(config)
    assert error.message == "required campaign column 'Campaign Name' is missing"
