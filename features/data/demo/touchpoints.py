"""Step 2: touchpoints, first the 21 days that decide the true probability, then the rest.

The first touchpoint is the conversion that created the lead (form, download, webinar ...) in the
lead-source channel. During the first 21 days each lead has Poisson touchpoints; how many depends
on a hidden engagement level, and the share of high-intent actions (pricing page, form, demo
request) on a hidden intent level. Later touchpoints (up to day 180) depend on the true
probability: likely buyers keep coming back. The table is written last, with raw spellings,
campaigns named by quarter and seconds on page for web visits.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.data.demo.columns import choice, dict_array, timestamps
from features.data.demo.leads import Leads
from features.data.demo.process import (
    ACTIVITY_CHANNELS,
    ACTIVITY_SPELLINGS,
    CAMPAIGN_TOPICS,
    CHANNEL_SPELLINGS,
    DAY,
    EARLY_DAYS,
    EARLY_RATE,
    EARLY_TIMING,
    ENGAGEMENT_SD,
    EVENTS,
    HIGH_SHARE_LOGIT,
    HIGH_SPLIT,
    INTENT_SD,
    LATE_DAYS,
    LOW_SPLIT,
    SENIORITY,
    SIZES,
    START,
)
from features.data.vocabulary import ACTIVITIES, CHANNELS


def hidden_levels(rng: np.random.Generator, leads: Leads) -> tuple[np.ndarray, np.ndarray]:
    """(intent, engagement) per lead: they shape what is observed, not the outcome directly."""
    n = len(leads.created)
    intent = 0.5 * (
        np.array([v[1] for v in SENIORITY.values()])[leads.seniority]
        + np.array([v[1] for v in SIZES.values()])[leads.size]
    ) + rng.normal(0, INTENT_SD, n)
    engagement = rng.normal(0, ENGAGEMENT_SD, n)
    return intent, engagement


def first_touch(rng: np.random.Generator, leads: Leads) -> dict[str, np.ndarray]:
    """The conversion that created the lead, at its creation time, in the lead-source channel."""
    source_channel, created = leads.source_channel, leads.created
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


def early_touches(
    rng: np.random.Generator, leads: Leads, intent: np.ndarray, engagement: np.ndarray
) -> dict[str, np.ndarray]:
    """Touchpoints of the first 21 days after the first one."""
    n_early = rng.poisson(EARLY_RATE * np.exp(engagement))
    return _touches(
        rng,
        n_early,
        leads.created,
        leads.source_channel,
        leads.do_not_email,
        start_days=0.0,
        span_days=EARLY_DAYS,
        shape=EARLY_TIMING,
        high_share=1 / (1 + np.exp(-(HIGH_SHARE_LOGIT[0] + HIGH_SHARE_LOGIT[1] * intent))),
    )


def later_touches(
    rng: np.random.Generator, leads: Leads, engagement: np.ndarray, p: np.ndarray
) -> dict[str, np.ndarray]:
    """Touchpoints from day 21 to day 180: more, and more high-intent, the likelier a win."""
    n_late = rng.poisson(3.2 * np.exp(engagement) * (0.5 + 3.0 * p))
    return _touches(
        rng,
        n_late,
        leads.created,
        leads.source_channel,
        leads.do_not_email,
        start_days=EARLY_DAYS,
        span_days=LATE_DAYS - EARLY_DAYS,
        shape=(1.0, 1.6),
        high_share=1 / (1 + np.exp(-(-2.4 + 5.0 * p))),
    )


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
) -> dict[str, np.ndarray]:
    lead = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    m = len(lead)
    age = start_days + span_days * rng.beta(*shape, m)
    time = created[lead] + (age * DAY).astype(np.int64)
    high = rng.random(m) < high_share[lead]
    activity = np.empty(m, dtype=np.int8)
    high_codes = np.array([ACTIVITIES.index(a) for a in HIGH_SPLIT], dtype=np.int8)
    low_codes = np.array([ACTIVITIES.index(a) for a in LOW_SPLIT], dtype=np.int8)
    activity[high] = high_codes[choice(rng, list(HIGH_SPLIT.values()), int(high.sum()))]
    activity[~high] = low_codes[choice(rng, list(LOW_SPLIT.values()), int((~high).sum()))]
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
        picked = choice(rng, list(shares.values()), len(where))
        fixed = np.array(
            [CHANNELS.index(o) if o is not None else -1 for o in options], dtype=np.int8
        )
        chosen = fixed[picked]
        from_source = chosen == -1
        chosen[from_source] = source_channel[lead[where[from_source]]]
        channel[where] = chosen
    return {"lead": lead, "time": time, "activity": activity, "channel": channel}


def touchpoint_table(
    rng: np.random.Generator, parts: list[dict[str, np.ndarray]], ids: pa.Array, export_s: int
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
        vocab: list[str] = []
        offsets, widths = [], []
        for name in names:
            offsets.append(len(vocab))
            widths.append(len(spellings[name]))
            vocab.extend(spellings[name])
        offsets_a, widths_a = np.array(offsets), np.array(widths)
        other = rng.random(m) < 0.3
        pick = np.where(other, (rng.random(m) * widths_a[codes]).astype(np.int64), 0)
        return dict_array(offsets_a[codes] + pick, vocab)

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
    campaign = dict_array(index, vocab, missing)

    # Seconds on page for web activity; empty for the rest.
    web = np.isin(activity, [ACTIVITIES.index("visit"), ACTIVITIES.index("pricing_page_view")])
    seconds = np.round(rng.lognormal(4.0, 1.0, m))
    value = pa.array(seconds, mask=~web)

    return pa.table(
        {
            "lead_id": pa.DictionaryArray.from_arrays(pa.array(lead), ids),
            "occurred_at": timestamps(time),
            "channel": channel_arr,
            "activity": activity_arr,
            "campaign": campaign,
            "value": value,
        }
    )
