"""The gate respects the leakage guard: a model with strongly suspected leakage is registered but
never promoted unless the user allows it, and a champion promoted with one does not block an
honest challenger (the two findings of the issue, with the messages users read)."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from training.leakage import LeakageWarning, check_leakage, is_strong, strong_columns
from training.registry import ChampionScore, gate

runner = CliRunner()

HONEST = {"roc_auc": 0.6733, "ece": 0.02, "log_loss": 0.62, "leads": 120}
LEAKY = {"roc_auc": 1.0, "ece": 0.0, "log_loss": 0.0, "leads": 120}
STAGE = LeakageWarning(
    "stage", "it alone separates won and lost leads (single-feature ROC AUC 1.000)", 1.0, 1.0,
    "retrain with --exclude stage", strong=True,
)  # fmt: skip


def test_strong_means_near_perfect_alone_or_a_sales_field_that_separates_or_dominates():
    assert is_strong("stage", 1.0) and is_strong("industry", 0.995)
    assert is_strong("Lead Stage", 0.96)  # sales-named and separates alone
    assert is_strong("Tags", 0.90, share=0.9, drop=0.2)  # sales-named and dominates
    assert not is_strong("industry", 0.97)  # separates, but may be known at arrival
    assert not is_strong("demo_requested", 0.8, share=0.9, drop=0.2)  # dominates, not sales-named
    assert not is_strong("Lead Quality", 0.7)  # the name alone: for a person to check


def test_the_guard_marks_a_crm_stage_column_strong_and_puts_it_first():
    aucs = {"Lead Quality": 0.7, "stage": 1.0, "industry": 0.6}
    warnings = check_leakage(aucs)
    assert [(w.column, w.strong) for w in warnings] == [("stage", True), ("Lead Quality", False)]
    assert warnings[0].to_dict()["strong"] is True
    assert "its name suggests sales fills it in (a status or stage" in warnings[0].reason


def test_warnings_logged_before_strong_existed_are_judged_again():
    logged = [
        {"column": "stage", "reason": "it alone separates ...", "single_auc": 1.0},
        {"column": "Tags", "reason": "it dominates the model (90% ...)", "single_auc": 0.9},
        {"column": "Lead Quality", "reason": "its name suggests ...", "single_auc": 0.7},
        {"column": "x", "reason": "", "single_auc": 0.999, "strong": False},
    ]
    assert strong_columns(logged) == ["stage", "Tags"]


def test_a_leaky_first_model_stays_challenger_and_says_what_to_exclude():
    decision = gate("1", LEAKY, ChampionScore(None), leaks=[STAGE])
    assert not decision.promote and decision.leakage == ["stage"]
    assert decision.reason == (
        "stays challenger: suspected leakage in column 'stage' ('stage' alone: ROC AUC 1.000): a "
        "model reading a column filled in after the lead reached sales looks excellent here and "
        "fails on new leads. There is no champion yet: the service has no model until one is "
        "promoted. Retrain without it: --exclude stage; if the column is known when a lead "
        "arrives, use --allow-suspected-leakage (config: training.allow_suspected_leakage: true) "
        "or `leadscore promote 1`"
    )


def test_a_leaky_challenger_never_replaces_a_champion():
    decision = gate("4", LEAKY, ChampionScore("3", HONEST), leaks=[STAGE])
    assert not decision.promote
    assert "Champion v3 stays in service. Retrain without it: --exclude stage" in decision.reason


def test_allowed_leakage_goes_through_the_usual_gate_and_says_it_was_allowed():
    first = gate("1", LEAKY, ChampionScore(None), leaks=[STAGE], allow_leakage=True)
    assert first.promote
    assert first.reason == (
        "no champion yet: the first model becomes champion; suspected leakage in column 'stage' "
        "allowed (--allow-suspected-leakage, training.allow_suspected_leakage)"
    )


def test_a_leaky_champion_is_not_compared_and_an_honest_challenger_replaces_it():
    champion = ChampionScore("1", LEAKY, leakage=["stage"])
    decision = gate("2", HONEST, champion)
    assert decision.promote and decision.champion_leakage == ["stage"]
    assert decision.reason == (
        "promoted: champion v1 has suspected leakage in column 'stage', so its metrics are not "
        "comparable (ROC AUC 0.6733 vs 1.0000 on this holdout); this model has no suspected "
        "leakage and replaces it"
    )
    # even when the leaky champion cannot score this holdout (its column excluded and gone)
    gone = ChampionScore("1", error="the champion needs column(s) ['stage']", leakage=["stage"])
    assert gate("2", HONEST, gone).promote


def test_the_config_file_can_allow_suspected_leakage(tmp_path):
    from training.train import resolve_config

    config = tmp_path / "c.yaml"
    config.write_text("training:\n  allow_suspected_leakage: true\n")
    assert resolve_config(config, leads=tmp_path / "l.csv").training.allow_suspected_leakage
    assert not resolve_config(None, leads=tmp_path / "l.csv").training.allow_suspected_leakage


def crm_export(path, n=300):
    """A CRM export whose `stage` column (Won/Lost) is the outcome written by sales."""
    rng = np.random.default_rng(0)
    source = rng.choice(["web", "ads", "event", "partner"], n)
    visits = rng.poisson(3, n)
    won = rng.random(n) < 1 / (1 + np.exp(1.0 - 0.25 * visits - (source == "event")))
    pd.DataFrame({"id": [f"L{i}" for i in range(n)], "source": source, "visits": visits,
                  "stage": np.where(won, "Won", "Lost"), "converted": won.astype(int)}
                 ).to_csv(path, index=False)  # fmt: skip


def _train(tmp_path, *options):
    result = runner.invoke(app, ["train", "--leads", str(tmp_path / "crm.csv"), "--id", "id",
                                 "--label", "converted", "--config", str(tmp_path / "c.yaml"),
                                 "--json", *options])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output, json.loads(result.stdout[result.stdout.index("{") :])


@pytest.mark.slow
def test_crm_stage_column_then_honest_retrain(tracking, tmp_path):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    crm_export(tmp_path / "crm.csv")
    (tmp_path / "c.yaml").write_text("training:\n  search: tiny\n  cv_folds: 2\n")
    client = MlflowClient()

    # 1. the leak is flagged and the model is registered, not promoted
    output, leaky = _train(tmp_path)
    assert "to exclude every suspected column: --exclude stage" in output
    assert leaky["version"] == "1" and leaky["alias"] == "challenger" and not leaky["promoted"]
    assert leaky["suspected_leakage"] == ["stage"]
    assert leaky["promotion"].startswith(
        "stays challenger: suspected leakage in column 'stage' ('stage' alone: ROC AUC 1.000)"
    )
    assert "Retrain without it: --exclude stage" in leaky["promotion"]
    assert "`leadscore promote 1`" in leaky["promotion"]
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("lead-scoring", "champion")
    assert json.loads(client.get_model_version("lead-scoring", "1").tags["suspected_leakage"]) == [
        "stage"
    ]

    # 2. the user says so explicitly: promoted, and the output says the leak was allowed
    _, allowed = _train(tmp_path, "--allow-suspected-leakage")
    assert allowed["alias"] == "champion"
    assert allowed["promotion"].endswith(
        "suspected leakage in column 'stage' allowed (--allow-suspected-leakage, "
        "training.allow_suspected_leakage)"
    )
    # as a version registered before the tag existed: the gate reads the run's leakage.json
    client.delete_model_version_tag("lead-scoring", "2", "suspected_leakage")

    # 3. the honest retrain replaces the leaky champion instead of losing 0.67 to 1.00
    _, honest = _train(tmp_path, "--exclude", "stage")
    assert honest["alias"] == "champion" and honest["suspected_leakage"] == []
    assert honest["champion_suspected_leakage"] == ["stage"]
    assert honest["promotion"].startswith(
        "promoted: champion v2 has suspected leakage in column 'stage', so its metrics are not "
        "comparable (ROC AUC "
    )
    assert honest["promotion"].endswith(
        "vs 1.0000 on this holdout); this model has no suspected leakage and replaces it"
    )
    assert str(client.get_model_version_by_alias("lead-scoring", "champion").version) == "3"
