"""Settings of the feature pipeline: windows, decay, snapshot ages, label horizon, rare categories."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FeatureConfig(BaseModel):
    """How touchpoints are aggregated, how snapshots are taken and how categories are grouped.

    Every duration is in days. The defaults suit B2B funnels of a few weeks to a few months.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    windows_days: tuple[int, ...] = Field(
        (7, 30, 90),
        description="Look-back windows for touchpoint counts; 'all time' is always added.",
    )
    half_life_days: float = Field(
        14.0, gt=0, description="A touch this many days old counts half in the engagement score."
    )
    first_days: int | None = Field(
        None,
        gt=0,
        description="Touch counts in the lead's first this many days after creation (as far as "
        "they happened before the scoring moment): what a lead did early stays readable as it "
        "ages (21 on the demo data; issue 17). None, the default: no such features (as models "
        "saved before they existed read).",
    )
    velocity_recent_days: int = Field(7, gt=0, description="Recent period of the velocity feature.")
    velocity_prior_days: int = Field(
        30, gt=0, description="Period just before the recent one that velocity compares against."
    )
    snapshot_ages_days: tuple[float, ...] = Field(
        (1, 7, 30), description="Lead ages at which training snapshots are taken."
    )
    snapshots_per_lead: int | None = Field(
        None,
        ge=1,
        description="Snapshot ages each lead is seen at, drawn per lead from snapshot_ages_days "
        "(by a hash of its lead_id): many ages covered, rows as for this many. None: every age.",
    )
    horizon_days: float = Field(90, gt=0, description="A snapshot is positive if won within this.")
    rare_min_count: int = Field(
        20, ge=1, description="Categories seen fewer times than this in fit are grouped as 'other'."
    )
    max_categories: int = Field(
        100,
        ge=1,
        le=250,
        description="Most frequent categories kept per column (HistGradientBoosting allows < 255).",
    )
    wide_min_count: int = Field(
        3,
        ge=1,
        description="A column of more values than max_categories, whose values seen at least "
        "this many times in fit outnumber the categories it keeps, also gets a code over all of "
        "those (most frequent first, at most max_wide_categories; rare or new: 'other'), which "
        "target-encoding candidates read.",
    )
    max_wide_categories: int = Field(
        2000,
        ge=0,
        description="Most frequent categories kept per column for target encoding; 0: none.",
    )

    @field_validator("windows_days", "snapshot_ages_days")
    @classmethod
    def _positive_sorted_unique(cls, value: tuple, info) -> tuple:
        if not value:
            raise ValueError(f"{info.field_name} must list at least one number of days")
        if any(v <= 0 for v in value):
            raise ValueError(
                f"{info.field_name} must be positive numbers of days, got {list(value)}"
            )
        return tuple(sorted(set(value)))
