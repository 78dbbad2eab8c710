"""Demo data: a realistic B2B funnel with a known true win probability per lead.

The process (documented in the README's data-contract section):

1. Leads are created over two years with growth, monthly seasonality (quiet August and December,
   busy Q1 and autumn), fewer on weekends and mostly in office hours. Firmographics (industry,
   company size band, country and region, job title with seniority, email type, lead source) come
   out of a CRM export: some missing, placeholders ('Select', 'N/A'), case and spacing variants and
   raw channel spellings ('Google Ads', 'google / cpc').
2. The first touchpoint is the conversion that created the lead (form, download, webinar ...) in the
   lead-source channel. During the first 21 days each lead has Poisson touchpoints; how many depends
   on a hidden engagement level, and the share of high-intent actions (pricing page, form, demo
   request) on a hidden intent level.
3. The true win probability is a fixed logistic function of what is observable by day 21: the
   attributes and the counts of each activity in the first 21 days (`true_logit`). The hidden levels
   only shape what is observed, so at a 30-day snapshot nothing else predicts the outcome.
4. won ~ Bernoulli(p). Wins close between day 31 and day 110 (bigger companies later), so no win has
   closed at the 30-day snapshot and "won within 90 days of it" is "won". Most losses close at any
   time (some within a week); the rest stay open. Outcomes after the export date are not written.
5. Touchpoints after day 21 depend on p (likely buyers keep coming back) up to day 180.

`oracle.parquet` holds `lead_id, true_win_probability`; it is never a feature.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.data.vocabulary import ACTIVITIES, CHANNELS, normalise_channel

START = np.datetime64("2023-01-01T00:00:00", "s")


SPAN_DAYS = 730


EARLY_DAYS = 21


LATE_DAYS = 180


DAY = 86_400


# ---- channels: canonical order is CHANNELS; raw spellings as CRMs export them ---------------------
CHANNEL_SHARE = {  # share of leads by lead-source channel
    "organic_search": 0.22,
    "paid_search": 0.17,
    "paid_social": 0.12,
    "email": 0.05,
    "webinar": 0.07,
    "content": 0.12,
    "event": 0.07,
    "referral": 0.06,
    "direct": 0.10,
    "print": 0.02,
}


CHANNEL_SPELLINGS = {
    "organic_search": ("Organic Search", "organic", "SEO", "Google Organic"),
    "paid_search": ("Paid Search", "Google Ads", "google / cpc", "PPC", "Bing Ads"),
    "paid_social": ("Paid Social", "LinkedIn Ads", "Facebook Ads", "linkedin"),
    "email": ("Email", "Email Campaign", "Newsletter", "e-mail"),
    "webinar": ("Webinar", "webinars", "Virtual Event"),
    "content": ("Content Download", "Content Syndication", "eBook", "Whitepaper"),
    "event": ("Events and Trade Shows", "Trade Show", "Conference", "Event"),
    "referral": ("Referral", "Partner Referral", "Customer Referral"),
    "direct": ("Direct", "Direct Traffic", "Website"),
    "print": ("Print", "Print Ad", "Magazine"),
    "other": ("Other",),
}


SOURCE_EFFECT = {
    "organic_search": 0.0,
    "paid_search": 0.05,
    "paid_social": -0.3,
    "email": -0.1,
    "webinar": 0.2,
    "content": -0.15,
    "event": 0.3,
    "referral": 0.6,
    "direct": 0.25,
    "print": -0.2,
}


# ---- activities: canonical order is ACTIVITIES --------------------------------------------------
ACTIVITY_SPELLINGS = {
    "visit": ("Page Visited on Website", "Website Visit", "visit"),
    "pricing_page_view": ("Pricing Page View", "Viewed Pricing", "pricing page"),
    "email_open": ("Email Opened", "Email Open", "email_open"),
    "email_click": ("Email Link Clicked", "Email Click"),
    "form_submit": ("Form Submitted", "Form Submit", "form fill"),
    "download": ("Content Download", "Download"),
    "webinar_attend": ("Webinar Attended", "Attended Webinar"),
    "demo_request": ("Demo Requested", "Demo Request", "Request a Demo"),
    "unsubscribe": ("Unsubscribed", "Email Unsubscribe"),
    "email_bounce": ("Email Bounced", "Hard Bounce"),
    "other": ("Chat Started", "Olark Chat Conversation"),  # not in the contract: read as 'other'
}


HIGH_SPLIT = {"pricing_page_view": 0.55, "form_submit": 0.25, "demo_request": 0.20}


LOW_SPLIT = {
    "visit": 0.50,
    "email_open": 0.24,
    "email_click": 0.09,
    "download": 0.09,
    "webinar_attend": 0.045,
    "unsubscribe": 0.02,
    "email_bounce": 0.01,
    "other": 0.005,
}


# Where each activity happens: channel shares; None means "the lead-source channel".
ACTIVITY_CHANNELS: dict[str, dict[str | None, float]] = {
    "visit": {
        None: 0.3,
        "organic_search": 0.25,
        "paid_search": 0.12,
        "direct": 0.18,
        "referral": 0.05,
        "paid_social": 0.05,
        "email": 0.05,
    },
    "pricing_page_view": {
        None: 0.2,
        "direct": 0.35,
        "organic_search": 0.2,
        "paid_search": 0.1,
        "email": 0.15,
    },
    "form_submit": {
        None: 0.5,
        "organic_search": 0.15,
        "paid_search": 0.15,
        "direct": 0.1,
        "paid_social": 0.1,
    },
    "download": {"content": 0.65, "paid_social": 0.2, "email": 0.15},
    "webinar_attend": {"webinar": 1.0},
    "demo_request": {
        None: 0.3,
        "direct": 0.4,
        "organic_search": 0.15,
        "paid_search": 0.1,
        "event": 0.05,
    },
    "email_open": {"email": 1.0},
    "email_click": {"email": 1.0},
    "unsubscribe": {"email": 1.0},
    "email_bounce": {"email": 1.0},
    "other": {"direct": 1.0},
}


# Logit contribution of the first-21-day activity counts (the observable engagement).
ACTIVITY_EFFECT = {  # activity: (weight, transform) with transform "log" = log1p(count), "any" = count>0
    "pricing_page_view": (0.55, "log"),
    "demo_request": (0.9, "any"),
    "form_submit": (0.3, "log"),
    "visit": (0.25, "log"),
    "email_click": (0.2, "log"),
    "webinar_attend": (0.35, "any"),
    "unsubscribe": (-0.8, "any"),
    "email_bounce": (-0.6, "any"),
}


INTERCEPT = -2.8  # calibrated once so that about 15% of leads win


# ---- firmographics ------------------------------------------------------------------------------
INDUSTRIES = {  # name: (share, effect)
    "Software": (0.18, 0.35),
    "Financial Services": (0.12, 0.25),
    "Healthcare": (0.10, 0.05),
    "Manufacturing": (0.12, 0.10),
    "Retail": (0.09, -0.15),
    "Education": (0.08, -0.45),
    "Professional Services": (0.10, 0.15),
    "Telecommunications": (0.05, 0.05),
    "Government": (0.05, -0.35),
    "Energy": (0.04, 0.0),
    "Media": (0.07, -0.10),
}


SIZES = {  # band: (share, effect, sales-cycle stretch 0..1)
    "1-10": (0.16, -0.7, 0.0),
    "11-50": (0.20, -0.3, 0.1),
    "51-200": (0.22, 0.0, 0.3),
    "201-500": (0.15, 0.25, 0.5),
    "501-1000": (0.10, 0.4, 0.6),
    "1001-5000": (0.10, 0.45, 0.8),
    "5001+": (0.07, 0.3, 1.0),
}


REGION_EFFECT = {"North America": 0.2, "EMEA": 0.0, "APAC": -0.2, "LATAM": -0.35}


COUNTRIES = {  # canonical: (region, share, export spellings)
    "United States": ("North America", 0.32, ("United States", "USA", "US", "U.S.")),
    "Canada": ("North America", 0.05, ("Canada",)),
    "United Kingdom": ("EMEA", 0.09, ("United Kingdom", "UK")),
    "Germany": ("EMEA", 0.07, ("Germany", "Deutschland")),
    "France": ("EMEA", 0.05, ("France",)),
    "Netherlands": ("EMEA", 0.03, ("Netherlands",)),
    "Spain": ("EMEA", 0.02, ("Spain",)),
    "Sweden": ("EMEA", 0.02, ("Sweden",)),
    "South Africa": ("EMEA", 0.01, ("South Africa",)),
    "India": ("APAC", 0.08, ("India",)),
    "Australia": ("APAC", 0.05, ("Australia",)),
    "Singapore": ("APAC", 0.02, ("Singapore",)),
    "Japan": ("APAC", 0.03, ("Japan",)),
    "Brazil": ("LATAM", 0.03, ("Brazil", "Brasil")),
    "Mexico": ("LATAM", 0.02, ("Mexico",)),
    "Argentina": ("LATAM", 0.01, ("Argentina",)),
}


SENIORITY = {  # level: (share, effect, export spellings)
    "C-Level": (0.06, 0.5, ("C-Level", "CXO")),
    "VP": (0.08, 0.55, ("VP", "Vice President")),
    "Director": (0.16, 0.45, ("Director",)),
    "Manager": (0.27, 0.15, ("Manager",)),
    "Individual Contributor": (0.35, -0.25, ("Individual Contributor", "IC")),
    "Student": (0.08, -1.6, ("Student",)),
}


FUNCTIONS = {  # function: (share, effect, C-level title)
    "Marketing": (0.30, 0.25, "CMO"),
    "Sales": (0.15, 0.10, "CRO"),
    "IT": (0.15, 0.15, "CIO"),
    "Operations": (0.12, 0.0, "COO"),
    "Finance": (0.10, -0.05, "CFO"),
    "Engineering": (0.12, -0.05, "CTO"),
    "HR": (0.06, -0.2, "CHRO"),
}


MISSING_SENIORITY_EFFECT = -0.15


MISSING_SIZE_EFFECT = -0.1


PERSONAL_EMAIL_EFFECT = -0.6


DO_NOT_EMAIL_EFFECT = -0.3


MONTH_VOLUME = np.array([1.15, 1.1, 1.1, 1.0, 1.0, 0.9, 0.85, 0.7, 1.1, 1.15, 1.05, 0.75])


WEEKDAY_VOLUME = np.array([1.1, 1.15, 1.1, 1.05, 0.9, 0.35, 0.3])  # Monday first


CAMPAIGN_TOPICS = (
    "Pipeline Analytics",
    "Revenue Forecasting",
    "Attribution 101",
    "AI for Sales Ops",
)


EVENTS = ("SaaStr", "Dreamforce", "Web Summit", "INBOUND")


@dataclass
class DemoData:
    """The generated tables (pyarrow) and the export date (no event is after it)."""

    leads: pa.Table
    touchpoints: pa.Table
    outcomes: pa.Table
    oracle: pa.Table
    export_date: np.datetime64


def _dict_array(indices: np.ndarray, vocab: list[str], mask: np.ndarray | None = None) -> pa.Array:
    """A dictionary array; repeated spellings in `vocab` are merged (readers need unique values)."""
    unique, inverse = np.unique(np.array(vocab, dtype=object), return_inverse=True)
    codes = inverse.astype(np.int32)[indices]
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, mask=mask), pa.array(unique.tolist(), pa.string())
    )


def _choice(rng: np.random.Generator, shares: list[float], size: int) -> np.ndarray:
    cdf = np.cumsum(np.asarray(shares, dtype=float))
    cdf /= cdf[-1]
    cdf[-1] = 1.0  # rounding must not let a draw fall past the last option
    return np.searchsorted(cdf, rng.random(size), side="right").astype(np.int32)


def _messy(
    rng: np.random.Generator,
    codes: np.ndarray,
    spellings: list[tuple[str, ...]],
    *,
    variant_rate: float,
    missing_rate: float,
    placeholder_rate: float,
    case_rate: float = 0.0,
) -> tuple[pa.Array, np.ndarray]:
    """Export spellings for category codes as a dictionary array, and the mask of rows left
    unreadable (missing or placeholder) so the oracle can treat them as missing."""
    vocab: list[str] = []
    offsets, widths = [], []
    for names in spellings:
        offsets.append(len(vocab))
        main = names[0]
        variants = [*names, main.lower(), main.upper(), f" {main}", f"{main} "]
        widths.append(len(variants))
        vocab.extend(variants)
    placeholder_at = len(vocab)
    vocab.extend(["Select", "N/A"])
    offsets_a, widths_a = np.array(offsets), np.array(widths)
    n_names = np.array([len(s) for s in spellings])
    n = len(codes)
    u = rng.random(n)
    pick = np.zeros(n, dtype=np.int64)
    alt = u < variant_rate  # another export spelling of the same value
    pick[alt] = (rng.random(int(alt.sum())) * n_names[codes[alt]]).astype(np.int64)
    case = (u >= variant_rate) & (u < variant_rate + case_rate)  # case or stray spaces
    pick[case] = n_names[codes[case]] + (rng.random(int(case.sum())) * 4).astype(np.int64)
    indices = offsets_a[codes] + pick
    v = rng.random(n)
    missing = v < missing_rate
    placeholder = (v >= missing_rate) & (v < missing_rate + placeholder_rate)
    indices[placeholder] = placeholder_at + (rng.random(int(placeholder.sum())) < 0.3)
    del widths_a
    return _dict_array(indices, vocab, missing), missing | placeholder


def true_logit_from_counts(attribute_logit: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The oracle: attribute effects plus the effects of the first-21-day activity counts.

    `counts` is (n_leads, len(ACTIVITIES)), in the order of ACTIVITIES."""
    logit = INTERCEPT + attribute_logit
    for activity, (weight, transform) in ACTIVITY_EFFECT.items():
        column = counts[:, ACTIVITIES.index(activity)].astype(float)
        logit = logit + weight * (np.log1p(column) if transform == "log" else (column > 0))
    return logit


def generate(
    n_leads: int, seed: int = 0, progress: Callable[[str], None] | None = None
) -> DemoData:
    """Generate the demo tables for `n_leads` leads; the same seed gives the same data."""
    if n_leads < 1:
        raise ValueError("the number of leads must be at least 1")
    step = progress or (lambda description: None)
    rng = np.random.default_rng(seed)
    n = n_leads

    step("leads")
    # Creation day: growth x month x weekday, then office-hours time of day.
    days = np.arange(SPAN_DAYS)
    dates = START + days * np.timedelta64(1, "D")
    months = dates.astype("datetime64[M]").astype(int) % 12
    weekdays = (dates.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    weight = (1 + 0.6 * days / SPAN_DAYS) * MONTH_VOLUME[months] * WEEKDAY_VOLUME[weekdays]
    day = np.sort(_choice(rng, weight.tolist(), n))
    hour = np.clip(rng.normal(13.0, 3.2, n), 0, 23.99)
    created = START.astype(np.int64) + day.astype(np.int64) * DAY + (hour * 3600).astype(np.int64)
    export_date = START + np.timedelta64(SPAN_DAYS, "D")
    export_s = export_date.astype(np.int64)

    industry = _choice(rng, [s for s, _ in INDUSTRIES.values()], n)
    seniority = _choice(rng, [v[0] for v in SENIORITY.values()], n)
    function = _choice(rng, [v[0] for v in FUNCTIONS.values()], n)
    student = seniority == list(SENIORITY).index("Student")
    size = _choice(rng, [v[0] for v in SIZES.values()], n)
    size[student & (rng.random(n) < 0.7)] = 0
    country = _choice(rng, [v[1] for v in COUNTRIES.values()], n)
    personal = rng.random(n) < np.where(student, 0.8, 0.2)
    source = _choice(rng, list(CHANNEL_SHARE.values()), n)  # index into CHANNEL_SHARE order
    source_channel = np.array([CHANNELS.index(c) for c in CHANNEL_SHARE])[source]
    do_not_email = rng.random(n) < 0.08

    industry_arr, industry_gone = _messy(
        rng,
        industry,
        [(name,) for name in INDUSTRIES],
        variant_rate=0.0,
        missing_rate=0.06,
        placeholder_rate=0.03,
        case_rate=0.08,
    )
    size_arr, size_gone = _messy(
        rng,
        size,
        [(band,) for band in SIZES],
        variant_rate=0.0,
        missing_rate=0.10,
        placeholder_rate=0.02,
    )
    country_arr, country_gone = _messy(
        rng,
        country,
        [v[2] for v in COUNTRIES.values()],
        variant_rate=0.25,
        missing_rate=0.05,
        placeholder_rate=0.02,
        case_rate=0.03,
    )
    region_names = list(REGION_EFFECT)
    region = np.array([region_names.index(v[0]) for v in COUNTRIES.values()])[country]
    region_arr = _dict_array(region, region_names, country_gone & (rng.random(n) < 0.9))
    seniority_arr, seniority_gone = _messy(
        rng,
        seniority,
        [v[2] for v in SENIORITY.values()],
        variant_rate=0.15,
        missing_rate=0.10,
        placeholder_rate=0.03,
        case_rate=0.03,
    )
    title_arr, function_gone = _job_titles(rng, seniority, function, seniority_gone)
    source_arr, _ = _messy(
        rng,
        source_channel,
        [CHANNEL_SPELLINGS[c] for c in CHANNELS],
        variant_rate=0.5,
        missing_rate=0.0,
        placeholder_rate=0.0,
        case_rate=0.03,
    )
    email_type = _dict_array(
        personal.astype(np.int32), ["Business", "Personal"], rng.random(n) < 0.04
    )
    dne = _dict_array(do_not_email.astype(np.int32), ["No", "Yes"])

    # The observable attribute part of the oracle: unreadable values contribute their "missing" effect.
    attribute_logit = (
        np.where(industry_gone, 0.0, np.array([e for _, e in INDUSTRIES.values()])[industry])
        + np.where(size_gone, MISSING_SIZE_EFFECT, np.array([v[1] for v in SIZES.values()])[size])
        + np.where(country_gone, 0.0, np.array(list(REGION_EFFECT.values()))[region])
        + np.where(
            seniority_gone,
            MISSING_SENIORITY_EFFECT,
            np.array([v[1] for v in SENIORITY.values()])[seniority],
        )
        + np.where(function_gone, 0.0, np.array([v[1] for v in FUNCTIONS.values()])[function])
        + np.where(personal & ~np.asarray(email_type.is_null()), PERSONAL_EMAIL_EFFECT, 0.0)
        + np.array(list(SOURCE_EFFECT.values()))[source]
        + np.where(do_not_email, DO_NOT_EMAIL_EFFECT, 0.0)
    )

    step("touchpoints (first 21 days)")
    # Hidden levels that shape what is observed (not the outcome directly).
    intent = 0.5 * (
        np.array([v[1] for v in SENIORITY.values()])[seniority]
        + np.array([v[1] for v in SIZES.values()])[size]
    ) + rng.normal(0, 1, n)
    engagement = rng.normal(0, 0.6, n)

    first = _first_touch(rng, source_channel, created)
    n_early = rng.poisson(5.2 * np.exp(engagement))
    early = _touches(
        rng,
        n_early,
        created,
        source_channel,
        do_not_email,
        start_days=0.0,
        span_days=EARLY_DAYS,
        shape=(1.0, 2.0),
        high_share=1 / (1 + np.exp(-(-2.2 + 0.8 * intent))),
    )
    counts = np.zeros((n, len(ACTIVITIES)), dtype=np.int32)
    for part in (first, early):
        _bincount_into(counts, part["lead"], part["activity"])
    p = 1 / (1 + np.exp(-true_logit_from_counts(attribute_logit, counts)))

    step("touchpoints (later)")
    n_late = rng.poisson(3.2 * np.exp(engagement) * (0.5 + 3.0 * p))
    late = _touches(
        rng,
        n_late,
        created,
        source_channel,
        do_not_email,
        start_days=EARLY_DAYS,
        span_days=LATE_DAYS - EARLY_DAYS,
        shape=(1.0, 1.6),
        high_share=1 / (1 + np.exp(-(-2.4 + 5.0 * p))),
    )

    step("outcomes")
    won = rng.random(n) < p
    stretch = np.array([v[2] for v in SIZES.values()])[size]
    win_age = 31 + 79 * rng.beta(1.5 + 2.5 * stretch, 3.5 - 1.5 * stretch)
    lost_closes = rng.random(n) < 0.75
    loss_age = 1 + 300 * rng.beta(1.1, 3.0, n)
    close_age = np.where(won, win_age, loss_age)
    closed = created + (close_age * DAY).astype(np.int64)
    has_outcome = (won | lost_closes) & (closed <= export_s)
    size_amount = np.array([8e3, 15e3, 30e3, 55e3, 80e3, 120e3, 200e3])[size]
    amount = np.round(size_amount * rng.lognormal(0, 0.5, n), -2)
    amount_missing = np.where(won, rng.random(n) < 0.03, rng.random(n) < 0.5)

    step("assembling")
    ids = _lead_ids(n)
    leads = pa.table(
        {
            "lead_id": ids,
            "created_at": _timestamps(created),
            "industry": industry_arr,
            "company_size": size_arr,
            "country": country_arr,
            "region": region_arr,
            "job_title": title_arr,
            "seniority": seniority_arr,
            "email_type": email_type,
            "lead_source": source_arr,
            "do_not_email": dne,
        }
    )
    touchpoints = _touchpoint_table(rng, [first, early, late], ids, export_s)
    chosen = np.flatnonzero(has_outcome)
    chosen = chosen[np.argsort(closed[chosen], kind="stable")]
    outcomes = pa.table(
        {
            "lead_id": ids.take(pa.array(chosen)),
            "closed_at": _timestamps(closed[chosen]),
            "won": pa.array(won[chosen]),
            "amount": pa.array(amount[chosen], mask=amount_missing[chosen]),
        }
    )
    oracle = pa.table({"lead_id": ids, "true_win_probability": pa.array(p)})
    return DemoData(leads, touchpoints, outcomes, oracle, export_date)


def _bincount_into(counts: np.ndarray, lead: np.ndarray, activity: np.ndarray) -> None:
    k = counts.shape[1]
    flat = np.bincount(lead.astype(np.int64) * k + activity, minlength=counts.size)
    counts += flat.reshape(counts.shape).astype(np.int32)


def _lead_ids(n: int) -> pa.Array:
    width = max(7, len(str(n)))
    numbers = np.arange(1, n + 1).astype(str)
    return pa.array(np.char.add("LD-", np.char.zfill(numbers, width)).astype(object), pa.string())


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * 1000, pa.timestamp("ms", tz="UTC"))


def _job_titles(
    rng: np.random.Generator, seniority: np.ndarray, function: np.ndarray, gone: np.ndarray
) -> tuple[pa.Array, np.ndarray]:
    """Job titles built from seniority x function; missing where seniority is unreadable, and
    a vague title ('Consultant') that hides the function for some."""
    levels, functions = list(SENIORITY), list(FUNCTIONS)
    vocab: list[str] = []
    for level in levels:
        for fn in functions:
            if level == "C-Level":
                vocab += [FUNCTIONS[fn][2], FUNCTIONS[fn][2]]
            elif level == "VP":
                vocab += [f"VP of {fn}", f"VP {fn}"]
            elif level == "Director":
                vocab += [f"Director of {fn}", f"{fn} Director"]
            elif level == "Manager":
                vocab += [f"{fn} Manager", f"Senior {fn} Manager"]
            elif level == "Individual Contributor":
                vocab += [f"{fn} Specialist", f"{fn} Analyst"]
            else:
                vocab += ["Student", "Student"]
    vague_at = len(vocab)
    vocab.append("Consultant")
    index = (seniority * len(functions) + function) * 2 + (rng.random(len(seniority)) < 0.4)
    vague = ~gone & (rng.random(len(seniority)) < 0.05)
    index[vague] = vague_at
    student = seniority == levels.index("Student")
    return _dict_array(index, vocab, gone), gone | vague | student


def _first_touch(rng: np.random.Generator, source_channel: np.ndarray, created: np.ndarray) -> dict:
    """The conversion that created the lead, at its creation time, in the lead-source channel."""
    n = len(created)
    activity = np.full(n, ACTIVITIES.index("form_submit"), dtype=np.int8)
    by_channel = {
        "content": "download",
        "webinar": "webinar_attend",
        "event": "form_submit",
    }
    for channel, act in by_channel.items():
        activity[source_channel == CHANNELS.index(channel)] = ACTIVITIES.index(act)
    demo = rng.random(n) < np.where(
        np.isin(source_channel, [CHANNELS.index("direct"), CHANNELS.index("referral")]), 0.15, 0.03
    )
    activity[demo] = ACTIVITIES.index("demo_request")
    return {
        "lead": np.arange(n, dtype=np.int32),
        "time": created.copy(),
        "activity": activity,
        "channel": source_channel.astype(np.int8),
    }


def _touches(
    rng: np.random.Generator,
    counts: np.ndarray,
    created: np.ndarray,
    source_channel: np.ndarray,
    do_not_email: np.ndarray,
    *,
    start_days: float,
    span_days: float,
    shape: tuple[float, float],
    high_share: np.ndarray,
) -> dict:
    lead = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    m = len(lead)
    age = start_days + span_days * rng.beta(*shape, m)
    time = created[lead] + (age * DAY).astype(np.int64)
    high = rng.random(m) < high_share[lead]
    activity = np.empty(m, dtype=np.int8)
    high_codes = np.array([ACTIVITIES.index(a) for a in HIGH_SPLIT], dtype=np.int8)
    low_codes = np.array([ACTIVITIES.index(a) for a in LOW_SPLIT], dtype=np.int8)
    activity[high] = high_codes[_choice(rng, list(HIGH_SPLIT.values()), int(high.sum()))]
    activity[~high] = low_codes[_choice(rng, list(LOW_SPLIT.values()), int((~high).sum()))]
    # Leads who opted out of email get no email activity: those become visits.
    emails = np.isin(
        activity,
        [ACTIVITIES.index(a) for a in ("email_open", "email_click", "unsubscribe", "email_bounce")],
    )
    activity[emails & do_not_email[lead]] = ACTIVITIES.index("visit")
    channel = np.empty(m, dtype=np.int8)
    for code, activity_name in enumerate(ACTIVITIES):
        where = np.flatnonzero(activity == code)
        if not len(where):
            continue
        shares = ACTIVITY_CHANNELS[activity_name]
        options = list(shares)
        picked = _choice(rng, list(shares.values()), len(where))
        fixed = np.array(
            [CHANNELS.index(o) if o is not None else -1 for o in options], dtype=np.int8
        )
        chosen = fixed[picked]
        from_source = chosen == -1
        chosen[from_source] = source_channel[lead[where[from_source]]]
        channel[where] = chosen
    return {"lead": lead, "time": time, "activity": activity, "channel": channel}


def _touchpoint_table(
    rng: np.random.Generator, parts: list[dict], ids: pa.Array, export_s: int
) -> pa.Table:
    lead = np.concatenate([p["lead"] for p in parts])
    time = np.concatenate([p["time"] for p in parts])
    activity = np.concatenate([p["activity"] for p in parts])
    channel = np.concatenate([p["channel"] for p in parts])
    keep = time <= export_s
    order = np.flatnonzero(keep)
    order = order[np.argsort(time[order])]  # deterministic; a stable sort is 2x slower
    lead, time, activity, channel = lead[order], time[order], activity[order], channel[order]
    m = len(lead)

    # Raw spellings: mostly the first, sometimes another (exports mix sources).
    def spelled(codes: np.ndarray, names: tuple[str, ...], spellings: dict) -> pa.Array:
        vocab, offsets, widths = [], [], []
        for name in names:
            offsets.append(len(vocab))
            widths.append(len(spellings[name]))
            vocab.extend(spellings[name])
        offsets_a, widths_a = np.array(offsets), np.array(widths)
        other = rng.random(m) < 0.3
        pick = np.where(other, (rng.random(m) * widths_a[codes]).astype(np.int64), 0)
        return _dict_array(offsets_a[codes] + pick, vocab)

    channel_arr = spelled(channel, CHANNELS, CHANNEL_SPELLINGS)
    activity_arr = spelled(activity, ACTIVITIES, ACTIVITY_SPELLINGS)

    # Campaigns for the channels that run them, named by quarter.
    months = time.astype("datetime64[s]").astype("datetime64[M]") - START.astype("datetime64[M]")
    quarter = (months.astype(np.int64) // 3).clip(0, 7)
    year_q = [f"{2023 + q // 4}-Q{q % 4 + 1}" for q in range(8)]
    templates = {
        "paid_search": ["Brand Search {q}", "Competitor Keywords {q}", "Generic Search {q}"],
        "paid_social": ["LinkedIn ABM {q}", "Retargeting {q}"],
        "email": ["Nurture Track {q}", "Monthly Newsletter {q}", "Product Update {q}"],
        "webinar": [f"Webinar: {t} {{q}}" for t in CAMPAIGN_TOPICS],
        "content": [f"eBook: {t} {{q}}" for t in CAMPAIGN_TOPICS],
        "event": [f"{e} {{q}}" for e in EVENTS],
        "print": ["Trade Magazine Ad {q}"],
    }
    vocab: list[str] = []
    base = np.full(len(CHANNELS), -1, dtype=np.int64)
    width = np.ones(len(CHANNELS), dtype=np.int64)
    for name, names in templates.items():
        code = CHANNELS.index(name)
        base[code], width[code] = len(vocab), len(names)
        for q in year_q:
            vocab.extend(t.format(q=q) for t in names)
    has = base[channel] >= 0
    which = (rng.random(m) * width[channel]).astype(np.int64)
    index = base[channel] + quarter * width[channel] + which
    missing = ~has | (rng.random(m) < 0.05)
    index[missing] = 0
    campaign = _dict_array(index, vocab, missing)

    # Seconds on page for web activity; empty for the rest.
    web = np.isin(activity, [ACTIVITIES.index("visit"), ACTIVITIES.index("pricing_page_view")])
    seconds = np.round(rng.lognormal(4.0, 1.0, m))
    value = pa.array(seconds, mask=~web)

    return pa.table(
        {
            "lead_id": pa.DictionaryArray.from_arrays(pa.array(lead), ids),
            "occurred_at": _timestamps(time),
            "channel": channel_arr,
            "activity": activity_arr,
            "campaign": campaign,
            "value": value,
        }
    )


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded to plain strings, timestamps as '2024-03-01 09:30:00Z' text
    (formatting zone-aware timestamps in the CSV writer is ten times slower)."""
    columns = []
    for column in table.columns:
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        elif pa.types.is_timestamp(column.type):
            text = pc.cast(pc.cast(column, pa.timestamp("s")), pa.string())
            column = pc.binary_join_element_wise(text, pa.scalar("Z"), "")
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def write(
    data: DemoData,
    out: str | Path,
    formats: tuple[str, ...] = ("parquet", "csv"),
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Write leads, touchpoints, outcomes in each format, and oracle.parquet; the paths written."""
    step = progress or (lambda description: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[Path, Callable[[], None]]] = []
    for name in ("leads", "touchpoints", "outcomes"):
        table = getattr(data, name)
        if "parquet" in formats:
            path = out / f"{name}.parquet"
            jobs.append((path, partial(pq.write_table, table, path, compression="zstd")))
        if "csv" in formats:
            path = out / f"{name}.csv"
            jobs.append((path, partial(_write_csv, table, path)))
    path = out / "oracle.parquet"
    jobs.append((path, partial(pq.write_table, data.oracle, path, compression="zstd")))
    # Arrow releases the GIL while encoding, so the CSV and Parquet writers overlap.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {pool.submit(job): path for path, job in jobs}
        for future in as_completed(futures):
            future.result()
            step(f"wrote {futures[future].name}")
    return [path for path, _ in jobs]


def _write_csv(table: pa.Table, path: Path) -> None:
    pacsv.write_csv(_plain(table), path)


@dataclass
class DemoSummary:
    """What `create_demo_data` wrote."""

    out: Path
    files: list[Path]
    leads: int
    touchpoints: int
    outcomes: int
    wins: int
    mean_true_probability: float
    export_date: str


def create_demo_data(
    out: str | Path,
    n_leads: int,
    seed: int = 0,
    formats: tuple[str, ...] = ("parquet", "csv"),
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Generate and write the demo tables; what `leadscore demo-data` runs."""
    data = generate(n_leads, seed=seed, progress=progress)
    files = write(data, out, formats=formats, progress=progress)
    return DemoSummary(
        out=Path(out),
        files=files,
        leads=data.leads.num_rows,
        touchpoints=data.touchpoints.num_rows,
        outcomes=data.outcomes.num_rows,
        wins=int(pc.sum(data.outcomes["won"]).as_py() or 0),
        mean_true_probability=float(pc.mean(data.oracle["true_win_probability"]).as_py()),
        export_date=str(data.export_date.astype("datetime64[D]")),
    )


def _text_key(values) -> np.ndarray:
    import pandas as pd

    series = pd.Series(values, dtype="str")
    return series.str.lower().str.split().str.join(" ").to_numpy(dtype=object, na_value=None)


def oracle_from_observables(leads, touchpoints) -> np.ndarray:
    """Recompute the true win probabilities from the canonical frames `load_lead_data` returns.

    This is the proof that the oracle uses only what a model could see: the lead attributes as
    exported and the touchpoints of the first 21 days. Valid for leads created at least 21 days
    before the export date (later touchpoints of younger leads are not in the files yet)."""
    import pandas as pd

    def effect(column: str, table: dict[str, float], missing: float = 0.0) -> np.ndarray:
        keys = _text_key(leads[column])
        lookup = {" ".join(k.lower().split()): v for k, v in table.items()}
        return np.array([missing if k is None else lookup.get(k, missing) for k in keys])

    region_of = {sp: REGION_EFFECT[v[0]] for v in COUNTRIES.values() for sp in v[2]}
    seniority_of = {sp: v[1] for v in SENIORITY.values() for sp in v[2]}
    function_of: dict[str, float] = {}
    for fn, (_, fn_effect, chief) in FUNCTIONS.items():
        for title in (
            chief,
            f"VP of {fn}",
            f"VP {fn}",
            f"Director of {fn}",
            f"{fn} Director",
            f"{fn} Manager",
            f"Senior {fn} Manager",
            f"{fn} Specialist",
            f"{fn} Analyst",
        ):
            function_of[title] = fn_effect
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
    _bincount_into(counts, lead[early].astype(np.int64), activity[early].astype(np.int64))
    return 1 / (1 + np.exp(-true_logit_from_counts(attribute_logit, counts)))
