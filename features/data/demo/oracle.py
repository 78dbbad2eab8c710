"""The oracle recomputed from the files: the proof that it uses only what a model could see.

`oracle.parquet` holds `lead_id, true_win_probability`; it is never a feature. Here the same
probabilities come back from the canonical frames `load_lead_data` returns, by the effects of
`process` looked up by their export spellings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from features.data.demo.process import (
    ACTIVITY_EFFECT,
    ACTIVITY_PACE,
    COUNTRIES,
    DO_NOT_EMAIL_EFFECT,
    EARLY_DAYS,
    EARLY_RATE,
    EARLY_TIMING,
    ENGAGEMENT_SD,
    FUNCTIONS,
    HIGH_SHARE_LOGIT,
    HIGH_SPLIT,
    INDUSTRIES,
    INTENT_SD,
    INTERCEPT,
    LOSS_AGE_BETA,
    LOSS_CLOSE_SHARE,
    LOSS_FIRST_DAY,
    LOSS_SPAN_DAYS,
    LOW_SPLIT,
    MISSING_SENIORITY_EFFECT,
    MISSING_SIZE_EFFECT,
    MISSING_SIZE_STRETCH,
    OTHER_PERSONAL,
    PERSONAL_EMAIL_EFFECT,
    REGION_EFFECT,
    SENIORITY,
    SENIORITY_PACE,
    SIZES,
    SOURCE_EFFECT,
    STUDENT_PERSONAL,
    STUDENT_SMALLEST,
    Shape,
    activity_terms,
    add_activity_counts,
    job_titles,
    referrer_names,
    shape_logit,
    shape_named,
    title_states_function,
    true_win_close_cdf,
    true_win_probability,
    true_win_within,
    win_close_shape,
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
    seen = _observables(leads, touchpoints, shape)
    counts = seen.counts_before(EARLY_DAYS)
    return true_win_probability(seen.attribute_logit, counts)


@dataclass
class _Observables:
    """What the files say of each lead, in the generator's terms."""

    attribute_logit: np.ndarray  # the attributes' part of the true logit (shape part included)
    attribute_pace: np.ndarray  # the attributes' part of a win's pace (`process.win_close_shape`)
    seniority: np.ndarray  # index into SENIORITY, -1: unreadable
    size: np.ndarray  # index into SIZES, -1: unreadable
    personal: np.ndarray  # 1 personal email, 0 business, -1 unreadable
    do_not_email: np.ndarray  # bool
    lead: np.ndarray  # per touchpoint: index of its lead
    age: np.ndarray  # per touchpoint: days after its lead's creation
    activity: np.ndarray  # per touchpoint: index into ACTIVITIES

    def counts_before(self, days: float) -> np.ndarray:
        """Activity counts (n_leads, len(ACTIVITIES)) of the touchpoints in [0, days) after
        creation."""
        chosen = (self.age >= 0) & (self.age < days)
        counts = np.zeros((len(self.attribute_logit), len(ACTIVITIES)), dtype=np.int32)
        add_activity_counts(counts, self.lead[chosen], self.activity[chosen])
        return counts


def _observables(leads, touchpoints, shape: str) -> _Observables:
    import pandas as pd

    process_shape = shape_named(shape)
    terms = _attribute_terms(leads)

    def effect(term: str) -> np.ndarray:
        return _effect(*terms[term])

    attribute_logit = (
        effect("industry")
        + effect("company_size")
        + effect("region")
        + effect("seniority")
        + effect("function")
        + effect("email_type")
        + effect("lead_source")
        + effect("do_not_email")
        + shape_logit(process_shape, *_shape_inputs(leads, process_shape))
    )
    size, seniority = terms["company_size"][0], terms["seniority"][0]
    attribute_pace = _effect(size, [v[2] for v in SIZES.values()], MISSING_SIZE_STRETCH) + _effect(
        seniority, [SENIORITY_PACE.get(level, 0.0) for level in SENIORITY]
    )
    index = pd.Series(np.arange(len(leads)), index=leads["lead_id"].to_numpy())
    lead = index.reindex(touchpoints["lead_id"].to_numpy()).to_numpy()
    known = ~np.isnan(lead)
    lead = np.nan_to_num(lead, nan=0).astype(np.int64)
    created = leads["created_at"].to_numpy()
    age = (touchpoints["occurred_at"].to_numpy() - created[lead]) / np.timedelta64(1, "D")
    activity = pd.Categorical(touchpoints["activity"], categories=list(ACTIVITIES)).codes
    known &= activity >= 0
    return _Observables(
        attribute_logit, attribute_pace, seniority, size, terms["email_type"][0],
        terms["do_not_email"][0] == 1, lead[known], age[known], activity[known].astype(np.int64),
    )  # fmt: skip


def _effect(codes: np.ndarray, effects: list[float], missing: float = 0.0) -> np.ndarray:
    return np.where(codes >= 0, np.append(effects, missing)[codes], missing)


def _attribute_terms(leads) -> dict[str, tuple[np.ndarray, list[float], float]]:
    """The attribute terms of the true logit, as the files are read back: per term, the code of
    each lead's value (-1: unreadable), each code's effect and the effect of an unreadable value.
    The values behind the codes are the process's (an industry, a size band, a country's region,
    a seniority level, a job title's function, a personal email, a lead-source channel, opted out
    of email); `attribute_levels` names them."""
    import pandas as pd

    def keys_of(column: str, table: dict[str, int]) -> np.ndarray:
        lookup = {" ".join(k.lower().split()): v for k, v in table.items()}
        return np.array([-1 if k is None else lookup.get(k, -1) for k in _text_key(leads[column])])

    region_of = {sp: list(REGION_EFFECT).index(v[0]) for v in COUNTRIES.values() for sp in v[2]}
    seniority_of = {sp: i for i, v in enumerate(SENIORITY.values()) for sp in v[2]}
    function_of = {
        title: i
        for level in SENIORITY
        if title_states_function(level)
        for i, fn in enumerate(FUNCTIONS)
        for title in job_titles(level, fn)
    }
    channel = list(SOURCE_EFFECT)
    sources = pd.Series(leads["lead_source"]).map(normalise_channel)
    source = np.array([channel.index(c) if c in SOURCE_EFFECT else -1 for c in sources])
    dne = pd.Series(leads["do_not_email"]).fillna(False).to_numpy(dtype=bool)
    return {
        "industry": (
            keys_of("industry", {k: i for i, k in enumerate(INDUSTRIES)}),
            [v[1] for v in INDUSTRIES.values()],
            0.0,
        ),
        "company_size": (
            keys_of("company_size", {k: i for i, k in enumerate(SIZES)}),
            [v[1] for v in SIZES.values()],
            MISSING_SIZE_EFFECT,
        ),
        "region": (keys_of("country", region_of), list(REGION_EFFECT.values()), 0.0),
        "seniority": (
            keys_of("seniority", seniority_of),
            [v[1] for v in SENIORITY.values()],
            MISSING_SENIORITY_EFFECT,
        ),
        "function": (keys_of("job_title", function_of), [v[1] for v in FUNCTIONS.values()], 0.0),
        "email_type": (
            keys_of("email_type", {"Business": 0, "Personal": 1}),
            [0.0, PERSONAL_EMAIL_EFFECT],
            0.0,
        ),
        "lead_source": (source, list(SOURCE_EFFECT.values()), 0.0),
        "do_not_email": (dne.astype(np.int64), [0.0, DO_NOT_EMAIL_EFFECT], 0.0),
    }


def attribute_levels() -> dict[str, list[str]]:
    """The values behind `_attribute_terms`' codes, per term (code i is the i-th)."""
    return {
        "industry": list(INDUSTRIES),
        "company_size": list(SIZES),
        "region": list(REGION_EFFECT),
        "seniority": list(SENIORITY),
        "function": list(FUNCTIONS),
        "email_type": ["business", "personal"],
        "lead_source": list(SOURCE_EFFECT),
        "do_not_email": ["no", "yes"],
    }


def point_in_time_truth(
    leads,
    touchpoints,
    age_days: float,
    horizon_days: float,
    shape: str = "default",
    draws: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """P(won within `horizon_days` after `age_days` | everything observable at that age, open
    then), per lead: the best any model scoring a lead at that age can do.

    The oracle's probability (`oracle_from_observables`) reads the first 21 days of touchpoints;
    before day 21 part of them has not happened yet. Here the rest is drawn from the generator's
    own process (`touchpoints.early_touches`) given what has been seen: `draws` particles per lead
    of its hidden engagement and intent levels (and of the seniority and company size behind
    unreadable values, which set the intent's mean) from their prior, weighted by the likelihood
    of the touchpoints seen before `age_days` (their number says the engagement, the share of
    high-intent actions the intent; the company size and email type say something of an
    unreadable seniority), each completed with the touchpoints of [age, 21) days drawn as
    Poisson counts per activity. From day 21 on nothing is left to draw and this is
    `process.true_win_within` of the oracle's probability. Touchpoints at or after the scoring
    moment are ignored, as the features ignore them."""
    seen = _observables(leads, touchpoints, shape)
    if age_days >= EARLY_DAYS:
        counts = seen.counts_before(EARLY_DAYS)
        p = true_win_probability(seen.attribute_logit, counts)
        a, b = win_close_shape(seen.attribute_pace, counts)
        return true_win_within(p, a, b, age_days, horizon_days)
    rng = np.random.default_rng(seed)
    counts = seen.counts_before(age_days)
    early = (seen.age > 0) & (seen.age < age_days)
    n_leads = len(seen.attribute_logit)
    high = np.isin(seen.activity, [ACTIVITIES.index(a) for a in HIGH_SPLIT])
    n_seen = np.bincount(seen.lead[early], minlength=n_leads)
    n_high = np.bincount(seen.lead[early & high], minlength=n_leads)
    from scipy.stats import beta

    seen_share = float(beta.cdf(age_days / EARLY_DAYS, *EARLY_TIMING))  # of the early touches
    out = np.empty(n_leads)
    chunk = max(1, 1_000_000 // draws)
    for start in range(0, n_leads, chunk):
        rows = np.arange(start, min(start + chunk, n_leads))
        out[rows] = _particle_truth(
            seen, rows, counts[rows], n_seen[rows], n_high[rows], seen_share,
            age_days, horizon_days, draws, rng,
        )  # fmt: skip
    return out


def _particle_truth(
    seen: _Observables,
    rows: np.ndarray,
    counts: np.ndarray,
    n_seen: np.ndarray,
    n_high: np.ndarray,
    seen_share: float,
    age_days: float,
    horizon_days: float,
    draws: int,
    rng: np.random.Generator,
) -> np.ndarray:
    from scipy.special import betainc

    n = len(rows)
    shape = (n, draws)
    seniority_share = np.array([v[0] for v in SENIORITY.values()])
    size_share = np.array([v[0] for v in SIZES.values()])
    student = list(SENIORITY).index("Student")
    # The hidden seniority and company size behind unreadable values, as `leads.draw_leads`
    # draws them (students mostly at the smallest companies).
    seniority = np.where(
        seen.seniority[rows, None] >= 0,
        seen.seniority[rows, None],
        rng.choice(len(seniority_share), shape, p=seniority_share),
    )
    is_student = seniority == student
    log_weight = np.zeros(shape)
    size_readable = seen.size[rows, None] >= 0
    drawn_size = rng.choice(len(size_share), shape, p=size_share)
    drawn_size[is_student & (rng.random(shape) < STUDENT_SMALLEST)] = 0
    size = np.where(size_readable, seen.size[rows, None], drawn_size)
    chance_of_size = size_share[size] * np.where(is_student, 1 - STUDENT_SMALLEST, 1.0) + np.where(
        is_student & (size == 0), STUDENT_SMALLEST, 0.0
    )
    log_weight += np.where(size_readable, np.log(chance_of_size), 0.0)
    personal = seen.personal[rows, None]
    chance_personal = np.where(is_student, STUDENT_PERSONAL, OTHER_PERSONAL)
    log_weight += np.where(personal == 1, np.log(chance_personal), 0.0)
    log_weight += np.where(personal == 0, np.log(1 - chance_personal), 0.0)
    # The hidden levels of `touchpoints.hidden_levels` and what they make of the early touches.
    intent = 0.5 * (
        np.array([v[1] for v in SENIORITY.values()])[seniority]
        + np.array([v[1] for v in SIZES.values()])[size]
    ) + rng.normal(0.0, INTENT_SD, shape)
    rate = EARLY_RATE * np.exp(rng.normal(0.0, ENGAGEMENT_SD, shape))
    high_share = 1 / (1 + np.exp(-(HIGH_SHARE_LOGIT[0] + HIGH_SHARE_LOGIT[1] * intent)))
    expected_seen = rate * seen_share
    log_weight += n_seen[:, None] * np.log(expected_seen) - expected_seen
    log_weight += n_high[:, None] * np.log(high_share)
    log_weight += (n_seen - n_high)[:, None] * np.log1p(-high_share)
    weight = np.exp(log_weight - log_weight.max(axis=1, keepdims=True))
    weight /= weight.sum(axis=1, keepdims=True)
    # The touches still to come in [age, 21) days: Poisson counts per activity (thinning).
    to_come = rate * (1 - seen_share)
    logit = INTERCEPT + seen.attribute_logit[rows, None] + np.zeros(shape)
    pace = seen.attribute_pace[rows, None] + np.zeros(shape)
    dne = seen.do_not_email[rows, None]
    email = ("email_open", "email_click", "unsubscribe", "email_bounce")
    for activity in set(ACTIVITY_EFFECT) | set(ACTIVITY_PACE):
        code = ACTIVITIES.index(activity)
        if activity in HIGH_SPLIT:
            mean = to_come * high_share * HIGH_SPLIT[activity]
        else:
            mean = to_come * (1 - high_share) * LOW_SPLIT[activity]
            if activity in email:  # opted out of email: no email activity
                mean = np.where(dne, 0.0, mean)
            if activity == "visit":  # ... those become visits
                emails = sum(LOW_SPLIT[a] for a in email)
                mean = mean + np.where(dne, to_come * (1 - high_share) * emails, 0.0)
        total = counts[:, code, None] + rng.poisson(mean)
        for table, into in ((ACTIVITY_EFFECT, logit), (ACTIVITY_PACE, pace)):
            if activity in table:
                w, transform = table[activity]
                into += w * (np.log1p(total) if transform == "log" else (total > 0))
    p = 1 / (1 + np.exp(-logit))
    pace = np.clip(pace, -0.3, 1.3)
    a, b = 1.5 + 2.5 * pace, 3.5 - 1.5 * pace
    closed_by = true_win_close_cdf(np.full(a.shape, float(age_days)), a, b)
    won_in = true_win_close_cdf(np.full(a.shape, float(age_days + horizon_days)), a, b) - closed_by
    loss_x = np.clip((age_days - LOSS_FIRST_DAY) / LOSS_SPAN_DAYS, 0, 1)
    lost_open = 1 - LOSS_CLOSE_SHARE * betainc(*LOSS_AGE_BETA, loss_x)
    won_then = (weight * p * won_in).sum(axis=1)
    open_then = (weight * (p * (1 - closed_by) + (1 - p) * lost_open)).sum(axis=1)
    return won_then / open_then


@dataclass
class TrueDesign:
    """The terms of the true logit (`process`) of each lead at one age, as a design matrix.

    Column groups: a one-hot per attribute term (`attribute_levels`, plus `unreadable`), a
    shape's `referrer` one-hot (plus `missing`), its month, weekday and renewal terms, then one
    column per activity of `process.ACTIVITY_EFFECT` (`process.activity_terms` of the counts of
    the first 21 days' touchpoints seen before the age). With an intercept, the oracle's logit
    is a linear combination of the columns from age 21 on; before, the counts are partial."""

    matrix: Any  # scipy.sparse.csr_matrix (n_leads, len(names)), float64
    names: list[str]
    referrer: np.ndarray  # bool per column: the referrer's one-hot (the many-valued term)


def true_design(leads, touchpoints, age_days: float, shape: str = "default") -> TrueDesign:
    """The true logit's terms of every lead of the canonical frames at `age_days` after its
    creation (`TrueDesign`): what a correctly specified model of the demo process reads, from the
    process's own readings and term definitions, with the effect sizes left to be learned.

    The month, weekday and renewal columns are `process.shape_logit` of a shape carrying that one
    effect alone, so they mean what the process means by them."""
    from dataclasses import replace

    from scipy import sparse

    process_shape = shape_named(shape)
    columns: list[Any] = []
    names: list[str] = []
    referrer_mask: list[bool] = []

    def one_hot(prefix: str, codes: np.ndarray, levels: list[str], referrer: bool = False):
        n_levels = len(levels) + 1  # the last: unreadable (code -1)
        where = np.where(codes >= 0, codes, n_levels - 1)
        block = sparse.csr_matrix(
            (np.ones(len(codes)), (np.arange(len(codes)), where)), shape=(len(codes), n_levels)
        )
        columns.append(block)
        names.extend(f"{prefix}={level}" for level in [*levels, "unreadable"])
        referrer_mask.extend([referrer] * n_levels)

    def dense(block_names: list[str], values: np.ndarray) -> None:
        columns.append(sparse.csr_matrix(values.reshape(len(leads), -1)))
        names.extend(block_names)
        referrer_mask.extend([False] * len(block_names))

    levels = attribute_levels()
    for term, (codes, _, _) in _attribute_terms(leads).items():
        one_hot(term, codes, levels[term])
    created, referrer, renewal = _shape_inputs(leads, process_shape)
    if process_shape.referrers:
        one_hot("referrer", referrer, referrer_names(process_shape.referrers), referrer=True)
    alone = Shape("one effect alone")
    units = {"month": np.eye(12), "weekday": np.eye(7)}
    if process_shape.month_effect:
        shapes = [replace(alone, month_effect=tuple(u)) for u in units["month"]]
        dense(
            [f"month={i}" for i in range(12)],
            np.column_stack([shape_logit(s, created, referrer, renewal) for s in shapes]),
        )
    if process_shape.weekday_effect:
        shapes = [replace(alone, weekday_effect=tuple(u)) for u in units["weekday"]]
        dense(
            [f"weekday={i}" for i in range(7)],
            np.column_stack([shape_logit(s, created, referrer, renewal) for s in shapes]),
        )
    if process_shape.renewal_share:
        soon = replace(alone, renewal_share=1.0, renewal_effect=1.0)
        dense(["renewal_soon"], shape_logit(soon, created, referrer, renewal))
    seen = _observables(leads, touchpoints, shape)
    counts = seen.counts_before(min(float(age_days), EARLY_DAYS))
    dense(
        [f"{activity}__{transform}" for activity, (_, transform) in ACTIVITY_EFFECT.items()],
        activity_terms(counts, ACTIVITY_EFFECT),
    )
    return TrueDesign(sparse.hstack(columns, format="csr"), names, np.array(referrer_mask))


def _shape_inputs(leads, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What `process.shape_logit` reads (creation times, referrer index, renewal dates) from the
    referrer and renewal columns as read back."""
    import pandas as pd

    referrer = np.full(len(leads), -1, dtype=np.int64)
    if shape.referrers:
        index = {name.lower(): i for i, name in enumerate(referrer_names(shape.referrers))}
        keys = _text_key(leads["referrer"])
        referrer = np.array([-1 if k is None else index.get(k, -1) for k in keys], dtype=np.int64)
    renewal = np.full(len(leads), np.datetime64("NaT"), dtype="datetime64[s]")
    if shape.renewal_share:
        renewal = _utc(pd.Series(leads["contract_renewal"]))
    return _utc(pd.Series(leads["created_at"])), referrer, renewal


def _utc(moments) -> np.ndarray:
    """Zone-aware moments as naive UTC datetime64[s] (NaT where missing)."""
    return moments.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
