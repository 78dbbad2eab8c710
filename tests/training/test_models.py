"""The candidate grid: which model settings are searched for which data."""

import pytest

from training.models import Candidate, candidates


def _names(cands):
    return [c.name for c in cands]


def test_small_data_with_categories_also_tries_ordinal_category_codes():
    cands = candidates("small", win_rate=0.4, rows=8_000, categorical=True)
    ordinal = [c for c in cands if c.params.get("categories") == "ordinal"]
    native = [c for c in cands if c.kind == "gradient_boosting" and "categories" not in c.params]
    assert len(ordinal) == 2 and len(native) == 1
    assert sorted(c.params["learning_rate"] for c in ordinal) == [0.03, 0.05]
    assert [c.params["C"] for c in cands if c.kind == "logistic"] == [0.01, 0.1]


def test_large_data_with_few_wins_still_tries_the_strong_regularisation():
    def strengths(rows, win_rate):
        cands = candidates("small", win_rate=win_rate, rows=rows, categorical=True)
        return [c.params["C"] for c in cands if c.kind == "logistic"]

    assert strengths(500_000, 0.4) == [0.1]  # 200,000 wins: one strength
    assert strengths(180_000, 0.027) == [0.01, 0.1]  # ~4,900 wins
    assert strengths(180_000, 0.973) == [0.01, 0.1]  # ~4,900 losses: the rarer outcome
    assert strengths(400_000, 0.025) == [0.01, 0.1]  # 10,000 wins
    assert strengths(400_000, 0.026) == [0.1]  # 10,400 wins
    # the other small-data choices stay by rows: no ordinal boosting variants at this size
    few_wins = candidates("small", win_rate=0.027, rows=180_000, categorical=True)
    assert not any("categories" in c.params for c in few_wins)


def test_no_ordinal_variants_without_categories_or_on_large_data():
    for kwargs in ({"rows": 8_000, "categorical": False}, {"rows": 500_000, "categorical": True}):
        cands = candidates("small", win_rate=0.4, **kwargs)
        assert not any("categories" in c.params for c in cands), kwargs
        assert len([c for c in cands if c.kind == "gradient_boosting"]) == 2


def test_tiny_search_has_its_two_candidates_and_unknown_search_names_the_choices():
    assert _names(candidates("tiny", rows=8_000)) == [
        "logistic(C=0.1,splines=True)",
        "gradient_boosting(l2_regularization=1.0,learning_rate=0.05,max_features=0.5,max_leaf_nodes=15,"
        "min_samples_leaf=40)",
    ]
    with pytest.raises(ValueError, match="unknown search 'huge'; use small, wide, tiny or none"):
        candidates("huge")


@pytest.mark.parametrize("search", ["small", "wide", "tiny"])
@pytest.mark.parametrize("rows", [500, 8_000, 500_000])
def test_the_logistic_regressions_come_first_so_a_budget_cuts_only_boosters(search, rows):
    kinds = [c.kind for c in candidates(search, win_rate=0.1, rows=rows, categorical=True)]
    first_booster = kinds.index("gradient_boosting")
    assert set(kinds[:first_booster]) == {"logistic"}
    assert "logistic" not in kinds[first_booster:]


def test_calendar_parts_add_the_strongest_logistic_with_them_target_encoded_second():
    for search, rows in (("small", 8_000), ("wide", 8_000), ("small", 500_000)):
        plain = candidates(search, win_rate=0.4, rows=rows)
        dated = candidates(search, win_rate=0.4, rows=rows, calendar=True)
        assert dated[1] == Candidate("logistic", {**plain[0].params, "calendar": "target"})
        assert dated[:1] + dated[2:] == plain
    for search in ("tiny", "none"):  # tests and huge data: nothing added
        assert candidates(search, rows=8_000, calendar=True) == candidates(search, rows=8_000)


def test_detail_columns_add_the_strongest_logistics_on_the_compact_columns_first():
    for search, rows in (("small", 8_000), ("wide", 8_000), ("small", 500_000)):
        for calendar in (False, True):
            plain = candidates(search, win_rate=0.4, rows=rows, calendar=calendar)
            strongest = [c for c in plain if c.kind == "logistic"
                         and c.params["C"] == plain[0].params["C"]]  # fmt: skip
            assert len(strongest) == 1 + calendar
            both = candidates(search, win_rate=0.4, rows=rows, calendar=calendar, compact=True)
            compact = [
                Candidate("logistic", {**c.params, "features": "compact"}) for c in strongest
            ]
            assert both == compact + plain
    for search in ("tiny", "none"):  # tests and huge data: nothing added
        assert candidates(search, rows=8_000, compact=True) == candidates(search, rows=8_000)


def test_wide_codes_add_the_first_logistic_with_their_one_hot_at_each_strength_right_after_it():
    for search, rows in (("small", 8_000), ("wide", 8_000), ("small", 500_000)):
        for calendar in (False, True):
            for compact in (False, True):
                plain = candidates(search, win_rate=0.4, rows=rows, calendar=calendar,
                                   compact=compact)  # fmt: skip
                wide = candidates(search, win_rate=0.4, rows=rows, calendar=calendar,
                                  compact=compact, wide=True)  # fmt: skip
                first = plain[0]
                assert wide[:4] == [first] + [
                    Candidate("logistic", {**first.params, "categories": "wide_onehot",
                                           "wide_C": c})
                    for c in (0.1, 0.3, 1.0)
                ]  # fmt: skip
                added = [c for c in wide if c.params.get("categories") == "wide_onehot"]
                assert len(added) == 3 * (1 + calendar)  # and the first's calendar variant
                assert [c for c in wide if c not in added] == plain
                assert not any(c.params.get("categories") == "target" for c in wide)
    for search in ("tiny", "none"):  # tests and huge data: nothing added
        assert candidates(search, rows=8_000, wide=True) == candidates(search, rows=8_000)


def test_the_served_model_learns_from_the_holdout_too_when_its_outcomes_are_few():
    import numpy as np

    from training.train import refits_by_default

    def labels(n, wins):
        return np.r_[np.ones(wins, dtype=int), np.zeros(n - wins, dtype=int)]

    assert refits_by_default(labels(100_000, 40_000))  # small data: always
    assert not refits_by_default(labels(300_000, 45_000))  # many of both: the training part
    assert refits_by_default(labels(224_000, 6_000))  # few wins: the holdout's matter
    assert refits_by_default(labels(224_000, 218_000))  # few losses alike
    assert refits_by_default(labels(400_000, 10_000))
    assert not refits_by_default(labels(400_000, 10_001))
