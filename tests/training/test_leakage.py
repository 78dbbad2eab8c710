"""The leakage guard: identifiers are not leaks, near-perfect and dominant columns are, and the
sales-filled X Education columns are caught."""

import numpy as np
import pandas as pd

from training.leakage import check_leakage, exclude_command, name_hint, single_feature_auc


def test_an_identifier_is_not_a_perfect_predictor():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    ids = pd.Series([f"L-{i}" for i in range(2000)])
    assert abs(single_feature_auc(ids, y) - 0.5) < 0.05


def test_an_identifier_is_not_a_perfect_predictor_on_snapshots_either():
    # training rows are snapshots: 4 of each lead, one label. Folds of rows give a lead's value
    # its own label through its other snapshots (AUC 1.0, a "leak" that blocked the gate);
    # folds of leads do not, and a real leak still separates
    rng = np.random.default_rng(2)
    y = np.repeat(rng.integers(0, 2, 500), 4)
    leads = np.repeat([f"L-{i}" for i in range(500)], 4)
    company = pd.Series(np.char.add("company ", leads))
    assert single_feature_auc(company, y) > 0.99  # by row: the defect
    assert abs(single_feature_auc(company, y, groups=leads) - 0.5) < 0.06
    stage = pd.Series(np.where(y == 1, "Won", "Lost"))
    assert single_feature_auc(stage, y, groups=leads) > 0.99


def test_a_column_that_is_the_outcome_is_flagged_with_the_exclude_to_use():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    status = pd.Series(np.where(y == 1, "Closed by sales", "Not interested"))
    noise = pd.Series(rng.choice(["a", "b", "c"], 2000))
    aucs = {"Call Status": single_feature_auc(status, y), "industry": single_feature_auc(noise, y)}
    assert aucs["Call Status"] > 0.99
    warnings = check_leakage(aucs)
    assert [w.column for w in warnings] == ["Call Status"]
    assert "--exclude 'Call Status'" in warnings[0].to_text()
    assert exclude_command(warnings) == "--exclude 'Call Status'"


def test_dominant_importance_is_flagged():
    importance = pd.DataFrame(
        {"column": ["Tags", "Source"], "auc_drop": [0.2, 0.02], "share": [0.9, 0.1]}
    )
    warnings = check_leakage({"Tags": 0.9, "Source": 0.64}, importance)
    assert [w.column for w in warnings] == ["Tags"]
    assert "dominates the model (90% of permutation importance" in warnings[0].reason


def test_names_that_read_like_sales_fields():
    assert (
        name_hint("Lead Quality") and name_hint("LeadStatus") and name_hint("Last Notable Activity")
    )
    assert name_hint("industry") is None and name_hint("Do Not Call") is None
    assert name_hint("Total Time Spent on Website") is None


def test_xeducation_sales_filled_columns_are_caught(xeducation):
    from features.data.config import DataConfig
    from features.data.loading import load_lead_data
    from training.leakage import single_feature_aucs

    data = load_lead_data(
        DataConfig(leads={"path": xeducation, "lead_id": "Prospect ID"}, label="Converted")
    )
    aucs = single_feature_aucs(data.leads, data.label, data.attribute_types)
    flagged = {w.column for w in check_leakage(aucs)}
    sales_filled = {
        "Tags",
        "Lead Quality",
        "Lead Profile",
        "Last Activity",
        "Last Notable Activity",
        "Asymmetrique Activity Score",
        "Asymmetrique Profile Score",
    }
    assert sales_filled <= flagged
    marketing = {
        "Lead Source",
        "Lead Origin",
        "Total Time Spent on Website",
        "TotalVisits",
        "Country",
    }
    assert not marketing & flagged
