"""Step 1: leads and their attributes, as a CRM exports them.

Leads are created over two years with growth, monthly seasonality, fewer on weekends and mostly in
office hours. Their firmographics (industry, company size band, country and region, job title and
seniority, email type, lead source, do-not-email) are drawn from the shares in `process`, then
written the way exports write them: some missing, placeholders ('Select', 'N/A'), case and spacing
variants, raw channel spellings. What an attribute adds to the true logit is computed from what
stays readable, so the oracle needs nothing a model could not see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.data.demo.columns import choice, dict_array, timestamps
from features.data.demo.process import (
    CHANNEL_SHARE,
    CHANNEL_SPELLINGS,
    COUNTRIES,
    DAY,
    DO_NOT_EMAIL_EFFECT,
    FUNCTIONS,
    INDUSTRIES,
    INDUSTRY_AMOUNT,
    MISSING_SENIORITY_EFFECT,
    MISSING_SIZE_AMOUNT,
    MISSING_SIZE_EFFECT,
    MISSING_SIZE_STRETCH,
    MONTH_VOLUME,
    OTHER_PERSONAL,
    PERSONAL_EMAIL_EFFECT,
    REFERRER_MISSING,
    REGION_EFFECT,
    RENEWAL_DAYS,
    SENIORITY,
    SENIORITY_AMOUNT,
    SENIORITY_PACE,
    SHAPES,
    SIZES,
    SOURCE_EFFECT,
    SPAN_DAYS,
    START,
    STUDENT_PERSONAL,
    STUDENT_SMALLEST,
    WEEKDAY_VOLUME,
    Shape,
    job_titles,
    referrer_names,
    referrer_shares,
    shape_logit,
    title_states_function,
)
from features.data.vocabulary import CHANNELS


@dataclass
class Leads:
    """The drawn leads: what the later steps need, and the columns of the leads table."""

    created: np.ndarray  # int64 seconds since the epoch
    seniority: np.ndarray  # index into SENIORITY
    size: np.ndarray  # index into SIZES
    source_channel: np.ndarray  # index into CHANNELS of the lead source
    do_not_email: np.ndarray  # bool
    attribute_logit: np.ndarray  # the attributes' part of the true logit
    attribute_log_amount: np.ndarray  # the attributes' part of the log typical deal amount
    attribute_pace: np.ndarray  # the attributes' part of a win's pace (0 fast, 1 slow)
    columns: dict[str, pa.Array]  # attribute columns as exported, in table order

    def table(self, ids: pa.Array) -> pa.Table:
        return pa.table({"lead_id": ids, "created_at": timestamps(self.created), **self.columns})


def draw_leads(rng: np.random.Generator, n: int, shape: Shape = SHAPES["default"]) -> Leads:
    """The leads of the default process, then what `shape` adds (drawn last, so the default
    shape draws exactly what it always drew)."""
    # Creation day: growth x month x weekday, then office-hours time of day.
    days = np.arange(SPAN_DAYS)
    dates = START + days * np.timedelta64(1, "D")
    months = dates.astype("datetime64[M]").astype(int) % 12
    weekdays = (dates.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    weight = (1 + 0.6 * days / SPAN_DAYS) * MONTH_VOLUME[months] * WEEKDAY_VOLUME[weekdays]
    day = np.sort(choice(rng, weight.tolist(), n))
    hour = np.clip(rng.normal(13.0, 3.2, n), 0, 23.99)
    created = START.astype(np.int64) + day.astype(np.int64) * DAY + (hour * 3600).astype(np.int64)

    industry = choice(rng, [s for s, _ in INDUSTRIES.values()], n)
    seniority = choice(rng, [v[0] for v in SENIORITY.values()], n)
    function = choice(rng, [v[0] for v in FUNCTIONS.values()], n)
    student = seniority == list(SENIORITY).index("Student")
    size = choice(rng, [v[0] for v in SIZES.values()], n)
    size[student & (rng.random(n) < STUDENT_SMALLEST)] = 0
    country = choice(rng, [v[1] for v in COUNTRIES.values()], n)
    personal = rng.random(n) < np.where(student, STUDENT_PERSONAL, OTHER_PERSONAL)
    source = choice(rng, list(CHANNEL_SHARE.values()), n)  # index into CHANNEL_SHARE order
    source_channel = np.array([CHANNELS.index(c) for c in CHANNEL_SHARE])[source]
    do_not_email = rng.random(n) < 0.08

    industry_arr, industry_gone = messy(
        rng,
        industry,
        [(name,) for name in INDUSTRIES],
        variant_rate=0.0,
        missing_rate=0.06,
        placeholder_rate=0.03,
        case_rate=0.08,
    )
    size_arr, size_gone = messy(
        rng,
        size,
        [(band,) for band in SIZES],
        variant_rate=0.0,
        missing_rate=0.10,
        placeholder_rate=0.02,
    )
    country_arr, country_gone = messy(
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
    region_arr = dict_array(region, region_names, country_gone & (rng.random(n) < 0.9))
    seniority_arr, seniority_gone = messy(
        rng,
        seniority,
        [v[2] for v in SENIORITY.values()],
        variant_rate=0.15,
        missing_rate=0.10,
        placeholder_rate=0.03,
        case_rate=0.03,
    )
    title_arr, function_gone = job_title_column(rng, seniority, function, seniority_gone)
    source_arr, _ = messy(
        rng,
        source_channel,
        [CHANNEL_SPELLINGS[c] for c in CHANNELS],
        variant_rate=0.5,
        missing_rate=0.0,
        placeholder_rate=0.0,
        case_rate=0.03,
    )
    email_type = dict_array(
        personal.astype(np.int32), ["Business", "Personal"], rng.random(n) < 0.04
    )
    dne = dict_array(do_not_email.astype(np.int32), ["No", "Yes"])

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
        + np.array([SOURCE_EFFECT[c] for c in CHANNEL_SHARE])[source]
        + np.where(do_not_email, DO_NOT_EMAIL_EFFECT, 0.0)
    )
    # The observable deal size and pace: unreadable values take the neutral or missing value.
    industry_amount = np.array([INDUSTRY_AMOUNT.get(name, 1.0) for name in INDUSTRIES])
    seniority_amount = np.array([SENIORITY_AMOUNT.get(name, 1.0) for name in SENIORITY])
    size_amount = np.array([v[3] for v in SIZES.values()])
    attribute_log_amount = (
        np.log(np.where(size_gone, MISSING_SIZE_AMOUNT, size_amount[size]))
        + np.where(industry_gone, 0.0, np.log(industry_amount[industry]))
        + np.where(seniority_gone, 0.0, np.log(seniority_amount[seniority]))
    )
    size_stretch = np.array([v[2] for v in SIZES.values()])
    seniority_pace = np.array([SENIORITY_PACE.get(name, 0.0) for name in SENIORITY])
    attribute_pace = np.where(size_gone, MISSING_SIZE_STRETCH, size_stretch[size]) + np.where(
        seniority_gone, 0.0, seniority_pace[seniority]
    )
    columns = {
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
    shape_columns, shape_part = shape_attributes(rng, created, shape)
    return Leads(
        created, seniority, size, source_channel, do_not_email, attribute_logit + shape_part,
        attribute_log_amount, attribute_pace, columns | shape_columns,
    )  # fmt: skip


def shape_attributes(
    rng: np.random.Generator, created: np.ndarray, shape: Shape
) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The columns a shape adds (`referrer`, `contract_renewal`) and the shape's part of the true
    logit (`process.shape_logit`); nothing is drawn for a column the shape does not have."""
    n = len(created)
    columns: dict[str, pa.Array] = {}
    referrer = np.full(n, -1, dtype=np.int64)
    if shape.referrers:
        referrer = choice(rng, referrer_shares(shape.referrers).tolist(), n).astype(np.int64)
        referrer[rng.random(n) < REFERRER_MISSING] = -1
        names = referrer_names(shape.referrers)
        columns["referrer"] = dict_array(np.maximum(referrer, 0), names, referrer < 0)
    renewal = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    if shape.renewal_share:
        has = rng.random(n) < shape.renewal_share
        days = created // DAY + rng.integers(0, RENEWAL_DAYS, n)  # a date: midnight UTC
        renewal = np.where(has, (days * DAY).astype("datetime64[s]"), renewal)
        columns["contract_renewal"] = pa.array(
            days * DAY * 1000, pa.timestamp("ms", tz="UTC"), mask=~has
        )
    logit = shape_logit(shape, created.astype("datetime64[s]"), referrer, renewal)
    return columns, logit


def messy(
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
    return dict_array(indices, vocab, missing), missing | placeholder


def job_title_column(
    rng: np.random.Generator, seniority: np.ndarray, function: np.ndarray, gone: np.ndarray
) -> tuple[pa.Array, np.ndarray]:
    """Job titles built from seniority x function; missing where seniority is unreadable, and
    a vague title ('Consultant') that hides the function for some. Also the mask of leads whose
    title does not say the function."""
    levels, functions = list(SENIORITY), list(FUNCTIONS)
    vocab: list[str] = []
    for level in levels:
        for fn in functions:
            vocab += job_titles(level, fn)
    vague_at = len(vocab)
    vocab.append("Consultant")
    index = (seniority * len(functions) + function) * 2 + (rng.random(len(seniority)) < 0.4)
    vague = ~gone & (rng.random(len(seniority)) < 0.05)
    index[vague] = vague_at
    no_function = ~np.array([title_states_function(level) for level in levels])[seniority]
    return dict_array(index, vocab, gone), gone | vague | no_function
