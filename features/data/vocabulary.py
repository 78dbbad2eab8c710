"""features.data.vocabulary"""

from __future__ import annotations

import math
import re
from typing import Literal

CHANNELS: tuple[str, ...] = (
    "organic_search",
    "paid_search",
    "paid_social",
    "email",
    "webinar",
    "content",
    "event",
    "referral",
    "direct",
    "print",
    "other",
)


ACTIVITIES: tuple[str, ...] = (
    "visit",
    "pricing_page_view",
    "email_open",
    "email_click",
    "form_submit",
    "download",
    "webinar_attend",
    "demo_request",
    "unsubscribe",
    "email_bounce",
    "other",
)


HIGH_INTENT: tuple[str, ...] = ("demo_request", "pricing_page_view", "form_submit")


AttributeType = Literal["categorical", "numeric", "boolean", "datetime"]


ATTRIBUTE_TYPES: tuple[str, ...] = ("categorical", "numeric", "boolean", "datetime")


_CHANNEL_SYNONYMS: dict[str, tuple[str, ...]] = {
    "organic_search": (
        "organic",
        "seo",
        "organic search",
        "google organic",
        "bing organic",
        "google organic search",
        "search engine",
        "natural search",
        "google",
        "bing",
        "yahoo",
    ),
    "paid_search": (
        "paid search",
        "google ads",
        "adwords",
        "google adwords",
        "ppc",
        "sem",
        "cpc",
        "google cpc",
        "bing ads",
        "microsoft ads",
        "search ads",
        "paid search ads",
        "welingak website",
    ),
    "paid_social": (
        "paid social",
        "linkedin ads",
        "linkedin",
        "facebook ads",
        "facebook",
        "meta ads",
        "meta",
        "twitter ads",
        "twitter",
        "x ads",
        "social ads",
        "social media",
        "social",
        "instagram",
        "paid social media",
        "olark chat",
        "youtubechannel",
        "youtube",
    ),
    "email": (
        "email",
        "e mail",
        "email campaign",
        "email campaigns",
        "newsletter",
        "email marketing",
        "nurture email",
        "marketing email",
        "mailchimp",
        "hubspot email",
    ),
    "webinar": ("webinar", "webinars", "online event", "virtual event", "webcast"),
    "content": (
        "content",
        "content download",
        "content downloads",
        "ebook",
        "e book",
        "whitepaper",
        "white paper",
        "content syndication",
        "blog",
        "gated content",
        "case study",
    ),
    "event": (
        "event",
        "events",
        "trade show",
        "tradeshow",
        "trade shows",
        "events and trade shows",
        "events trade shows",
        "conference",
        "field event",
        "trade show event",
        "live event",
        "expo",
    ),
    "referral": (
        "referral",
        "referrals",
        "referral sites",
        "partner",
        "partner referral",
        "customer referral",
        "word of mouth",
        "reference",
    ),
    "direct": ("direct", "direct traffic", "direct none", "website", "web", "type in", "live chat"),
    "print": ("print", "print ad", "print ads", "magazine", "newspaper", "direct mail", "mailer"),
    "other": ("other", "others", "unknown", "misc", "miscellaneous"),
}


_ACTIVITY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "visit": (
        "visit",
        "page visit",
        "page visited on website",
        "website visit",
        "web visit",
        "page view",
        "pageview",
        "session",
        "site visit",
        "visited website",
    ),
    "pricing_page_view": (
        "pricing page view",
        "pricing page",
        "viewed pricing",
        "pricing",
        "pricing page visit",
        "pricing view",
        "viewed pricing page",
    ),
    "email_open": ("email open", "email opened", "opened email", "open", "email opens"),
    "email_click": (
        "email click",
        "email clicked",
        "email link clicked",
        "clicked email",
        "click",
        "link click",
        "email clicks",
    ),
    "form_submit": (
        "form submit",
        "form submitted",
        "form fill",
        "form submission",
        "form filled",
        "contact form",
        "contact us",
        "form submitted on website",
        "signup",
        "sign up",
    ),
    "download": (
        "download",
        "content download",
        "asset download",
        "ebook download",
        "whitepaper download",
        "downloaded",
        "resource download",
    ),
    "webinar_attend": (
        "webinar attend",
        "webinar attended",
        "attended webinar",
        "webinar attendance",
        "webinar attendee",
    ),
    "demo_request": (
        "demo request",
        "demo requested",
        "requested demo",
        "request a demo",
        "book a demo",
        "demo",
        "demo booked",
        "trial request",
    ),
    "unsubscribe": (
        "unsubscribe",
        "unsubscribed",
        "email unsubscribe",
        "email unsubscribed",
        "opt out",
        "opted out",
        "unreachable",
    ),
    "email_bounce": (
        "email bounce",
        "email bounced",
        "bounced",
        "bounce",
        "hard bounce",
        "soft bounce",
    ),
    "other": ("other", "others", "unknown"),
}


def _key(value: object) -> str:
    """Case, punctuation and spacing removed: 'Google / CPC ' -> 'google cpc'."""
    return re.sub(r"[^a-z0-9]+", " ", str(value).lower()).strip()


def _build_lookup(
    canonical: tuple[str, ...], synonyms: dict[str, tuple[str, ...]]
) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for name in canonical:
        lookup[_key(name)] = name
    for name, words in synonyms.items():
        for word in words:
            lookup[_key(word)] = name
    return lookup


_CHANNEL_LOOKUP = _build_lookup(CHANNELS, _CHANNEL_SYNONYMS)


_ACTIVITY_LOOKUP = _build_lookup(ACTIVITIES, _ACTIVITY_SYNONYMS)


def _lookup(value: object, table: dict[str, str], extra: dict[str, str] | None) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    key = _key(value)
    if extra:
        for raw, name in extra.items():
            if _key(raw) == key:
                return name
    if key in table:
        return table[key]
    if key.endswith("s") and key[:-1] in table:
        return table[key[:-1]]
    return None


def lookup_channel(value: object, extra: dict[str, str] | None = None) -> str | None:
    """The canonical channel for a spelling, or None when it is not recognised."""
    return _lookup(value, _CHANNEL_LOOKUP, extra)


def lookup_activity(value: object, extra: dict[str, str] | None = None) -> str | None:
    """The canonical activity for a spelling, or None when it is not recognised."""
    return _lookup(value, _ACTIVITY_LOOKUP, extra)


def normalise_channel(value: object, extra: dict[str, str] | None = None) -> str:
    """Canonical channel name for a messy spelling ('Google Ads' -> 'paid_search'); else 'other'."""
    return lookup_channel(value, extra) or "other"


def normalise_activity(value: object, extra: dict[str, str] | None = None) -> str:
    """Canonical activity name for a messy spelling ('Email Opened' -> 'email_open'); else 'other'."""
    return lookup_activity(value, extra) or "other"
