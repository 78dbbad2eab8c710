"""Parquet files written by pandas with their index (no `index=False`) read like clean ones."""

from __future__ import annotations

import pandas as pd

from features.data.config import DataConfig
from features.data.loading import load_lead_data


def _frames():
    leads = pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(12)],
        "created_at": pd.to_datetime(["2024-01-01T09:00:00Z"] * 12, utc=True),
        "industry": ["Software", "Retail", "Mining"] * 4,
        "employees": [float(i * 10) for i in range(12)],
    })  # fmt: skip
    touches = pd.DataFrame({
        "lead_id": [f"L{i % 12}" for i in range(30)],
        "occurred_at": pd.to_datetime(["2024-01-02T10:00:00Z"] * 30, utc=True),
        "channel": ["email", "paid_search", "webinar"] * 10,
        "activity": ["email_open", "visit", "webinar_attend"] * 10,
    })  # fmt: skip
    return leads, touches


def _load(tmp_path, name, leads, touches, **to_parquet):
    leads.to_parquet(tmp_path / f"{name}_leads.parquet", **to_parquet)
    touches.to_parquet(tmp_path / f"{name}_touches.parquet", **to_parquet)
    return load_lead_data(DataConfig(
        leads=tmp_path / f"{name}_leads.parquet", touchpoints=tmp_path / f"{name}_touches.parquet"
    ))  # fmt: skip


def test_a_filtered_frame_saved_with_its_index_gives_the_same_leads_and_touchpoints(tmp_path):
    leads, touches = _frames()
    odd_leads = leads.iloc[1::2]  # index 1, 3, 5, ...: what a filter leaves behind
    odd_touches = touches[touches["lead_id"].isin(odd_leads["lead_id"])]
    clean = _load(tmp_path, "clean", odd_leads, odd_touches, index=False)
    indexed = _load(tmp_path, "indexed", odd_leads, odd_touches)  # pandas' default keeps the index
    assert list(indexed.leads["industry"].astype(str)) == ["Retail", "Software", "Mining"] * 2
    assert len(indexed.touchpoints) == len(odd_touches) == 15
    pd.testing.assert_frame_equal(indexed.leads, clean.leads)
    pd.testing.assert_frame_equal(indexed.touchpoints, clean.touchpoints)


def test_lead_id_saved_as_the_index_is_read_back_as_a_column(tmp_path):
    leads, touches = _frames()
    clean = _load(tmp_path, "clean", leads, touches, index=False)
    by_id = _load(tmp_path, "by_id", leads.set_index("lead_id"), touches)
    pd.testing.assert_frame_equal(by_id.leads[clean.leads.columns], clean.leads)
    assert list(by_id.leads["lead_id"].astype(str))[:3] == ["L0", "L1", "L2"]
