"""The known true process of the demo data: dates, shares, effects and export spellings.

Everything the generator draws from and everything the oracle knows is here, once: the other
modules of `features.data.demo` only draw (`leads`, `touchpoints`, `outcomes`) or recompute
(`oracle`) from these tables. Channels follow the canonical order of `CHANNELS`, activities that
of `ACTIVITIES`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.data.vocabulary import ACTIVITIES

START = np.datetime64("2023-01-01T00:00:00", "s")


SPAN_DAYS = 730


EARLY_DAYS = 21


LATE_DAYS = 180


DAY = 86_400


EXPORT_DATE = START + np.timedelta64(SPAN_DAYS, "D")  # nothing after it is written


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


# ---- the hidden levels and the first 21 days' touchpoints (`touchpoints.early_touches`) ----------
# intent = mean of the seniority's and the size band's effects + N(0, INTENT_SD); engagement =
# N(0, ENGAGEMENT_SD). A lead has Poisson(EARLY_RATE x exp(engagement)) touchpoints after the first
# in its first 21 days, at 21 x Beta(EARLY_TIMING) days, each high-intent (HIGH_SPLIT) with the
# chance sigmoid(HIGH_SHARE_LOGIT[0] + HIGH_SHARE_LOGIT[1] x intent), else low (LOW_SPLIT).
INTENT_SD = 1.0


ENGAGEMENT_SD = 0.6


EARLY_RATE = 5.2


EARLY_TIMING = (1.0, 2.0)


HIGH_SHARE_LOGIT = (-2.2, 0.8)


STUDENT_SMALLEST = 0.7  # share of students put at the smallest companies (after the size draw)


STUDENT_PERSONAL, OTHER_PERSONAL = 0.8, 0.2  # chance of a personal email address


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


SIZES = {  # band: (share, effect, sales-cycle stretch 0..1, typical deal amount)
    "1-10": (0.16, -0.7, 0.0, 8e3),
    "11-50": (0.20, -0.3, 0.1, 15e3),
    "51-200": (0.22, 0.0, 0.3, 30e3),
    "201-500": (0.15, 0.25, 0.5, 55e3),
    "501-1000": (0.10, 0.4, 0.6, 80e3),
    "1001-5000": (0.10, 0.45, 0.8, 120e3),
    "5001+": (0.07, 0.3, 1.0, 200e3),
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


# level: (share, effect, export spellings, the two job titles of a function at that level with
# {fn} the function and {chief} its C-level title; a title with neither does not say the function)
SENIORITY = {
    "C-Level": (0.06, 0.5, ("C-Level", "CXO"), ("{chief}", "{chief}")),
    "VP": (0.08, 0.55, ("VP", "Vice President"), ("VP of {fn}", "VP {fn}")),
    "Director": (0.16, 0.45, ("Director",), ("Director of {fn}", "{fn} Director")),
    "Manager": (0.27, 0.15, ("Manager",), ("{fn} Manager", "Senior {fn} Manager")),
    "Individual Contributor": (
        0.35,
        -0.25,
        ("Individual Contributor", "IC"),
        ("{fn} Specialist", "{fn} Analyst"),
    ),
    "Student": (0.08, -1.6, ("Student",), ("Student", "Student")),
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


def activity_terms(
    counts: np.ndarray, table: dict[str, tuple[float, str]] = ACTIVITY_EFFECT
) -> np.ndarray:
    """The behaviour terms a table of activity effects weighs: (n_leads, len(table)), one column
    per activity in the table's order, the count transformed as the table says ("log":
    log1p(count), "any": 1.0 when count > 0). `counts` as in `true_logit_from_counts`."""
    terms = np.empty((counts.shape[0], len(table)))
    for j, (activity, (_, transform)) in enumerate(table.items()):
        column = counts[:, ACTIVITIES.index(activity)].astype(float)
        terms[:, j] = np.log1p(column) if transform == "log" else (column > 0)
    return terms


def true_logit_from_counts(attribute_logit: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The oracle: attribute effects plus the effects of the first-21-day activity counts.

    `counts` is (n_leads, len(ACTIVITIES)), in the order of ACTIVITIES."""
    logit = INTERCEPT + attribute_logit
    terms = activity_terms(counts, ACTIVITY_EFFECT)
    for j, (weight, _) in enumerate(ACTIVITY_EFFECT.values()):
        logit = logit + weight * terms[:, j]
    return logit


def add_activity_counts(counts: np.ndarray, lead: np.ndarray, activity: np.ndarray) -> None:
    """Add touchpoints to `counts` (n_leads, len(ACTIVITIES)) int32: one per (lead, activity)."""
    k = counts.shape[1]
    flat = np.bincount(lead.astype(np.int64) * k + activity, minlength=counts.size)
    counts += flat.reshape(counts.shape).astype(np.int32)


def true_win_probability(attribute_logit: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The oracle's probability from the attribute effects and the first-21-day counts."""
    return 1 / (1 + np.exp(-true_logit_from_counts(attribute_logit, counts)))


def job_titles(level: str, function: str) -> tuple[str, str]:
    """The two export spellings of a job title at a seniority level in a function."""
    chief = FUNCTIONS[function][2]
    first, second = SENIORITY[level][3]
    return first.format(fn=function, chief=chief), second.format(fn=function, chief=chief)


def title_states_function(level: str) -> bool:
    """Whether the job titles of a level say the function ('Student' does not)."""
    return any("{" in template for template in SENIORITY[level][3])


# ---- deal amounts and close times -----------------------------------------------------------------
# A won deal's amount is log-normal around the lead's typical amount: the company size band's
# typical deal (SIZES), times the multipliers of what is readable of industry and seniority, times
# the first-21-day behaviour below. Unreadable values take the neutral multiplier (1.0), an
# unreadable size the MISSING_SIZE_AMOUNT: the truth uses only what a model could see.
AMOUNT_SIGMA = 0.5  # log-normal spread of the amount around the typical amount


MISSING_SIZE_AMOUNT = 30e3


INDUSTRY_AMOUNT = {  # multipliers of the typical deal (others 1.0)
    "Financial Services": 1.5,
    "Software": 1.25,
    "Telecommunications": 1.2,
    "Government": 1.3,
    "Healthcare": 1.1,
    "Retail": 0.8,
    "Education": 0.6,
    "Media": 0.85,
}


SENIORITY_AMOUNT = {  # multipliers of the typical deal (others 1.0)
    "C-Level": 1.35,
    "VP": 1.3,
    "Director": 1.15,
    "Individual Contributor": 0.9,
    "Student": 0.7,
}


ACTIVITY_AMOUNT = {  # activity: (log-multiplier, transform) as in ACTIVITY_EFFECT
    "pricing_page_view": (0.15, "log"),
    "webinar_attend": (0.1, "any"),
}


# A win closes WIN_CLOSE_FIRST_DAY + WIN_CLOSE_SPAN_DAYS x Beta(a, b) days after the lead was
# created, with (a, b) from the lead's pace (0: fast, 1: slow): the size band's sales-cycle
# stretch (SIZES), plus the seniority's and the first-21-day behaviour's shifts below.
WIN_CLOSE_FIRST_DAY = 31


WIN_CLOSE_SPAN_DAYS = 79


MISSING_SIZE_STRETCH = 0.4


SENIORITY_PACE = {"C-Level": -0.25, "VP": -0.2, "Director": -0.1, "Student": 0.2}


ACTIVITY_PACE = {"demo_request": (-0.35, "any"), "pricing_page_view": (-0.1, "log")}


# Losses: LOSS_CLOSE_SHARE of the lost leads close 1 + 300 x Beta(1.1, 3.0) days after creation,
# the rest stay open.
LOSS_CLOSE_SHARE = 0.75
LOSS_AGE_BETA = (1.1, 3.0)
LOSS_FIRST_DAY, LOSS_SPAN_DAYS = 1, 300


def _behaviour(table: dict[str, tuple[float, str]], counts: np.ndarray) -> np.ndarray:
    total = np.zeros(counts.shape[0])
    terms = activity_terms(counts, table)
    for j, (weight, _) in enumerate(table.values()):
        total += weight * terms[:, j]
    return total


def true_typical_amount(attribute_log_amount: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The median amount of the lead's deal if won: attributes' log amount plus behaviour."""
    return np.exp(attribute_log_amount + _behaviour(ACTIVITY_AMOUNT, counts))


def true_expected_amount(typical: np.ndarray) -> np.ndarray:
    """The mean of a log-normal deal amount around the typical (median) amount."""
    return typical * np.exp(AMOUNT_SIGMA**2 / 2)


def win_close_shape(attribute_pace: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, ...]:
    """The Beta(a, b) of a win's closing day (see WIN_CLOSE_FIRST_DAY) per lead."""
    pace = np.clip(attribute_pace + _behaviour(ACTIVITY_PACE, counts), -0.3, 1.3)
    return 1.5 + 2.5 * pace, 3.5 - 1.5 * pace


def true_win_close_cdf(days: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a win closes within `days` of the lead's creation), per lead."""
    from scipy.special import betainc

    x = np.clip((np.asarray(days, dtype=float) - WIN_CLOSE_FIRST_DAY) / WIN_CLOSE_SPAN_DAYS, 0, 1)
    return betainc(a, b, x)


def true_median_days_to_close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The median day (after creation) a win closes on, per lead."""
    from scipy.special import betaincinv

    return WIN_CLOSE_FIRST_DAY + WIN_CLOSE_SPAN_DAYS * betaincinv(a, b, 0.5)


def true_win_within(
    p: np.ndarray, a: np.ndarray, b: np.ndarray, age_days: float, horizon_days: float
) -> np.ndarray:
    """P(won within `horizon_days` after `age_days` | still open at `age_days`), per lead: the
    truth a time-to-close model is compared with at a snapshot age."""
    from scipy.special import betainc

    closed_by = true_win_close_cdf(np.full(len(p), float(age_days)), a, b)
    won_in = true_win_close_cdf(np.full(len(p), float(age_days + horizon_days)), a, b) - closed_by
    loss_x = np.clip((age_days - LOSS_FIRST_DAY) / LOSS_SPAN_DAYS, 0, 1)
    lost_open = 1 - LOSS_CLOSE_SHARE * betainc(*LOSS_AGE_BETA, loss_x)
    return p * won_in / (p * (1 - closed_by) + (1 - p) * lost_open)


# ---- shapes: the same process as real exports vary it ---------------------------------------------
# Each shape is the default process plus the few differences its row declares: a shifted intercept
# (the win rate), an identifier-like `referrer` column with hundreds of values, date effects. The
# truth stays a function of what the files show (`oracle.oracle_from_observables(..., shape)`).
# No trend over the years: the features read a date's month, weekday and hour, never its year, so
# a trend would be a gap no model could close.
@dataclass(frozen=True)
class Shape:
    """What a demo shape changes in the process; every default adds nothing."""

    description: str
    leads: int = 20_000  # leads `demo-data --shape` writes unless --leads says otherwise
    intercept_shift: float = 0.0  # added to INTERCEPT: sets the win rate
    referrers: int = 0  # values of the identifier-like `referrer` column (0: no such column)
    referrer_effect_sd: float = 0.0  # spread of the referrers' effects (`referrer_effects`)
    month_effect: tuple[float, ...] = ()  # effect of the month of creation, January first
    weekday_effect: tuple[float, ...] = ()  # effect of the weekday of creation, Monday first
    renewal_share: float = 0.0  # leads with a `contract_renewal` date (0: no such column)
    renewal_effect: float = 0.0  # effect of a renewal in the creation month or the two after


# Budgets: quarter and year ends buy, summer does not.
FISCAL_MONTH_EFFECT = (-0.3, -0.1, 0.35, -0.2, 0.0, 0.35, -0.5, -0.7, 0.1, 0.0, 0.3, 0.7)


WEEKEND_WEEKDAY_EFFECT = (0.1, 0.15, 0.1, 0.0, -0.2, -0.8, -0.8)  # Monday first


# The intercept shifts were calibrated once (100,000 leads) to the win rates the descriptions say.
SHAPES = {
    "default": Shape("the demo process as documented: about 15% of leads win"),
    "high_cardinality": Shape(
        "an identifier-like referrer column, 400 values with Zipf-like shares, each with its own "
        "effect: the strongest attribute; about 11% win",
        intercept_shift=-0.73,
        referrers=400,
        referrer_effect_sd=1.0,
    ),
    "date_driven": Shape(
        "the win probability follows the month and weekday of creation and whether the "
        "contract_renewal date falls within the creation month or the two after; about 15% win",
        intercept_shift=-0.2,
        month_effect=FISCAL_MONTH_EFFECT,
        weekday_effect=WEEKEND_WEEKDAY_EFFECT,
        renewal_share=0.6,
        renewal_effect=1.0,
    ),
    "imbalanced": Shape(
        "the default process with a lower intercept: about 2% win", intercept_shift=-2.32
    ),
    "small": Shape(
        "3,000 leads, about 10% win; the strongest attribute is an identifier-like referrer "
        "column (300 values), the other added signal the dates of date_driven",
        leads=3_000,
        intercept_shift=-1.08,
        referrers=300,
        referrer_effect_sd=1.0,
        month_effect=FISCAL_MONTH_EFFECT,
        renewal_share=0.6,
        renewal_effect=1.0,
    ),
}


def shape_named(name: str) -> Shape:
    """The shape of SHAPES called `name`; a ValueError listing them otherwise."""
    if name not in SHAPES:
        raise ValueError(f"unknown demo shape {name!r}; use one of: {', '.join(SHAPES)}")
    return SHAPES[name]


REFERRER_SEED = 17  # the referrers' effects are part of the process: the same for every data seed


REFERRER_ZIPF = 1.1  # a referrer's share goes as 1 / rank ** REFERRER_ZIPF


REFERRER_MISSING = 0.03


RENEWAL_DAYS = 365  # a renewal date falls within the year after creation


def referrer_names(count: int) -> list[str]:
    """The referrer column's values, commonest first: 'REF-0001' ..."""
    return [f"REF-{i:04d}" for i in range(1, count + 1)]


def referrer_shares(count: int) -> np.ndarray:
    """Zipf-like shares of the referrers, commonest first."""
    shares = 1.0 / np.arange(1, count + 1) ** REFERRER_ZIPF
    return shares / shares.sum()


def referrer_effects(shape: Shape) -> np.ndarray:
    """Each referrer's effect on the logit, drawn once from REFERRER_SEED (not the data seed, so
    training data and fresh leads of any seed share them)."""
    rng = np.random.default_rng(REFERRER_SEED)
    return rng.normal(0.0, shape.referrer_effect_sd, shape.referrers)


def shape_logit(
    shape: Shape, created: np.ndarray, referrer: np.ndarray, renewal: np.ndarray
) -> np.ndarray:
    """The shape's part of the true logit: its intercept shift and the effects of what it adds.

    `created`: creation times (datetime64, UTC); `referrer`: index into `referrer_names` (-1:
    missing); `renewal`: contract renewal dates (datetime64, NaT: missing)."""
    created = np.asarray(created).astype("datetime64[s]")
    logit = np.full(len(created), shape.intercept_shift)
    month = created.astype("datetime64[M]").astype(np.int64)
    if shape.referrers:
        effects = np.append(referrer_effects(shape), 0.0)  # -1 (missing) reads the 0 at the end
        logit = logit + effects[np.asarray(referrer, dtype=np.int64)]
    if shape.month_effect:
        logit = logit + np.array(shape.month_effect)[month % 12]
    if shape.weekday_effect:
        weekday = (created.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 is Monday
        logit = logit + np.array(shape.weekday_effect)[weekday]
    if shape.renewal_share:
        renewal = np.asarray(renewal).astype("datetime64[s]")
        ahead = (renewal.astype("datetime64[M]").astype(np.int64) - month) % 12
        soon = ~np.isnat(renewal) & (ahead < 3)
        logit = logit + np.where(soon, shape.renewal_effect, 0.0)
    return logit
