"""`leadscore report funnel` on CSV files of the hand-made funnel."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from tests.features.report import handmade as h

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name in ("leads", "touchpoints", "outcomes", "scores"):
        paths[name] = tmp_path / f"{name}.csv"
        getattr(h, name)().to_csv(paths[name], index=False)
    return paths


def run(files: dict[str, Path], *options: str):
    arguments = ["report", "funnel"]
    for name in ("leads", "touchpoints", "outcomes"):
        arguments += [f"--{name}", str(files[name])]
    return runner.invoke(app, [*arguments, *options])


def test_table_by_channel(files):
    result = run(files)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Funnel by channel (first touch attribution), all leads"
    email = next(line for line in lines if line.startswith("email "))
    assert email.split() == [
        "email", "3", "1", "1", "1", "50.0%", "9.5-90.5%", "1,000", "1,000", "20.0", "20.0"
    ]  # fmt: skip
    assert "Traceback" not in result.output


def test_json_by_channel_under_linear_attribution(files):
    result = run(files, "--attribution", "linear", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["by"], data["attribution"]) == ("channel", "linear")
    email = next(r for r in data["rows"] if r["channel"] == "email")
    assert email["leads"] == pytest.approx(11 / 3)
    assert email["won"] == pytest.approx(7 / 6)
    assert email["revenue_won"] == pytest.approx(2 / 3 * 1000 + 1000)
    assert data["total"]["leads"] == pytest.approx(8)


def test_csv_by_attribute_to_a_file(files, tmp_path):
    out = tmp_path / "reports" / "industry.csv"
    result = run(files, "--by", "industry", "--format", "csv", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"wrote the funnel by industry (3 groups) to {out}" in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["industry"], r["leads"], r["won"]) for r in rows] == [
        ("Software", "4", "1"), ("Retail", "3", "3"), ("(missing)", "1", "0"), ("(total)", "8", "4")
    ]  # fmt: skip


def test_from_and_to_take_whole_days(files):
    # --to 2024-01-15 includes L7, created on 15 January at 09:00.
    result = run(files, "--by", "week", "--from", "2024-01-08", "--to", "2024-01-15",
                 "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["from"], data["to"]) == ("2024-01-08T00:00:00+00:00", "2024-01-16T00:00:00+00:00")
    # L7 (15 January) is in, L8 (16 January) is not.
    assert [(r["week"], r["leads"]) for r in data["rows"]] == [("2024-01-08", 3), ("2024-01-15", 1)]
    assert data["total"]["leads"] == 4


def test_grades_from_a_scores_file(files):
    result = run(files, "--by", "grade", "--scores", str(files["scores"]), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["grade"]: r for r in json.loads(result.stdout)["rows"]}
    assert (rows["A"]["leads"], rows["A"]["sent_to_sales"], rows["A"]["won"]) == (3, 3, 3)
    assert rows["(not scored)"]["leads"] == 1


def test_a_data_error_names_the_file_and_the_column(files):
    h.outcomes().rename(columns={"won": "stage"}).to_csv(files["outcomes"], index=False)
    result = run(files)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        f"ERROR {files['outcomes']}, column 'won': required won column 'won' is missing"
        in result.stderr
    )
    assert "'stage'" in result.stderr  # the file's columns, to map it with a config
    assert "Traceback" not in result.output


def test_a_scores_file_without_lead_ids_names_the_file_and_the_column(files):
    h.scores().rename(columns={"lead_id": "id"}).to_csv(files["scores"], index=False)
    result = run(files, "--by", "grade", "--scores", str(files["scores"]))
    assert result.exit_code == 1
    assert (
        f"ERROR {files['scores']}, column 'lead_id': required lead id column 'lead_id' is missing"
        in result.stderr
    )


def test_unknown_by_names_the_option_and_the_accepted_values(files):
    result = run(files, "--by", "chanel")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "error: --by: 'chanel' is neither a grouping nor a lead attribute column; accepted: "
        "channel, campaign, week, grade, score_band, decision, or a lead attribute: 'industry'"
    )


def test_unknown_attribution_names_the_option_and_the_rules(files):
    result = run(files, "--attribution", "u_shaped")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "error: --attribution: 'u_shaped' is not an attribution rule; accepted: first_touch, "
        "last_touch, linear"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--by", "grade"], "error: --by: grouping by grade needs scores with a 'grade' column"),
        (["--from", "soon"], "error: --from: 'soon' is not a date: write YYYY-MM-DD"),
        (["--from", "2024-02-01", "--to", "2024-01-01"], "error: --to: end "),
        (["--format", "xml"], "'xml' is not one of 'table', 'json', 'csv'"),
    ],
)
def test_other_options_the_report_cannot_follow(files, options, message):
    result = run(files, *options)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.replace("│", " ").split())  # rich may wrap it


def test_needs_the_leads():
    result = runner.invoke(app, ["report", "funnel"])
    assert result.exit_code == 2
    assert "error: pass --leads PATH (with --touchpoints and --outcomes) or --config FILE" in (
        result.stderr
    )


def test_a_config_file_maps_the_columns(files, tmp_path):
    h.leads().rename(columns={"lead_id": "Lead ID", "created_at": "Created"}).to_csv(
        files["leads"], index=False
    )
    config = tmp_path / "mapping.yaml"
    config.write_text(
        "leads: {path: leads.csv, lead_id: Lead ID, created_at: Created}\n"
        "touchpoints: touchpoints.csv\noutcomes: outcomes.csv\n"
    )
    result = runner.invoke(app, ["report", "funnel", "--config", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"]["won"] == 4
