"""The oracle recomputed from the files: the proof that it uses only what a model could see.

`oracle.parquet` holds `lead_id, true_win_probability`; it is never a feature. Here the same
probabilities come back from the canonical frames `load_lead_data` returns, by the effects of
`process` looked up by their export spellings.
"""

from __future__ import annotations

import numpy as np

from features.data.demo.process import (
    COUNTRIES,
    DO_NOT_EMAIL_EFFECT,
    EARLY_DAYS,
    FUNCTIONS,
    INDUSTRIES,
    MISSING_SENIORITY_EFFECT,
    MISSING_SIZE_EFFECT,
    PERSONAL_EMAIL_EFFECT,
    REGION_EFFECT,
    SENIORITY,
    SIZES,
    SOURCE_EFFECT,
    add_activity_counts,
    job_titles,
    referrer_names,
    shape_logit,
    shape_named,
    title_states_function,
    true_win_probability,
)
from features.data.vocabulary import ACTIVITIES, normalise_channel


def _text_key(values) -> np.ndarray:
    import pandas as pd

    series = pd.Series(values, dtype="str")
    return series.str.lower().str.split().str.join(" ").to_numpy(dtype=object, na_value=None)


def oracle_from_observables(leads, touchpoints, shape: str = "default") -> np.ndarray:
    """Recompute the true win probabilities from the canonical frames `load_lead_data` returns,
    for data of the demo shape `shape` (`process.SHAPES`).

    This is the proof that the oracle uses only what a model could see: the lead attributes as
    exported and the touchpoints of the first 21 days. Valid for leads created at least 21 days
    before the export date (later touchpoints of younger leads are not in the files yet)."""
    import pandas as pd

    process_shape = shape_named(shape)

    def effect(column: str, table: dict[str, float], missing: float = 0.0) -> np.ndarray:
        keys = _text_key(leads[column])
        lookup = {" ".join(k.lower().split()): v for k, v in table.items()}
        return np.array([missing if k is None else lookup.get(k, missing) for k in keys])

    region_of = {sp: REGION_EFFECT[v[0]] for v in COUNTRIES.values() for sp in v[2]}
    seniority_of = {sp: v[1] for v in SENIORITY.values() for sp in v[2]}
    function_of = {
        title: fn_effect
        for level in SENIORITY
        if title_states_function(level)
        for fn, (_, fn_effect, _) in FUNCTIONS.items()
        for title in job_titles(level, fn)
    }
    sources = pd.Series(leads["lead_source"]).map(normalise_channel)
    dne = pd.Series(leads["do_not_email"]).fillna(False).to_numpy(dtype=bool)
    attribute_logit = (
        effect("industry", {k: v[1] for k, v in INDUSTRIES.items()})
        + effect("company_size", {k: v[1] for k, v in SIZES.items()}, MISSING_SIZE_EFFECT)
        + effect("country", region_of)
        + effect("seniority", seniority_of, MISSING_SENIORITY_EFFECT)
        + effect("job_title", function_of)
        + effect("email_type", {"Personal": PERSONAL_EMAIL_EFFECT})
        + sources.map(SOURCE_EFFECT).fillna(0.0).to_numpy()
        + np.where(dne, DO_NOT_EMAIL_EFFECT, 0.0)
        + _shape_part(leads, process_shape)
    )
    index = pd.Series(np.arange(len(leads)), index=leads["lead_id"].to_numpy())
    lead = index.reindex(touchpoints["lead_id"].to_numpy()).to_numpy()
    created = leads["created_at"].to_numpy()
    age = (
        touchpoints["occurred_at"].to_numpy() - created[np.nan_to_num(lead, nan=0).astype(np.int64)]
    )
    early = (
        ~np.isnan(lead) & (age >= np.timedelta64(0, "s")) & (age < np.timedelta64(EARLY_DAYS, "D"))
    )
    activity = pd.Categorical(touchpoints["activity"], categories=list(ACTIVITIES)).codes
    counts = np.zeros((len(leads), len(ACTIVITIES)), dtype=np.int32)
    add_activity_counts(counts, lead[early].astype(np.int64), activity[early].astype(np.int64))
    return true_win_probability(attribute_logit, counts)


def _shape_part(leads, shape) -> np.ndarray:
    """The shape's part of the logit (`process.shape_logit`) from the referrer and renewal columns
    as read back."""
    import pandas as pd

    referrer = np.full(len(leads), -1, dtype=np.int64)
    if shape.referrers:
        index = {name.lower(): i for i, name in enumerate(referrer_names(shape.referrers))}
        keys = _text_key(leads["referrer"])
        referrer = np.array([-1 if k is None else index.get(k, -1) for k in keys], dtype=np.int64)
    renewal = np.full(len(leads), np.datetime64("NaT"), dtype="datetime64[s]")
    if shape.renewal_share:
        renewal = _utc(pd.Series(leads["contract_renewal"]))
    return shape_logit(shape, _utc(pd.Series(leads["created_at"])), referrer, renewal)


def _utc(moments) -> np.ndarray:
    """Zone-aware moments as naive UTC datetime64[s] (NaT where missing)."""
    return moments.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
