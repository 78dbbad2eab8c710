"""The demo generator: determinism, schema, win rate, and an oracle a model can be compared with."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.data import demo
from features.data.config import DataConfig
from features.data.demo.process import ACTIVITY_SPELLINGS, CHANNEL_SPELLINGS
from features.data.loading import load_lead_data
from features.data.vocabulary import ACTIVITIES, CHANNELS, lookup_activity, lookup_channel
from leadscore.cli import app

EXPORT = pd.Timestamp("2024-12-31", tz="UTC")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = demo.create_demo_data(out, 4000, seed=11)
    return out, summary


@pytest.fixture(scope="module")
def loaded(written):
    out, _ = written
    return load_lead_data(DataConfig.from_directory(out))


@pytest.fixture(scope="module")
def large():
    """Enough leads for rates to be within a percentage point (about 0.5 s)."""
    data = demo.generate(30_000, seed=5)
    leads = data.leads.to_pandas()
    outcomes = data.outcomes.to_pandas()
    oracle = data.oracle.to_pandas()
    return data, leads, outcomes, oracle


def test_same_seed_same_data_and_another_seed_differs():
    a, b, c = demo.generate(600, seed=3), demo.generate(600, seed=3), demo.generate(600, seed=4)
    for name in ("leads", "touchpoints", "outcomes", "oracle"):
        assert getattr(a, name).equals(getattr(b, name)), name
    assert not a.oracle.equals(c.oracle)
    assert not a.touchpoints.equals(c.touchpoints)


def _digest(table: pa.Table, significant_digits: int | None = None) -> str:
    """sha256 of the table as an Arrow IPC stream: schema, dictionaries and every value; floats
    to `significant_digits` if given."""
    for i, field in enumerate(table.schema):
        if significant_digits is None:
            break
        if pa.types.is_floating(field.type):
            values = table.column(i).to_numpy(zero_copy_only=False)
            rounded = np.array(
                [float(f"{v:.{significant_digits}g}") for v in values], dtype=values.dtype
            )
            table = table.set_column(i, field, pa.array(rounded, type=field.type))
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()[:16]


def test_a_small_dataset_is_pinned_bit_for_bit(tmp_path):
    """Seed 7, 300 leads: the tables and the CSV files as the generator made them at 464f4d0
    (outcomes and oracle: since amounts and close times follow the truth of issue 14).

    A new digest means the demo data changed for everyone's seed: refactors must keep these; a
    deliberate change to the generating process updates them in the same commit, saying why."""
    data = demo.generate(300, seed=7)
    tables = {name: getattr(data, name) for name in ("leads", "touchpoints", "outcomes")}
    assert {name: (t.num_rows, _digest(t)) for name, t in tables.items()} == {
        "leads": (300, "601a2da2c8d9ff46"),
        "touchpoints": (3389, "70c67032427a111b"),
        "outcomes": (212, "2815120844a03f3c"),
    }
    # The oracle to 10 significant digits: its exact digest differed between two machines with
    # the same code and packages (scipy's betaincinv, an iterative root finder, is not
    # bit-reproducible across CPUs); to 10 digits it held with numpy's and OpenBLAS's CPU
    # dispatch forced down (NPY_DISABLE_CPU_FEATURES=X86_V3, OPENBLAS_CORETYPE=Prescott).
    assert (data.oracle.num_rows, _digest(data.oracle, significant_digits=10)) == (
        300,
        "f04b07ffb3f2f006",
    )
    demo.write(data, tmp_path, formats=("csv",))
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in tmp_path.glob("*.csv")
    }
    assert files == {
        "leads.csv": "6bd0d6f4015aa4f7",
        "touchpoints.csv": "ed1217129c511a34",
        "outcomes.csv": "7d81c928c8e33c4a",
    }


def test_files_written_in_both_formats_with_the_same_rows(written):
    out, summary = written
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"{t}.{ext}" for t in ("leads", "touchpoints", "outcomes") for ext in ("csv", "parquet")]
        + ["oracle.parquet"]
    )
    from_csv = load_lead_data(
        DataConfig(
            leads=out / "leads.csv",
            touchpoints=out / "touchpoints.csv",
            outcomes=out / "outcomes.csv",
        )
    )
    from_parquet = load_lead_data(DataConfig.from_directory(out))
    for table in ("leads", "touchpoints", "outcomes"):
        pd.testing.assert_frame_equal(getattr(from_csv, table), getattr(from_parquet, table))
    assert summary.leads == 4000
    assert summary.touchpoints == pq.read_metadata(out / "touchpoints.parquet").num_rows


def test_format_option_writes_only_what_was_asked(tmp_path):
    result = CliRunner().invoke(
        app,
        ["demo-data", "--leads", "300", "--out", str(tmp_path), "--seed", "2", "--format", "csv"],
    )
    assert result.exit_code == 0, result.output
    assert "300 leads" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "leads.csv",
        "oracle.parquet",
        "outcomes.csv",
        "touchpoints.csv",
    ]


@pytest.mark.parametrize("formats", [("parquet", "csv"), ("csv",)])
def test_progress_is_told_each_step_once_and_the_total_is_known(tmp_path, formats):
    told: list[str] = []
    demo.create_demo_data(tmp_path, 50, seed=1, formats=formats, progress=told.append)
    assert len(told) == demo.progress_steps(formats) == 5 + 3 * len(formats) + 1
    assert told[:5] == [
        "leads",
        "touchpoints (first 21 days)",
        "touchpoints (later)",
        "outcomes",
        "assembling",
    ]
    assert sorted(told[5:]) == sorted(f"wrote {p.name}" for p in tmp_path.iterdir())


def test_demo_data_rejects_zero_leads(tmp_path):
    result = CliRunner().invoke(app, ["demo-data", "--leads", "0", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--leads" in result.output and "Traceback" not in result.output


def test_loaded_schema_is_the_contract(loaded):
    assert loaded.report.ok
    leads, tp, out = loaded.leads, loaded.touchpoints, loaded.outcomes
    assert list(leads.columns[:2]) == ["lead_id", "created_at"]
    assert str(leads["lead_id"].dtype) == "str" and leads["lead_id"].is_unique
    assert str(leads["created_at"].dtype) == "datetime64[ns, UTC]"
    assert set(loaded.attribute_types) == {
        "industry",
        "company_size",
        "country",
        "region",
        "job_title",
        "seniority",
        "email_type",
        "lead_source",
        "do_not_email",
    }
    assert loaded.attribute_types["do_not_email"] == "boolean"
    assert loaded.attribute_types["industry"] == "categorical"
    assert list(tp.columns) == [
        "lead_id",
        "occurred_at",
        "channel",
        "activity",
        "campaign",
        "value",
    ]
    assert str(tp["occurred_at"].dtype) == "datetime64[ns, UTC]"
    assert set(tp["channel"]) <= set(CHANNELS) and set(tp["activity"]) <= set(ACTIVITIES)
    assert len(tp) >= 9 * len(leads)  # 10+ touchpoints per lead before the export cut
    assert list(out.columns) == ["lead_id", "closed_at", "won", "amount"]
    assert out["won"].dtype == bool and out["lead_id"].is_unique
    # Every event happens after its lead was created and no later than the export date.
    created = leads.set_index("lead_id")["created_at"]
    assert (tp["occurred_at"] >= tp["lead_id"].map(created)).all()
    assert (out["closed_at"] >= out["lead_id"].map(created)).all()
    assert tp["occurred_at"].max() <= EXPORT and out["closed_at"].max() <= EXPORT


def test_exports_are_messy_like_a_real_crm(loaded, written):
    out, _ = written
    raw = pd.read_parquet(out / "leads.parquet")
    industries = raw["industry"].dropna().astype(str)
    assert (industries != industries.str.strip()).any()  # stray spaces
    assert (industries.str.strip().str.lower().nunique()) < industries.nunique()  # case variants
    assert {"Select", "N/A"} <= set(raw["company_size"].dropna().astype(str))
    assert raw["industry"].isna().mean() > 0.02
    touch = pd.read_parquet(out / "touchpoints.parquet", columns=["channel", "activity"])
    assert "Google Ads" in set(touch["channel"].astype(str))
    warnings = " ".join(f.message for f in loaded.report.warnings)
    assert "placeholder values read as missing" in warnings


def test_every_raw_spelling_normalises_to_its_channel_and_activity():
    for channel, spellings in CHANNEL_SPELLINGS.items():
        for spelling in spellings:
            variants = (spelling, spelling.lower(), spelling.upper(), f" {spelling} ")
            assert {lookup_channel(v) for v in variants} == {channel}, spelling
    for activity, spellings in ACTIVITY_SPELLINGS.items():
        if activity == "other":  # deliberately unknown, read as 'other' with a warning
            assert all(lookup_activity(s) is None for s in spellings)
            continue
        for spelling in spellings:
            assert lookup_activity(spelling) == activity, spelling


def test_win_rate_is_between_10_and_20_percent(large):
    _, leads, outcomes, oracle = large
    matured = leads["created_at"] < EXPORT - pd.Timedelta(days=120)
    won = leads["lead_id"].isin(outcomes.loc[outcomes["won"], "lead_id"])
    rate = won[matured].mean()
    assert 0.10 <= rate <= 0.20
    # The oracle is calibrated: matured leads win as often as their true probabilities say.
    assert abs(rate - oracle["true_win_probability"][matured].mean()) < 0.012
    # Some leads are still open (no outcome), as in a real pipeline.
    assert 0.05 < (~leads["lead_id"].isin(outcomes["lead_id"])).mean() < 0.5


def test_oracle_one_probability_per_lead_that_predicts_wins(large):
    _, leads, outcomes, oracle = large
    assert list(oracle.columns) == [
        "lead_id",
        "true_win_probability",
        "true_expected_amount",
        "true_close_beta_a",
        "true_close_beta_b",
        "true_median_days_to_close",
    ]
    assert oracle["lead_id"].tolist() == leads["lead_id"].tolist()
    p = oracle["true_win_probability"]
    assert p.between(0, 1).all() and p.std() > 0.05
    matured = (leads["created_at"] < EXPORT - pd.Timedelta(days=120)).to_numpy()
    won = leads["lead_id"].isin(outcomes.loc[outcomes["won"], "lead_id"]).to_numpy()
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(won[matured], p[matured])
    assert 0.7 < auc < 0.95  # informative but not a lookup table
    # Higher-probability deciles win more often, roughly as often as predicted.
    deciles = pd.qcut(p[matured], 5, labels=False)
    by_quintile = pd.Series(won[matured]).groupby(deciles.to_numpy()).mean()
    assert by_quintile.is_monotonic_increasing
    predicted = p[matured].groupby(deciles.to_numpy()).mean()
    assert np.abs(by_quintile.to_numpy() - predicted.to_numpy()).max() < 0.03


def test_oracle_is_a_function_of_what_is_observable_by_day_21(loaded, written):
    out, _ = written
    oracle = pd.read_parquet(out / "oracle.parquet")
    recomputed = demo.oracle_from_observables(loaded.leads, loaded.touchpoints)
    old_enough = (loaded.leads["created_at"] < EXPORT - pd.Timedelta(days=21)).to_numpy()
    assert old_enough.mean() > 0.9
    np.testing.assert_allclose(
        recomputed[old_enough], oracle["true_win_probability"].to_numpy()[old_enough], atol=1e-12
    )


def test_wins_close_between_day_31_and_110_losses_any_time(large):
    _, leads, outcomes, _ = large
    created = leads.set_index("lead_id")["created_at"]
    age_days = (outcomes["closed_at"] - outcomes["lead_id"].map(created)).dt.total_seconds() / 86400
    wins = age_days[outcomes["won"]]
    assert wins.min() >= 31 and wins.max() <= 110
    losses = age_days[~outcomes["won"]]
    assert losses.min() < 30 and losses.max() > 110


def test_later_touchpoints_follow_the_true_probability(large):
    data, leads, _, oracle = large
    tp = data.touchpoints.select(["lead_id", "occurred_at"]).to_pandas()
    tp["lead_id"] = tp["lead_id"].astype(str)
    created = leads.set_index("lead_id")["created_at"]
    late = tp[(tp["occurred_at"] - tp["lead_id"].map(created)) >= pd.Timedelta(days=21)]
    per_lead = late.groupby("lead_id").size().reindex(leads["lead_id"], fill_value=0).to_numpy()
    p = oracle["true_win_probability"].to_numpy()
    old = (leads["created_at"] < EXPORT - pd.Timedelta(days=200)).to_numpy()
    assert np.corrcoef(p[old], per_lead[old])[0, 1] > 0.2


def test_seasonality_weekdays_busier_than_weekends(large):
    _, leads, _, _ = large
    weekday = leads["created_at"].dt.day_of_week
    per_day = weekday.value_counts().sort_index()
    assert per_day[[0, 1, 2, 3]].min() > 2 * per_day[[5, 6]].max()
    by_month = leads["created_at"].dt.month.value_counts()
    assert by_month[8] < by_month[9] and by_month[12] < by_month[1]


def _won_ages(leads, outcomes, oracle):
    """Won leads created long enough before the export that every win is written: their
    closing day after creation, amount and the oracle's row."""
    created = leads.set_index("lead_id")["created_at"]
    wins = outcomes[outcomes["won"]].set_index("lead_id")
    old = created[created < EXPORT - pd.Timedelta(days=120)].index
    wins = wins[wins.index.isin(old)]
    age = (wins["closed_at"] - created.reindex(wins.index)).dt.total_seconds() / 86400
    return wins.assign(age=age), oracle.set_index("lead_id").reindex(wins.index)


def test_won_amounts_are_log_normal_around_the_written_typical_amount(large):
    from features.data.demo.process import AMOUNT_SIGMA

    _, leads, outcomes, oracle = large
    wins, truth = _won_ages(leads, outcomes, oracle)
    known = wins["amount"].notna().to_numpy()
    typical = truth["true_expected_amount"].to_numpy() / np.exp(AMOUNT_SIGMA**2 / 2)
    residual = np.log(wins["amount"].to_numpy()[known] / typical[known])
    assert known.sum() > 2000
    assert abs(residual.mean()) < 0.03  # the median is the written typical amount
    assert abs(residual.std() - AMOUNT_SIGMA) < 0.03
    # the mean amount of won deals is the written expected amount
    ratio = wins["amount"].to_numpy()[known].mean() / truth["true_expected_amount"][known].mean()
    assert abs(ratio - 1) < 0.03
    # the truth varies with what is observable: company size bands differ by far more than noise
    size = leads.set_index("lead_id")["company_size"].reindex(wins.index).astype(str).to_numpy()
    by_size = pd.Series(truth["true_expected_amount"].to_numpy()).groupby(size).median()
    assert by_size["5001+"] > 10 * by_size["1-10"]


def test_win_closing_days_follow_the_written_close_time_distribution(large):
    from scipy.stats import kstest

    from features.data.demo.process import true_win_close_cdf

    _, leads, outcomes, oracle = large
    wins, truth = _won_ages(leads, outcomes, oracle)
    a, b = truth["true_close_beta_a"].to_numpy(), truth["true_close_beta_b"].to_numpy()
    # each win's closing day, put through its own written distribution, is uniform
    u = true_win_close_cdf(wins["age"].to_numpy(), a, b)
    assert kstest(u, "uniform").pvalue > 0.001
    # and half the wins close before their written median day (a day of rounding either way)
    median = truth["true_median_days_to_close"].to_numpy()
    assert abs((wins["age"].to_numpy() < median).mean() - 0.5) < 0.02
    # a wrong distribution is told apart: the truth shifted by ten days is not uniform
    assert kstest(true_win_close_cdf(wins["age"].to_numpy() + 10, a, b), "uniform").pvalue < 1e-6
    # demo requests in the first 21 days make wins close sooner
    demo_request = data_demo_requests(large)
    early = np.isin(wins.index, demo_request)
    assert wins["age"][early].median() < wins["age"][~early].median() - 3


def data_demo_requests(large) -> np.ndarray:
    data, leads, _, _ = large
    tp = data.touchpoints.select(["lead_id", "occurred_at", "activity"]).to_pandas()
    created = leads.set_index("lead_id")["created_at"]
    tp["lead_id"] = tp["lead_id"].astype(str)
    early = (tp["occurred_at"] - tp["lead_id"].map(created)) < pd.Timedelta(days=21)
    requests = tp["activity"].astype(str).str.lower().str.contains("demo")
    return tp.loc[early & requests, "lead_id"].unique()


def test_the_true_chance_of_winning_within_a_horizon_matches_the_outcomes(large):
    from features.data.demo.process import true_win_within

    _, leads, outcomes, oracle = large
    created = leads["created_at"]
    closed = outcomes.set_index("lead_id")["closed_at"].reindex(leads["lead_id"]).to_numpy()
    won = (
        outcomes.set_index("lead_id")["won"].reindex(leads["lead_id"]).fillna(False).to_numpy(bool)
    )
    old = (created < EXPORT - pd.Timedelta(days=200)).to_numpy()
    p, a, b = (oracle[c].to_numpy() for c in ("true_win_probability", "true_close_beta_a",
                                              "true_close_beta_b"))  # fmt: skip
    age = 30
    as_of = (created + pd.Timedelta(days=age)).to_numpy()
    open_at = old & ~(pd.notna(closed) & (closed <= as_of))
    previous = np.zeros(open_at.sum())
    for horizon in (30, 60, 90):
        truth = true_win_within(p, a, b, age, horizon)[open_at]
        happened = (won & (closed <= as_of + pd.Timedelta(days=horizon)))[open_at]
        assert abs(happened.mean() - truth.mean()) < 0.01, horizon
        assert (truth >= previous).all()
        previous = truth


def _open_and_old(loaded, age):
    """Leads created 200+ days before the export and open at `age` days, and their label."""
    leads, outcomes = loaded.leads, loaded.outcomes
    closed = outcomes.set_index("lead_id")["closed_at"].reindex(leads["lead_id"]).to_numpy()
    won = outcomes.set_index("lead_id")["won"].reindex(leads["lead_id"]).fillna(False)
    as_of = (leads["created_at"] + pd.Timedelta(days=age)).to_numpy()
    old = (leads["created_at"] < EXPORT - pd.Timedelta(days=200)).to_numpy()
    open_at = old & ~(pd.notna(closed) & (closed <= as_of))
    label = won.to_numpy(bool) & (closed <= as_of + pd.Timedelta(days=90))
    return open_at, label


def test_the_point_in_time_truth_is_the_full_truth_from_day_21(loaded, written):
    from features.data.demo.oracle import point_in_time_truth
    from features.data.demo.process import true_win_within

    out, _ = written
    oracle = pd.read_parquet(out / "oracle.parquet")
    p, a, b = (oracle[c].to_numpy() for c in ("true_win_probability", "true_close_beta_a",
                                              "true_close_beta_b"))  # fmt: skip
    open_at, _ = _open_and_old(loaded, 21)
    for age in (21, 45):
        truth = point_in_time_truth(loaded.leads, loaded.touchpoints, age, 90)
        np.testing.assert_allclose(truth[open_at], true_win_within(p, a, b, age, 90)[open_at],
                                   rtol=1e-9)  # fmt: skip


def test_before_day_21_the_point_in_time_truth_is_the_full_truth_averaged_over_what_is_unseen(
    loaded, written
):
    """E[full truth | what is seen at the age] = the point-in-time truth: by quintile of the
    point-in-time truth the full truth averages to it, though lead by lead they differ. Treating
    the unseen touches as none (the oracle of the counts so far) fails the same check."""
    from features.data.demo.oracle import _observables, point_in_time_truth
    from features.data.demo.process import true_win_probability, true_win_within

    out, _ = written
    oracle = pd.read_parquet(out / "oracle.parquet")
    p, a, b = (oracle[c].to_numpy() for c in ("true_win_probability", "true_close_beta_a",
                                              "true_close_beta_b"))  # fmt: skip
    age = 3
    open_at, label = _open_and_old(loaded, age)
    full = true_win_within(p, a, b, age, 90)[open_at]
    truth = point_in_time_truth(loaded.leads, loaded.touchpoints, age, 90)[open_at]
    seen = _observables(loaded.leads, loaded.touchpoints, "default")
    naive = true_win_probability(seen.attribute_logit, seen.counts_before(age))[open_at]

    def worst_quintile(estimate: np.ndarray) -> float:
        quintile = pd.qcut(estimate, 5, labels=False)
        means = pd.DataFrame({"estimate": estimate, "full": full}).groupby(quintile).mean()
        return float(np.abs(means["full"] - means["estimate"]).max())

    assert np.abs(full - truth).mean() > 0.03  # the unseen touches matter lead by lead
    assert worst_quintile(truth) < 0.012
    assert worst_quintile(naive) > 0.03
    assert abs(truth.mean() - label[open_at].mean()) < 0.02
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(label[open_at], truth) < roc_auc_score(label[open_at], full)


def test_the_point_in_time_truth_ignores_touches_at_or_after_the_scoring_moment(loaded):
    from features.data.demo.oracle import point_in_time_truth

    leads, touches = loaded.leads.iloc[:300], loaded.touchpoints
    touches = touches[touches["lead_id"].isin(set(leads["lead_id"]))]
    age = 5
    moment = leads["created_at"] + pd.Timedelta(days=age)
    before = point_in_time_truth(leads, touches, age, 90)
    demo_at = touches.iloc[:0].reindex(range(len(leads)))
    demo_at = demo_at.assign(lead_id=leads["lead_id"].to_numpy(), activity="demo_request",
                             channel="direct", occurred_at=moment.to_numpy())  # fmt: skip
    later = point_in_time_truth(leads, pd.concat([touches, demo_at], ignore_index=True), age, 90)
    np.testing.assert_array_equal(later, before)
    earlier = demo_at.assign(occurred_at=(moment - pd.Timedelta(hours=1)).to_numpy())
    sooner = point_in_time_truth(leads, pd.concat([touches, earlier], ignore_index=True), age, 90)
    assert (sooner > before).mean() > 0.9  # a demo request seen before the moment raises it
