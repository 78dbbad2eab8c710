"""A sample of leads (every row of each): the sub-scores and the deal value model on large data."""

from __future__ import annotations

import numpy as np

from training.data import sample_leads_rows


def test_a_sample_of_leads_keeps_every_row_of_each_and_draws_as_before():
    leads = np.repeat(np.arange(400), 3)
    text = np.array([f"L-{i % 37:03d}-{i}" for i in leads], dtype=object)
    rows = sample_leads_rows(text, 300, seed=4)
    chosen = set(text[rows])
    assert len(chosen) == 100  # a quarter of the leads for a quarter of the rows
    assert set(np.flatnonzero(np.isin(text, list(chosen)))) == set(rows)  # all their rows
    # the leads `rng.choice` draws from the sorted distinct ids (the same seed, the same sample
    # as before the ids were factorised)
    drawn = np.random.default_rng(4).choice(np.unique(text), 100, replace=False)
    assert np.array_equal(rows, np.flatnonzero(np.isin(text, drawn)))
    assert np.array_equal(sample_leads_rows(text, 5000, seed=4), np.arange(len(text)))


def test_examples_cut_to_the_sampled_rows_keep_each_part_in_order():
    import pandas as pd

    from training.data import Examples

    frame = pd.DataFrame({"lead_id": [f"L{i}" for i in range(10)], "x": np.arange(10.0)})
    examples = Examples(frame, np.arange(10) % 2, True, pd.Timestamp("2024-01-01", tz="UTC"), {})
    train, holdout = np.array([1, 4, 7]), np.array([8, 2])
    kept, (train_at, holdout_at) = examples.keep(train, holdout)
    assert len(kept.frame) == 5 and kept.frame.index.tolist() == list(range(5))
    assert kept.frame["lead_id"].iloc[train_at].tolist() == ["L1", "L4", "L7"]
    assert kept.frame["lead_id"].iloc[holdout_at].tolist() == ["L8", "L2"]
    assert kept.labels[train_at].tolist() == examples.labels[train].tolist()
    assert kept.labels[holdout_at].tolist() == examples.labels[holdout].tolist()
    assert (kept.timestamped, kept.now, kept.snapshot_report) == (True, examples.now, {})
