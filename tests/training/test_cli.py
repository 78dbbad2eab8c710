"""`leadscore train`, `score` and `promote` from the command line: the flat X Education path,
and the messages users get for mistakes they can make."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app

runner = CliRunner()


def test_train_on_a_missing_file_names_it(tracking, tmp_path):
    result = runner.invoke(app, ["train", "--leads", str(tmp_path / "nope.csv"), "--label", "won"])
    assert result.exit_code == 2
    assert "nope.csv" in result.output and "Traceback" not in result.output


def test_train_with_too_few_wins_says_how_many_are_needed(tracking, tmp_path):
    path = tmp_path / "leads.csv"
    pd.DataFrame({"lead_id": [f"L{i}" for i in range(50)], "source": ["web", "ads"] * 25,
                  "won": ["yes"] * 3 + ["no"] * 47}).to_csv(path, index=False)  # fmt: skip
    result = runner.invoke(
        app, ["train", "--leads", str(path), "--label", "won", "--positive", "yes"]
    )
    assert result.exit_code == 2
    assert "only 3 examples of the rarer class" in result.output
    assert "at least 10 won and 10 lost" in result.output and "Traceback" not in result.output


def test_train_with_a_bad_config_names_the_field(tracking, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("training:\n  holdout_fraction: 2\n")
    result = runner.invoke(
        app, ["train", "--leads", "x.csv", "--label", "won", "--config", str(config)]
    )
    assert result.exit_code == 2
    assert "config training.holdout_fraction" in result.output


def test_score_refuses_an_unknown_output_type(tracking, tmp_path):
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id\nL1\n")
    result = runner.invoke(app, ["score", "--model", "models:/lead-scoring@champion", "--leads", str(leads),
                                 "--out", str(tmp_path / "scores.xlsx")])  # fmt: skip
    assert result.exit_code == 2
    assert "end the name with .csv or .parquet" in result.output


def test_score_with_an_unknown_model_says_how_to_name_one(tracking, tmp_path):
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id\nL1\n")
    result = runner.invoke(app, ["score", "--model", "models:/nothing@champion", "--leads", str(leads),
                                 "--out", str(tmp_path / "s.csv")])  # fmt: skip
    assert result.exit_code == 2
    assert "--model models:/nothing@champion: cannot load it" in result.output
    assert "MLFLOW_TRACKING_URI" in result.output


def test_promote_an_unknown_version(tracking):
    from mlflow import MlflowClient

    MlflowClient().create_registered_model("lead-scoring")
    result = runner.invoke(app, ["promote", "4"])
    assert result.exit_code == 2
    assert "has no version 4" in result.output


@pytest.mark.slow
def test_flat_xeducation_train_warns_about_leakage_then_scores_ignoring_the_label(
    tracking, xeducation, tmp_path
):
    config = tmp_path / "config.yaml"
    config.write_text("training:\n  search: tiny\n  cv_folds: 2\n")
    result = runner.invoke(app, ["train", "--leads", str(xeducation), "--id", "Prospect ID", "--label",
                                 "Converted", "--config", str(config), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    flagged = {w["column"] for w in summary["leakage"]}
    assert {"Tags", "Lead Quality", "Last Notable Activity"} <= flagged
    tags = next(w for w in summary["leakage"] if w["column"] == "Tags")
    assert "dominates the model" in tags["reason"] and tags["fix"].endswith("--exclude Tags")
    assert summary["metrics"]["roc_auc"] > 0.95  # with the leaks in, the model looks excellent
    # ... so it is registered but not promoted, and the gate says what to exclude
    assert summary["version"] == "1" and summary["alias"] == "challenger"
    assert "Tags" in summary["suspected_leakage"]
    assert "Retrain without it: --exclude Tags" in summary["promotion"]
    # the sequential lead id is no feature, and the run says so and how to keep it
    (lead_number,) = [w for w in summary["warnings"] if "'Lead Number'" in w]
    assert "not used as a feature" in lead_number and "types: {Lead Number: numeric}" in lead_number
    assert "Lead Number" not in flagged

    sample = pd.read_csv(xeducation).head(200)
    sample.to_csv(tmp_path / "new.csv", index=False)  # still has the Converted column
    out = tmp_path / "scores.parquet"
    result = runner.invoke(app, ["score", "--model", summary["model_uri"], "--leads", str(tmp_path / "new.csv"),
                                 "--out", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out)
    assert list(scores.columns[:5]) == ["lead_id", "probability", "score", "grade", "decision"]
    assert scores["lead_id"].tolist() == sample["Prospect ID"].tolist()
    assert scores["score"].between(0, 100).all() and scores["reasons_for"].str.len().gt(0).any()


def test_train_on_thin_demo_data_refuses_with_the_counts_and_what_would_help(tracking, tmp_path):
    from features.data import demo

    demo.write(demo.generate(150, seed=2), tmp_path, formats=("parquet",))  # 23 wins in all
    result = runner.invoke(app, [
        "train", "--leads", str(tmp_path / "leads.parquet"),
        "--touchpoints", str(tmp_path / "touchpoints.parquet"),
        "--outcomes", str(tmp_path / "outcomes.parquet"),
    ])  # fmt: skip
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "error: too few outcomes to train a trustworthy model: " in output
    assert "won leads (at least 30 needed)" in output
    assert (
        "What would help: outcomes of more leads: a longer history in the outcomes file" in output
    )
    assert "training.min_wins and training.min_losses" in output and "Traceback" not in output


def test_train_on_a_thin_flat_file_says_more_labelled_rows_would_help(tracking, tmp_path):
    path = tmp_path / "leads.csv"
    pd.DataFrame({"lead_id": [f"L{i}" for i in range(200)], "source": ["web", "ads"] * 100,
                  "won": ["yes"] * 20 + ["no"] * 180}).to_csv(path, index=False)  # fmt: skip
    result = runner.invoke(
        app, ["train", "--leads", str(path), "--label", "won", "--positive", "yes"]
    )
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "20 won leads (at least 30 needed), from 20 won and 180 lost leads in all" in output
    assert "What would help: more labelled rows in the leads file (the label column)" in output
