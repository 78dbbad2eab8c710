"""LeadFeaturizer: lead attributes + touchpoint aggregates as of T, for training and for serving.

scikit-learn style: `fit` learns only the attribute vocabularies; `transform` (frames, batch) and
`transform_records` (list of dicts, the API's single-lead path) return the same float64 rows,
because both go through the same normalisers and the same numpy core. Names, units, descriptions
and `describe()` come from the features' declarations (`features.feature.Feature`) beside their
computations in `features.attributes` and `features.touchpoints`; so do the facts (`facts_`:
which columns say the same thing about a lead, and how it reads), which the reasons use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.attributes import AttributeEncoder
from features.config import FeatureConfig
from features.data.values import datetime_ns
from features.data.vocabulary import ACTIVITIES, CHANNELS
from features.feature import FactColumns, Feature, facts_of
from features.touchpoint_arrays import (
    NAT,
    NS_PER_DAY,
    RecordTouchpoints,
    record_touchpoints,
    series_ns,
    touchpoint_arrays_from_frames,
    touchpoint_arrays_from_record,
)
from features.touchpoints import TouchpointArrays, touchpoint_aggregates, touchpoint_features

STATE_FORMAT = "leadscore.features/1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EMPTY_TOUCHES = TouchpointArrays(
    *(
        np.empty(0, dtype=t)
        for t in (np.int64, np.float64, np.int64, np.int64, np.int64, np.float64)
    )
)


class LeadFeaturizer:
    """Turns leads (attributes, created_at, as_of) and their touchpoints into a float64 matrix."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config if config is not None else FeatureConfig()

    # fit ------------------------------------------------------------------------------------
    def fit(
        self,
        leads: pd.DataFrame,
        attribute_types: dict[str, str],
        touchpoints: pd.DataFrame | None = None,
        timezone: str | None = None,
    ) -> LeadFeaturizer:
        """Learn attribute vocabularies. Touchpoints only switch the touchpoint features on.
        `timezone` (the data config's): date attributes' weekday, hour and month are read on its
        clocks (None: UTC)."""
        self.attributes_ = AttributeEncoder(
            self.config.rare_min_count,
            self.config.max_categories,
            self.config.wide_min_count,
            self.config.max_wide_categories,
        ).fit(leads, attribute_types, timezone)
        self.timestamped_ = "created_at" in leads.columns
        self.uses_touchpoints_ = touchpoints is not None
        self._build_outputs()
        return self

    def _build_outputs(self) -> None:
        touch_features = touchpoint_features(self.config)
        if self.uses_touchpoints_:
            selected = list(range(len(touch_features)))
        elif self.timestamped_:
            selected = [i for i, f in enumerate(touch_features) if f.name == "days_since_created"]
        else:
            selected = []
        self._touch_columns = np.array(selected, dtype=np.int64)
        self._all_touch_columns = len(selected) == len(touch_features)
        features = (*self.attributes_.features_, *(touch_features[i] for i in selected))
        names = [f.name for f in features]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(
                f"attribute column(s) {clashes} have the name of a touchpoint feature; rename "
                "them in the leads file or the column mapping"
            )
        self.features_: tuple[Feature, ...] = features  # the declaration of every output column
        # what the columns say about a lead: one entry per fact (a reason names each fact once)
        self.facts_: tuple[FactColumns, ...] = facts_of(features)
        self.feature_names_out_ = np.array(names, dtype=object)
        self.categorical_mask_ = np.array([f.categorical for f in features], dtype=bool)
        # NUMBER / CATEGORY / CALENDAR / DETAIL / WIDE per column (`features.feature`): what the
        # models read
        self.column_kinds_ = np.array([f.kind for f in features], dtype=np.int8)
        self._feature_by_name = {f.name: f for f in features}
        self._n_attribute_features = len(self.attributes_.features_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "attributes_"):
            raise RuntimeError("LeadFeaturizer is not fitted yet: call fit(leads, attribute_types)")

    @property
    def needs_as_of(self) -> bool:
        return bool(self.timestamped_ or self.uses_touchpoints_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        self._check_fitted()
        return self.feature_names_out_.copy()

    # batch ----------------------------------------------------------------------------------
    def transform(self, frame: pd.DataFrame, touchpoints: pd.DataFrame | None = None) -> np.ndarray:
        """Feature matrix (len(frame), n_features) for rows of `lead_id`, attributes, and, when
        the model uses time, `created_at` and `as_of` (the moment each row is scored)."""
        self._check_fitted()
        attributes = self.attributes_.transform(frame)
        if not len(self._touch_columns):
            return attributes
        n_attr = attributes.shape[1]
        if "as_of" not in frame.columns:
            raise ValueError(
                "the frame to score has no 'as_of' column: add the moment each lead is scored "
                "(training rows come from build_snapshots(), which adds it)"
            )
        as_of = series_ns(frame["as_of"], "as_of")
        if (as_of == NAT).any():
            bad = (
                frame.loc[as_of == NAT, "lead_id"]
                if "lead_id" in frame
                else frame.index[as_of == NAT]
            )
            raise ValueError(
                f"'as_of' is empty for lead(s) {list(bad[:5])}; give every row a moment"
            )
        if "created_at" in frame.columns:
            created = series_ns(frame["created_at"], "created_at")
            lead_age = np.where(created == NAT, np.nan, (as_of - created) / NS_PER_DAY)
        else:
            lead_age = np.full(len(frame), np.nan)
        arrays = _EMPTY_TOUCHES
        if self.uses_touchpoints_ and touchpoints is not None and len(touchpoints):
            if "lead_id" not in frame.columns:
                raise ValueError(
                    "the frame to score has no 'lead_id' column to join touchpoints on"
                )
            missing = [c for c in ("lead_id", "occurred_at", "channel", "activity")
                       if c not in touchpoints.columns]  # fmt: skip
            if missing:
                raise ValueError(
                    f"touchpoints lack column(s) {missing}; expected lead_id, occurred_at, "
                    "channel, activity and optionally campaign, value"
                )
            arrays = touchpoint_arrays_from_frames(frame["lead_id"], as_of, touchpoints)
        out = np.empty((len(frame), len(self.feature_names_out_)), dtype=np.float64)
        out[:, :n_attr] = attributes
        del attributes
        if self._all_touch_columns:
            touchpoint_aggregates(arrays, len(frame), lead_age, self.config, out=out[:, n_attr:])
        else:
            touch = touchpoint_aggregates(arrays, len(frame), lead_age, self.config)
            out[:, n_attr:] = touch[:, self._touch_columns]
        return out

    # API records ----------------------------------------------------------------------------
    def transform_records(
        self,
        records: Sequence[Mapping[str, Any]],
        return_touchpoints: bool = False,
        touch_moments: np.ndarray | None = None,
    ) -> np.ndarray | tuple[np.ndarray, RecordTouchpoints | None]:
        """Same rows as `transform` from API-style records, without pandas.

        A record is {"lead_id", "attributes": dict, "created_at": datetime|str|None,
        "as_of": datetime|str, "touchpoints": [{"occurred_at", "channel", "activity",
        "campaign", "value"}, ...]}. Many records go through the numpy core in one call: all
        their touchpoints are gathered into flat arrays first, attributes column by column.
        With `return_touchpoints`, also those flat arrays (None when the records went one by one
        or touchpoints are not features), so the policy's facts need no second pass.
        `touch_moments`: the touchpoints' moments already parsed (see `record_touchpoints`).
        """
        self._check_fitted()
        X, touches = self._records_matrix(records, touch_moments)
        return (X, touches) if return_touchpoints else X

    def _records_matrix(
        self, records: Sequence[dict[str, Any]], touch_moments: np.ndarray | None = None
    ) -> tuple[np.ndarray, RecordTouchpoints | None]:
        if len(records) <= 1:
            return self._transform_each(records, touch_moments), None
        n = len(records)
        out = np.empty((n, len(self.feature_names_out_)), dtype=np.float64)
        n_attr = self._n_attribute_features
        created_at = [r.get("created_at") for r in records]
        out[:, :n_attr] = self.attributes_.transform_records(
            [r.get("attributes") or {} for r in records], created_at
        )
        if not len(self._touch_columns):
            return out, None
        try:
            as_of, lead_age = self._many_moments(records, created_at)
        except OverflowError:  # a moment beyond int64 nanoseconds (after 2262): lead by lead
            return self._transform_each(records), None
        touches = None
        arrays = _EMPTY_TOUCHES
        if self.uses_touchpoints_:
            touches = record_touchpoints(
                [r.get("touchpoints") for r in records],
                as_of,
                [r.get("lead_id") for r in records],
                touch_moments,
            )
            if touches is None:  # a moment beyond int64 nanoseconds: exact python integers
                return self._transform_each(records), None
            arrays = touches.arrays
        if self._all_touch_columns:
            touchpoint_aggregates(arrays, n, lead_age, self.config, out=out[:, n_attr:])
        else:
            touch = touchpoint_aggregates(arrays, n, lead_age, self.config)
            out[:, n_attr:] = touch[:, self._touch_columns]
        return out, touches

    def _many_moments(
        self, records: Sequence[dict[str, Any]], created_at: list[Any]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(as_of ns, lead age in days) of many records; aware datetimes (what the API gives)
        without a call per value, anything else through `_moments`."""
        as_of = [r.get("as_of") for r in records]
        if all(v.__class__ is datetime and v.tzinfo is not None for v in as_of) and all(
            v is None or (v.__class__ is datetime and v.tzinfo is not None) for v in created_at
        ):
            moments = np.array([(v - _EPOCH) // _MICROSECOND * 1000 for v in as_of], dtype=np.int64)
            created = [None if v is None else (v - _EPOCH) // _MICROSECOND * 1000
                       for v in created_at]  # fmt: skip
            # float(int) rounds like the per-lead path: the same ages bit for bit
            lead_age = np.array(
                [math.nan if c is None else float(m - c) / NS_PER_DAY
                 for m, c in zip(moments.tolist(), created)],
                dtype=np.float64,
            )  # fmt: skip
            return moments, lead_age
        moments = np.empty(len(records), dtype=np.int64)
        lead_age = np.empty(len(records), dtype=np.float64)
        for i, record in enumerate(records):
            moment, created = self._moments(record, created_at[i])
            moments[i] = moment
            lead_age[i] = math.nan if created is None else float(moment - created) / NS_PER_DAY
        return moments, lead_age

    @staticmethod
    def _moments(record: dict[str, Any], created_at: Any) -> tuple[int, int | None]:
        """(as_of, created_at) of a record in ns; a clear error naming the lead when unusable."""
        lead_id = record.get("lead_id")
        as_of = datetime_ns(record.get("as_of"), f"lead {lead_id!r} as_of")
        if as_of is None:
            raise ValueError(f"lead {lead_id!r} has no 'as_of': give the moment the lead is scored")
        return as_of, datetime_ns(created_at, f"lead {lead_id!r} created_at")

    def _transform_each(
        self, records: Sequence[dict[str, Any]], touch_moments: np.ndarray | None = None
    ) -> np.ndarray:
        """One lead at a time (the fastest way for a single lead; exact for any year).
        `touch_moments`: one lead's touchpoints' moments already parsed (the API's)."""
        out = np.empty((len(records), len(self.feature_names_out_)), dtype=np.float64)
        n_attr = self._n_attribute_features
        for i, record in enumerate(records):
            lead_id = record.get("lead_id")
            created_at = record.get("created_at")
            out[i, :n_attr] = self.attributes_.transform_record(
                record.get("attributes") or {}, created_at
            )
            if not len(self._touch_columns):
                continue
            as_of, created = self._moments(record, created_at)
            lead_age = np.array(
                [math.nan if created is None else float(as_of - created) / NS_PER_DAY]
            )
            touches = record.get("touchpoints") or ()
            arrays = (
                touchpoint_arrays_from_record(
                    touches, as_of, lead_id, touch_moments if len(records) == 1 else None
                )
                if self.uses_touchpoints_ and touches
                else _EMPTY_TOUCHES
            )
            row = touchpoint_aggregates(arrays, 1, lead_age, self.config)[0]
            out[i, n_attr:] = row[self._touch_columns]
        return out

    # metadata -------------------------------------------------------------------------------
    def describe(self, name: str, value: float) -> str:
        """One plain sentence for sales, e.g. '3 pricing-page visits in the last 7 days'."""
        self._check_fitted()
        feature = self._feature_by_name.get(name)
        if feature is None:
            raise ValueError(f"unknown feature {name!r}; see get_feature_names_out()")
        return feature.describe(float(value) if value is not None else math.nan)

    def feature_table(self) -> pd.DataFrame:
        """name, categorical, unit, description of every output column (for docs and MLflow)."""
        self._check_fitted()
        return pd.DataFrame(
            {
                "name": list(self.feature_names_out_),
                "categorical": self.categorical_mask_,
                "unit": [f.unit for f in self.features_],
                "description": [f.description for f in self.features_],
            }
        )

    # state ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (no pickles): enough to rebuild the same transform."""
        self._check_fitted()
        return {
            "format": STATE_FORMAT,
            "config": self.config.model_dump(mode="json"),
            "attributes": self.attributes_.to_dict(),
            "timestamped": bool(self.timestamped_),
            "uses_touchpoints": bool(self.uses_touchpoints_),
            "channels": list(CHANNELS),
            "activities": list(ACTIVITIES),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> LeadFeaturizer:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"featurizer state has format {found!r}, expected {STATE_FORMAT!r}; "
                "retrain the model with this version of leadscore"
            )
        if state["channels"] != list(CHANNELS) or state["activities"] != list(ACTIVITIES):
            raise ValueError(
                "the model was trained with other channel/activity lists than this version of "
                "leadscore knows; retrain the model with this version"
            )
        # A state saved before the first-days counts existed has none: the same columns.
        featurizer = cls(FeatureConfig(**{"first_days": None, **state["config"]}))
        featurizer.attributes_ = AttributeEncoder.from_dict(state["attributes"])
        featurizer.timestamped_ = state["timestamped"]
        featurizer.uses_touchpoints_ = state["uses_touchpoints"]
        featurizer._build_outputs()
        return featurizer
