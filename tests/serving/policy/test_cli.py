"""`leadscore policy ...` against a database, checked against the hand-counted 10-lead holdout
(see tests/serving/policy_support.py)."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from serving.policy import cli as policy_cli
from tests.serving.policy_support import LABELS, PROBABILITIES

runner = CliRunner()


@pytest.fixture
def env(tmp_path, database_url, no_registry, monkeypatch):
    monkeypatch.setenv("LEADSCORE_DATABASE_URL", database_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", no_registry)
    # wide enough that no message wraps inside a file's path (pytest-xdist's workers say 80)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def holdout_csv(tmp_path):
    path = tmp_path / "holdout.csv"
    path.write_text(
        "probability,label\n" + "".join(f"{p},{y}\n" for p, y in zip(PROBABILITIES, LABELS))
    )
    return path


def run(*args: str, ok: bool = True):
    # rich reads COLUMNS when a console is made, at the CLI module's import: whichever test
    # imported it first set the width for all (the order differs under pytest-xdist). Each run
    # gets its own test's COLUMNS (`env`: 200 unless the test says otherwise).
    width = int(os.environ["COLUMNS"])
    for console in (policy_cli.console, policy_cli.err_console):
        console.width = width
    result = runner.invoke(app, ["policy", *args])
    if ok:
        assert result.exit_code == 0, result.output + str(result.exception)
    return result


def simulate_json(holdout_csv, *args: str) -> dict:
    return json.loads(
        run("simulate", "--holdout", str(holdout_csv), "--weeks", "2", "--json", *args).stdout
    )


@pytest.mark.parametrize(
    "args, threshold, per_week, wins, precision, recall",
    [
        (("--by", "capacity", "--value", "2"), 65, 2.0, 1.5, 0.75, 0.75),
        (("--by", "capacity", "--value", "1.2"), 85, 1.0, 1.0, 1.0, 0.5),
        (("--by", "precision", "--value", "0.75"), 56, 2.0, 1.5, 0.75, 0.75),
        (("--by", "precision", "--value", "0.9"), 76, 1.0, 1.0, 1.0, 0.5),
        (("--by", "recall", "--value", "1"), 45, 3.0, 2.0, 4 / 6, 1.0),
        (("--by", "recall", "--value", "0.75"), 65, 2.0, 1.5, 0.75, 0.75),
        (("--by", "value", "--value", "4"), 45, 3.0, 2.0, 4 / 6, 1.0),
        (("--by", "value", "--value", "2"), 85, 1.0, 1.0, 1.0, 0.5),
        (("--threshold", "50"), 50, 2.5, 1.5, 0.6, 0.75),
    ],
)
def test_simulate_each_way_of_choosing(
    env, holdout_csv, args, threshold, per_week, wins, precision, recall
):
    chosen = simulate_json(holdout_csv, *args)["chosen"]
    assert chosen["threshold"] == threshold
    assert chosen["leads_per_week"] == pytest.approx(per_week)
    assert chosen["expected_wins"] == pytest.approx(wins)
    assert chosen["precision"] == pytest.approx(precision)
    assert chosen["recall"] == pytest.approx(recall)
    assert chosen["lift"] == pytest.approx(precision / 0.4)


def test_simulate_prints_a_readable_table(env, holdout_csv, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    out = run(
        "simulate",
        "--holdout",
        str(holdout_csv),
        "--weeks",
        "2",
        "--by",
        "capacity",
        "--value",
        "2",
    ).stdout
    assert "Simulated on holdout.csv: 10 leads over 2 weeks with known outcomes." in out
    lines = [line for line in out.splitlines() if "capacity 2" in line]
    # threshold, leads a week, share, wins a week, precision, recall, lift
    cells = [c.strip() for c in lines[0].split("│") if c.strip()]
    assert cells[1:] == ["65", "2.0", "40.0%", "1.50", "75.0%", "75.0%", "1.88"]
    assert "Not saved: add --save --reason" in out


def test_simulate_and_save_then_history_and_rollback(env, holdout_csv, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    saved = simulate_json(
        holdout_csv,
        "--by",
        "value",
        "--value",
        "3000",
        "--cost-per-lead",
        "1000",
        "--save",
        "--reason",
        "deal worth 3 leads of work",
    )
    assert saved["chosen"]["net_value_per_week"] == pytest.approx(3000)
    assert saved["saved_version"] == 1
    shown = json.loads(run("show", "--json").stdout)
    assert shown["version"] == 1 and shown["policy"]["sales_threshold"] == 45
    assert (
        shown["created_by"].startswith("cli:") and shown["reason"] == "deal worth 3 leads of work"
    )

    changed = json.loads(
        run("set", "--sales-threshold", "70", "--grade-a", "75", "-m", "tighter", "--json").stdout
    )
    assert changed["version"] == 2
    assert changed["changes"] == ["sales_threshold: 45 -> 70", "grade A from: 60 -> 75"]

    back = json.loads(run("rollback", "1", "--reason", "too few leads", "--json").stdout)
    assert back["version"] == 3 and back["restored_version"] == 1
    assert back["policy"]["sales_threshold"] == 45 and back["policy"]["grades"]["A"] == 60

    history = json.loads(run("history", "--json").stdout)
    assert [(v["version"], v["action"], v["reason"]) for v in history] == [
        (3, "rollback", "too few leads"),
        (2, "set", "tighter"),
        (1, "set", "deal worth 3 leads of work"),
    ]
    table = run("history").stdout
    assert "rollback to 1" in table and "tighter" in table


def test_set_from_a_file(env, tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"sales_threshold": 62, "nurture_threshold": 30, "rules": []}))
    saved = json.loads(run("set", "--from-file", str(path), "-m", "from review", "--json").stdout)
    assert saved["policy"]["sales_threshold"] == 62 and saved["policy"]["rules"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        (("simulate", "--by", "capacity"), "--by capacity needs --value (the target)"),
        (
            ("simulate", "--by", "volume", "--value", "3"),
            "--by 'volume' is not a way to choose a threshold; use one of: value, capacity, precision, recall",
        ),
        (
            ("simulate", "--threshold", "50", "--save"),
            "--save needs --reason (kept in the history)",
        ),
        (
            ("simulate", "--by", "precision", "--value", "1.5", "HOLDOUT"),
            "target precision must be between 0 and 1 (e.g. 0.4 for 40%), got 1.5",
        ),
        (
            ("simulate", "--threshold", "50", "--holdout", "NOCOLUMN", "--weeks", "2"),
            "has no column label; it needs `probability` (0-1) and `label` (1 won, 0 lost); found: probability, won",
        ),
        (
            ("simulate", "--threshold", "50", "--holdout", "HOLDOUT_ONLY"),
            "needs --weeks: how many weeks of leads the file covers",
        ),
        (
            ("simulate", "--threshold", "50"),
            "cannot load models:/lead-scoring@champion from the MLflow registry",
        ),
        (
            ("simulate", "--threshold", "50", "--recent-days", "7"),
            "no leads were scored in the last 7 days",
        ),
        (("set", "-m", "x"), "nothing to change: give --sales-threshold"),
        (
            ("set", "--nurture-threshold", "90", "-m", "x"),
            "policy: nurture_threshold (90.0) must not be above sales_threshold (50.0)",
        ),
        (("set", "--sales-threshold", "60", "-m", " "), "a policy change needs a reason"),
        (("rollback", "4", "-m", "x"), "there is no policy version 4: no policy was saved yet"),
        (
            ("simulate", "--threshold", "50", "--holdout", "BADROWS", "--weeks", "2"),
            "badrows.csv: row 3 (and 1 more) has probability outside 0-1 or a label other than 0/1",
        ),
        (("set", "--from-file", "BADJSON", "-m", "x"), "it must be a JSON object of policy fields"),
        (
            ("set", "--from-file", "LISTJSON", "-m", "x"),
            'must hold a JSON object such as {"sales_threshold": 60}',
        ),
    ],
)
def test_errors_name_the_problem_and_the_fix(env, holdout_csv, tmp_path, args, message):
    nocolumn = tmp_path / "nocolumn.csv"
    nocolumn.write_text("probability,won\n0.5,1\n")
    files = {
        "NOCOLUMN": nocolumn,
        "BADROWS": tmp_path / "badrows.csv",
        "BADJSON": tmp_path / "bad.json",
        "LISTJSON": tmp_path / "list.json",
    }
    files["BADROWS"].write_text("probability,label\n0.5,1\n1.5,0\n0.2,2\n")
    files["BADJSON"].write_text("{sales_threshold: 60")
    files["LISTJSON"].write_text("[60]")
    replaced = []
    for a in args:
        if a == "HOLDOUT":
            replaced += ["--holdout", str(holdout_csv), "--weeks", "2"]
        elif a == "HOLDOUT_ONLY":
            replaced.append(str(holdout_csv))
        elif a in files:
            replaced.append(str(files[a]))
        else:
            replaced.append(a)
    result = run(*replaced, ok=False)
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.stderr.split()), result.stderr


# --- ranking by expected value ----------------------------------------------------------------


@pytest.fixture
def valued_csv(tmp_path):
    """The hand holdout with each lead's expected value (tests/serving/policy_support.py)."""
    from tests.serving.policy_support import EXPECTED_VALUES

    path = tmp_path / "valued.csv"
    rows = zip(PROBABILITIES, LABELS, EXPECTED_VALUES)
    path.write_text(
        "probability,label,expected_value\n" + "".join(f"{p},{y},{v}\n" for p, y, v in rows)
    )
    return path


def test_simulate_ranked_by_expected_value_reports_revenue_a_week(env, valued_csv, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    # two a week: 6500, 4500, 1500, 1000 by value (1 win a week, 6750 a week) against
    # 0.95, 0.85, 0.75, 0.65 by probability (1.5 wins, 4472.5 a week)
    result = simulate_json(
        valued_csv, "--rank-by", "expected_value", "--by", "capacity", "--value", "2"
    )
    assert result["chosen"]["value_threshold"] == 1000
    assert result["chosen"]["expected_revenue"] == 6750
    assert result["rankings"]["probability"]["expected_revenue"] == 4472.5
    assert result["rankings"]["probability"]["expected_wins"] == 1.5
    printed = run(
        "simulate", "--holdout", str(valued_csv), "--weeks", "2",
        "--rank-by", "expected_value", "--by", "capacity", "--value", "2",
    ).stdout  # fmt: skip
    assert "revenue/week" in printed and "6750.00" in printed and "4472.50" in printed
    assert "value >= 1,000.00" in printed
    assert "Filling 2 leads a week" in printed and "in EUR" in printed


def test_rank_by_needs_a_known_ranking_and_expected_values(env, holdout_csv):
    bad = run(
        "simulate", "--holdout", str(holdout_csv), "--weeks", "2", "--rank-by", "revenue", ok=False
    )
    assert bad.exit_code != 0 and "--rank-by 'revenue' is not a ranking" in bad.output
    none = run(
        "simulate", "--holdout", str(holdout_csv), "--weeks", "2",
        "--rank-by", "expected_value", "--by", "capacity", "--value", "2", ok=False,
    )  # fmt: skip
    assert none.exit_code != 0 and "has no expected values" in none.output


def test_set_rank_by_value_needs_the_champions_deal_value_model(env):
    answer = run(
        "set", "--rank-by", "expected_value", "--value-threshold", "500", "-m", "x", ok=False
    )
    assert answer.exit_code != 0
    assert "--rank-by expected_value needs the champion" in answer.output
    shown = json.loads(run("show", "--json").stdout)
    assert shown["version"] == 0 and shown["policy"]["rank_by"] == "probability"


def test_simulate_by_expected_value_and_save(env, valued_csv):
    saved = simulate_json(
        valued_csv, "--rank-by", "expected_value", "--by", "capacity", "--value", "2",
        "--save", "-m", "two a week, the most valuable",
    )  # fmt: skip
    assert saved["saved_version"] == 1
    shown = json.loads(run("show", "--json").stdout)["policy"]
    assert (shown["rank_by"], shown["value_threshold"], shown["weekly_capacity"]) == (
        "expected_value", 1000, 2
    )  # fmt: skip
    # a score threshold to evaluate is saved as ranking by probability again
    simulate_json(valued_csv, "--threshold", "65", "--save", "-m", "back to scores")
    shown = json.loads(run("show", "--json").stdout)["policy"]
    assert (shown["rank_by"], shown["sales_threshold"]) == ("probability", 65)
