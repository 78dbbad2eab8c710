"""Snapshots and labels on hand-made timelines, including censored and future snapshots."""

from __future__ import annotations

import pandas as pd
import pytest

from features.config import FeatureConfig
from features.snapshots import attach_attributes, build_snapshots

DAY0 = pd.Timestamp("2024-01-01", tz="UTC")
CONFIG = FeatureConfig(snapshot_ages_days=(1, 7, 30), horizon_days=90)


def day(n: float) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(days=n)


def leads_frame(*ids: str, created=None) -> pd.DataFrame:
    created = created or [DAY0] * len(ids)
    return pd.DataFrame({"lead_id": list(ids), "created_at": pd.to_datetime(created, utc=True),
                         "industry": "software"})  # fmt: skip


def outcomes_frame(rows: list[tuple[str, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame({
        "lead_id": [r[0] for r in rows],
        "closed_at": pd.to_datetime([day(r[1]) for r in rows], utc=True),
        "won": [r[2] for r in rows],
    })  # fmt: skip


def labels(snapshots: pd.DataFrame) -> dict[tuple[str, float], int]:
    return {(r.lead_id, r.snapshot_age_days): r.label for r in snapshots.itertuples()}


def test_won_within_the_horizon_is_positive_and_closed_snapshots_are_left_out():
    snaps, report = build_snapshots(leads_frame("A"), outcomes_frame([("A", 20, True)]), CONFIG,
                                    now=day(400))  # fmt: skip
    assert labels(snaps) == {("A", 1.0): 1, ("A", 7.0): 1}  # at day 30 it is already won
    assert report.skipped_closed_before == 1 and report.kept == 2 and report.positives == 2
    assert snaps["as_of"].tolist() == [day(1), day(7)]
    assert str(snaps["as_of"].dtype) == "datetime64[ns, UTC]"


def test_a_win_after_the_horizon_is_negative_and_the_horizon_end_is_inclusive():
    snaps, _ = build_snapshots(leads_frame("B"), outcomes_frame([("B", 120, True)]), CONFIG,
                               now=day(400))  # fmt: skip
    # Day 1 + 90 = day 91 < 120: negative. Day 30 + 90 = day 120: won exactly at the end, positive.
    assert labels(snaps) == {("B", 1.0): 0, ("B", 7.0): 0, ("B", 30.0): 1}


def test_a_lost_deal_is_final_even_before_the_horizon_ends():
    snaps, report = build_snapshots(leads_frame("C"), outcomes_frame([("C", 50, False)]), CONFIG,
                                    now=day(60))  # fmt: skip
    assert labels(snaps) == {("C", 1.0): 0, ("C", 7.0): 0, ("C", 30.0): 0}
    assert report.skipped_censored == 0


def test_open_leads_whose_horizon_is_not_over_are_censored_and_counted():
    snaps, report = build_snapshots(leads_frame("D"), None, CONFIG, now=day(40))
    assert snaps.empty
    assert report.skipped_censored == 3 and report.kept == 0
    assert report.per_age["30"] == {"kept": 0, "positives": 0, "censored": 1, "future": 0,
                                    "closed_before": 0}  # fmt: skip


def test_open_leads_whose_horizon_is_over_are_negative():
    snaps, report = build_snapshots(leads_frame("E"), None, CONFIG, now=day(200))
    assert labels(snaps) == {("E", 1.0): 0, ("E", 7.0): 0, ("E", 30.0): 0}
    # Horizon of the day-30 snapshot ends on day 120; with now = day 100 only it is censored.
    snaps, report = build_snapshots(leads_frame("E"), None, CONFIG, now=day(100))
    assert labels(snaps) == {("E", 1.0): 0, ("E", 7.0): 0}
    assert report.skipped_censored == 1


def test_a_known_win_is_kept_even_when_the_horizon_is_not_over():
    snaps, report = build_snapshots(leads_frame("F"), outcomes_frame([("F", 35, True)]), CONFIG,
                                    now=day(40))  # fmt: skip
    assert labels(snaps) == {("F", 1.0): 1, ("F", 7.0): 1, ("F", 30.0): 1}
    assert report.skipped_censored == 0


def test_snapshots_not_reached_yet_are_left_out_and_counted():
    snaps, report = build_snapshots(leads_frame("G"), outcomes_frame([("G", 3, True)]), CONFIG,
                                    now=day(5))  # fmt: skip
    assert labels(snaps) == {("G", 1.0): 1}
    assert report.skipped_future == 2 and report.per_age["7"]["future"] == 1


def test_outcomes_after_now_are_unknown_and_the_snapshot_is_censored():
    snaps, report = build_snapshots(leads_frame("H"), outcomes_frame([("H", 20, True)]), CONFIG,
                                    now=day(10))  # fmt: skip
    # At day 10 nobody knows about the day-20 win: both reachable snapshots are censored.
    assert snaps.empty
    assert report.outcomes_after_now == 1 and report.skipped_censored == 2
    assert report.skipped_future == 1


def test_several_outcomes_use_the_earliest_closing():
    outcomes = outcomes_frame([("I", 60, True), ("I", 10, False)])
    snaps, report = build_snapshots(leads_frame("I"), outcomes, CONFIG, now=day(400))
    assert labels(snaps) == {("I", 1.0): 0, ("I", 7.0): 0}  # lost on day 10 ends it
    assert report.leads_with_several_outcomes == 1


def test_leads_without_created_at_and_outcomes_of_unknown_leads_are_counted():
    leads = leads_frame("J", "K", created=[DAY0, None])
    outcomes = outcomes_frame([("J", 5, True), ("nobody", 5, True)])
    snaps, report = build_snapshots(leads, outcomes, CONFIG, now=day(400))
    assert set(snaps["lead_id"]) == {"J"}
    assert report.skipped_no_created_at == 1 and report.outcomes_without_lead == 1
    assert report.candidates == 3
    assert "1 leads without created_at" in report.to_text()


def test_report_text_names_every_reason():
    _, report = build_snapshots(leads_frame("D"), None, CONFIG, now=day(40))
    assert report.to_text() == (
        "0 snapshots kept (0 won within the horizon) from 1 leads\n"
        "left out: 3 censored (horizon not over and no outcome yet), 0 in the future, "
        "0 already closed, 0 leads without created_at"
    )


def test_flat_leads_are_refused_with_the_fix():
    with pytest.raises(
        ValueError,
        match=r"leads have no 'created_at' column: snapshots need "
        r"timestamped leads \(flat mode uses the leads and their label directly",
    ):
        build_snapshots(pd.DataFrame({"lead_id": ["a"]}), None, CONFIG, now=day(1))


def test_bad_outcomes_and_duplicate_leads_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"outcomes lack column\(s\) \['won'\]; expected lead_id, "
                       r"closed_at, won"):  # fmt: skip
        build_snapshots(leads_frame("A"), outcomes_frame([("A", 1, True)]).drop(columns="won"),
                        CONFIG, now=day(1))  # fmt: skip
    with pytest.raises(
        ValueError, match=r"duplicate lead_id values \['A'\]; lead_id must be unique"
    ):
        build_snapshots(leads_frame("A", "A"), None, CONFIG, now=day(1))


def test_attach_attributes_puts_lead_attributes_next_to_each_snapshot():
    snaps, _ = build_snapshots(leads_frame("E"), None, CONFIG, now=day(200))
    frame = attach_attributes(snaps, leads_frame("E"))
    assert frame["industry"].tolist() == ["software"] * 3
    assert frame["created_at"].tolist() == [DAY0] * 3


DRAWN = FeatureConfig(snapshot_ages_days=(1, 3, 7, 14, 30, 60, 90), snapshots_per_lead=2)


def test_drawn_ages_give_each_lead_as_many_snapshots_and_cover_every_age():
    ids = [f"L{i}" for i in range(700)]
    snaps, report = build_snapshots(leads_frame(*ids), None, DRAWN, now=day(1000))
    per_lead = snaps.groupby("lead_id").size()
    assert len(per_lead) == 700 and (per_lead == 2).all()
    assert report.candidates == 1400 and report.kept == 1400
    shares = snaps["snapshot_age_days"].value_counts(normalize=True)
    assert sorted(shares.index) == [1, 3, 7, 14, 30, 60, 90]
    assert (abs(shares - 1 / 7) < 0.035).all()  # 1/7 each, give or take sampling


def test_a_lead_gets_the_same_ages_whatever_else_is_in_the_data_and_whatever_its_outcome():
    ids = [f"L{i}" for i in range(50)]
    alone = {
        lead: set(build_snapshots(leads_frame(lead), None, DRAWN, now=day(1000))[0]
                  ["snapshot_age_days"])
        for lead in ids[:10]
    }  # fmt: skip
    together, _ = build_snapshots(leads_frame(*reversed(ids)), None, DRAWN, now=day(1000))
    won, _ = build_snapshots(
        leads_frame(*ids), outcomes_frame([(i, 400, True) for i in ids]), DRAWN, now=day(1000)
    )
    for lead, ages in alone.items():
        assert set(together.loc[together["lead_id"] == lead, "snapshot_age_days"]) == ages
        assert set(won.loc[won["lead_id"] == lead, "snapshot_age_days"]) == ages
    assert len({frozenset(a) for a in alone.values()}) > 1  # not the same two ages for all


def test_a_lead_closed_before_a_drawn_age_is_counted_among_the_drawn_ones_only():
    snaps, report = build_snapshots(leads_frame("A"), outcomes_frame([("A", 0.5, False)]),
                                    DRAWN, now=day(1000))  # fmt: skip
    assert len(snaps) == 0
    assert report.candidates == 2 and report.skipped_closed_before == 2
    assert sum(age["closed_before"] for age in report.per_age.values()) == 2


def test_every_age_without_snapshots_per_lead_or_with_as_many_as_there_are_ages():
    ids = [f"L{i}" for i in range(20)]
    for config in (DRAWN.model_copy(update={"snapshots_per_lead": None}),
                   DRAWN.model_copy(update={"snapshots_per_lead": 7})):  # fmt: skip
        snaps, _ = build_snapshots(leads_frame(*ids), None, config, now=day(1000))
        assert len(snaps) == 20 * 7


def test_snapshots_per_lead_below_one_is_refused():
    with pytest.raises(ValueError, match="snapshots_per_lead"):
        FeatureConfig(snapshots_per_lead=0)
