"""Training examples from snapshots: each lead seen at a few ages, labelled by what happened next.

With `snapshots_per_lead`, each lead is seen at that many of the snapshot ages, drawn per lead
from a hash of its lead_id (`snapshot_age_mask`): many ages covered, each lead counted the same.

For a lead created at C and a snapshot age a, the snapshot moment is T = C + a days and
label = 1 if the lead was won within the horizon H after T (T < closed_at <= T + H), else 0.

Rules, in order (each skipped snapshot is counted in the SnapshotReport):
1. no `created_at`                                   -> skipped (no_created_at)
2. T after `now` (the lead is not that old yet)       -> skipped (future)
3. the lead closed (won or lost) at or before T        -> skipped (closed_before); it is no
   longer a lead to score
4. won with T < closed_at <= min(T + H, now)           -> label 1, even if the horizon is not over
5. T + H <= now (the horizon is over)                 -> label 0 (lost, won later, or still open)
6. closed lost with T < closed_at <= now               -> label 0: a lost deal is final
7. otherwise (horizon not over, still open at `now`)   -> skipped (censored): its label is unknown
Outcomes dated after `now` are treated as not known yet (counted as outcomes_after_now).
A lead with several outcome rows is judged by its earliest closing (counted).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel

from features.config import FeatureConfig

SNAPSHOT_COLUMNS = ("lead_id", "created_at", "as_of", "snapshot_age_days", "label")


class SnapshotReport(BaseModel):
    """What build_snapshots kept and left out, and why."""

    leads: int
    candidates: int  # leads with a created_at x snapshot ages
    kept: int
    positives: int
    skipped_no_created_at: int  # leads (each would have given len(ages) snapshots)
    skipped_future: int
    skipped_closed_before: int
    skipped_censored: int
    outcomes_after_now: int
    outcomes_without_lead: int
    leads_with_several_outcomes: int
    per_age: dict[str, dict[str, int]]  # age -> {kept, positives, censored, future, closed_before}

    def to_text(self) -> str:
        lines = [
            f"{self.kept} snapshots kept ({self.positives} won within the horizon) "
            f"from {self.leads} leads",
            f"left out: {self.skipped_censored} censored (horizon not over and no outcome yet), "
            f"{self.skipped_future} in the future, {self.skipped_closed_before} already closed, "
            f"{self.skipped_no_created_at} leads without created_at",
        ]
        if self.outcomes_after_now:
            lines.append(f"{self.outcomes_after_now} outcomes dated after 'now' ignored")
        if self.outcomes_without_lead:
            lines.append(f"{self.outcomes_without_lead} outcomes of unknown leads ignored")
        if self.leads_with_several_outcomes:
            lines.append(
                f"{self.leads_with_several_outcomes} leads with several outcomes: earliest used"
            )
        return "\n".join(lines)


def _utc(series: pd.Series, what: str) -> pd.Series:
    try:
        moments = pd.to_datetime(series, utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"column {what!r} must hold ISO 8601 date-times such as 2024-05-01T09:30:00Z ({error})"
        ) from None
    return moments.dt.tz_localize(None).dt.as_unit("ns")  # naive UTC: plain datetime64 maths


def build_snapshots(
    leads: pd.DataFrame,
    outcomes: pd.DataFrame | None,
    config: FeatureConfig | None = None,
    now: datetime | pd.Timestamp | str | None = None,
) -> tuple[pd.DataFrame, SnapshotReport]:
    """Snapshots (lead_id, created_at, as_of, snapshot_age_days, label) and a report.

    `now` is when the data was extracted: outcomes after it are unknown. Pass it explicitly for
    reproducible training sets; None means the current time.
    """
    config = config if config is not None else FeatureConfig()
    for column in ("lead_id", "created_at"):
        if column not in leads.columns:
            raise ValueError(
                f"leads have no {column!r} column: snapshots need timestamped leads "
                "(flat mode uses the leads and their label directly, without snapshots)"
            )
    now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts.tz_convert("UTC")
    now_ts = now_ts.as_unit("ns")
    if outcomes is None:
        outcomes = pd.DataFrame({"lead_id": pd.Series([], dtype=str),
                                 "closed_at": pd.Series([], dtype="datetime64[ns, UTC]"),
                                 "won": pd.Series([], dtype=bool)})  # fmt: skip
    missing = [c for c in ("lead_id", "closed_at", "won") if c not in outcomes.columns]
    if missing:
        raise ValueError(f"outcomes lack column(s) {missing}; expected lead_id, closed_at, won")

    lead_ids = leads["lead_id"].astype(str)
    if lead_ids.duplicated().any():
        dupes = lead_ids[lead_ids.duplicated()].unique()[:5]
        raise ValueError(
            f"leads have duplicate lead_id values {list(dupes)}; lead_id must be unique"
        )
    created = _utc(leads["created_at"], "created_at")

    closed = _utc(outcomes["closed_at"], "closed_at")
    out_ids = outcomes["lead_id"].astype(str)
    won = outcomes["won"].astype(bool).to_numpy()
    now64 = now_ts.tz_localize(None).to_datetime64()
    known = (closed <= now64).to_numpy()
    in_leads = out_ids.isin(set(lead_ids)).to_numpy()
    valid_outcome = known & in_leads & closed.notna().to_numpy()
    first = pd.DataFrame(
        {
            "lead_id": out_ids[valid_outcome].to_numpy(),
            "closed_at": closed[valid_outcome].to_numpy(),
            "won": won[valid_outcome],
        }
    ).sort_values(["lead_id", "closed_at", "won"], ascending=[True, True, False])  # fmt: skip
    several = int(first["lead_id"].duplicated().groupby(first["lead_id"]).any().sum())
    first = first.drop_duplicates("lead_id", keep="first").set_index("lead_id")

    has_created = created.notna().to_numpy()
    base_ids = lead_ids.to_numpy()[has_created]
    base_created = created.to_numpy()[has_created]
    closed_at = first["closed_at"].reindex(base_ids).to_numpy()  # NaT when no (known) outcome
    is_won = first["won"].reindex(base_ids).fillna(False).to_numpy(dtype=bool)
    horizon = pd.Timedelta(days=config.horizon_days).as_unit("ns").to_timedelta64()

    frames, per_age = [], {}
    totals = {"future": 0, "closed_before": 0, "censored": 0}
    drawn = snapshot_age_mask(base_ids, config.snapshot_ages_days, config.snapshots_per_lead)
    for j, age in enumerate(config.snapshot_ages_days):
        as_of = base_created + pd.Timedelta(days=age).as_unit("ns").to_timedelta64()
        has_outcome = ~pd.isna(closed_at) & drawn[:, j]
        future = (as_of > now64) & drawn[:, j]
        closed_before = ~future & has_outcome & (closed_at <= as_of)
        open_at = drawn[:, j] & ~future & ~closed_before
        end = as_of + horizon
        positive = open_at & has_outcome & is_won & (closed_at <= end)
        horizon_over = end <= now64
        lost_final = has_outcome & ~is_won  # closed lost after T (and before now): final
        negative = open_at & ~positive & (horizon_over | lost_final)
        censored = open_at & ~positive & ~negative
        keep = positive | negative
        frames.append(pd.DataFrame({
            "lead_id": base_ids[keep],
            "created_at": base_created[keep],
            "as_of": as_of[keep],
            "snapshot_age_days": float(age),
            "label": positive[keep].astype(np.int64),
        }))  # fmt: skip
        counts = {"kept": int(keep.sum()), "positives": int(positive.sum()),
                  "censored": int(censored.sum()), "future": int(future.sum()),
                  "closed_before": int(closed_before.sum())}  # fmt: skip
        per_age[f"{age:g}"] = counts
        for key in totals:
            totals[key] += counts[key]

    snapshots = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=list(SNAPSHOT_COLUMNS))  # fmt: skip
    for column in ("created_at", "as_of"):
        snapshots[column] = pd.to_datetime(snapshots[column]).dt.as_unit("ns").dt.tz_localize("UTC")
    snapshots["lead_id"] = snapshots["lead_id"].astype(str)
    report = SnapshotReport(
        leads=len(leads),
        candidates=int(drawn.sum()),
        kept=len(snapshots),
        positives=int(snapshots["label"].sum()),
        skipped_no_created_at=int((~has_created).sum()),
        skipped_future=totals["future"],
        skipped_closed_before=totals["closed_before"],
        skipped_censored=totals["censored"],
        outcomes_after_now=int((~known & closed.notna().to_numpy()).sum()),
        outcomes_without_lead=int((~in_leads).sum()),
        leads_with_several_outcomes=several,
        per_age=per_age,
    )
    return snapshots, report


def snapshot_age_mask(
    lead_ids: np.ndarray, ages_days: tuple[float, ...], per_lead: int | None
) -> np.ndarray:
    """(n_leads, len(ages_days)) bool: the snapshot ages each lead is seen at.

    Every age when `per_lead` is None or not below the number of ages; else `per_lead` of them per
    lead, each set of that size equally likely, drawn from a hash of the lead_id: the same lead
    gets the same ages in every run, on any machine and in any Spark bucket, and the draw knows
    nothing of the lead's outcome. Many ages are covered while every lead gives at most
    `per_lead` rows, so each lead counts the same and the rows stay as many as for `per_lead`
    fixed ages."""
    n, m = len(lead_ids), len(ages_days)
    if per_lead is None or per_lead >= m:
        return np.ones((n, m), dtype=bool)
    hashed = pd.util.hash_pandas_object(
        pd.Series(lead_ids, dtype=object).astype(str), index=False
    ).to_numpy(dtype=np.uint64)
    keys = _mix64(hashed[:, None] + np.arange(1, m + 1, dtype=np.uint64) * _GOLDEN)
    rank = np.argsort(np.argsort(keys, axis=1, kind="stable"), axis=1, kind="stable")
    return rank < per_lead


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: well-spread 64-bit keys from nearby ones (wraps around)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def attach_attributes(
    snapshots: pd.DataFrame, leads: pd.DataFrame, history: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Snapshot rows with the lead attributes next to them (ready for LeadFeaturizer.transform).

    With `history` (`lead_id`, `known_at`, attribute columns: what the service knew of each lead
    from `known_at` on), each snapshot gets the attributes as known at its `as_of` (the latest
    row with `known_at <= as_of`), and snapshots taken before the lead was first known are left
    out: nothing could have been scored then. Rows keep the snapshots' order.
    """
    if history is not None:
        return _attach_as_known(snapshots, leads, history)
    attributes = leads.drop(columns=[c for c in ("created_at",) if c in leads.columns])
    attributes = attributes.assign(lead_id=attributes["lead_id"].astype(str))
    return snapshots.merge(attributes, on="lead_id", how="left", validate="many_to_one")


def _attach_as_known(
    snapshots: pd.DataFrame, leads: pd.DataFrame, history: pd.DataFrame
) -> pd.DataFrame:
    columns = [c for c in leads.columns if c not in ("lead_id", "created_at")]
    known = history[["lead_id", "known_at", *columns]].assign(
        lead_id=history["lead_id"].astype(str),
        known_at=pd.to_datetime(history["known_at"], utc=True).dt.as_unit("ns"),
    )
    frame = snapshots.reset_index(drop=True).assign(_row=np.arange(len(snapshots)))
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True).dt.as_unit("ns")
    merged = pd.merge_asof(
        frame.sort_values("as_of", kind="stable"),
        known.sort_values("known_at", kind="stable"),
        left_on="as_of",
        right_on="known_at",
        by="lead_id",
        direction="backward",
    )
    merged = merged[merged["known_at"].notna()].sort_values("_row", kind="stable")
    return merged.drop(columns=["_row", "known_at"]).reset_index(drop=True)
