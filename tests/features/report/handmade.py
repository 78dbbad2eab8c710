"""A hand-made funnel small enough to count on paper (the figures in the tests are counted by hand).

Eight leads in three weeks of January 2024 (all moments 09:00 UTC, so days to close are whole):

| lead | created    | industry | touchpoints up to the close (channel, campaign)           | outcome                      |
|------|------------|----------|-----------------------------------------------------------|------------------------------|
| L1   | Mon 01-01  | Software | email NL-Jan 01-01, email NL-Jan 01-05, webinar W-Q1 01-10 | won 01-21, 1000 (20 days)    |
| L2   | Tue 01-02  | Software | paid_search S-Brand 01-02, email - 01-03 (+ webinar 01-20 after the close) | lost 01-12 |
| L3   | Wed 01-03  | Retail   | none (content Ebook 01-20 is after the close)             | won 01-13, no amount (10 days)|
| L4   | Mon 01-08  | Retail   | webinar W-Q1 01-08, paid_search S-Brand 01-09 (+ email 01-25 after) | won 01-18, 3000 (10 days) |
| L5   | Tue 01-09  | Software | email NL-Jan 01-09                                        | lost 01-19                   |
| L6   | Wed 01-10  | (empty)  | paid_search S-Brand 01-10, paid_search - 01-11            | open                         |
| L7   | Mon 01-15  | Retail   | webinar W-Q1 01-15, email - 01-16                         | won 02-14, 2000 (30 days); a later loss 03-01 is ignored |
| L8   | Tue 01-16  | Software | email NL-Jan 01-16                                        | open                         |

Scores: L1 80 A sales, L2 40 B sales, L3 70 A sales, L4 20 C nurture, L5 10 D disqualify,
L6 55 B nurture, L7 65 A sales (an older row 30 C nurture, listed after it, is not the latest),
L8 not scored.
"""

from __future__ import annotations

import pandas as pd


def _t(day: str) -> pd.Timestamp:
    return pd.Timestamp(f"2024-{day} 09:00", tz="UTC")


def leads() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(1, 9)],
            "created_at": [_t(d) for d in ("01-01", "01-02", "01-03", "01-08", "01-09", "01-10",
                                           "01-15", "01-16")],
            "industry": ["Software", "Software", "Retail", "Retail", "Software", None, "Retail",
                         "Software"],
        }
    )  # fmt: skip


def touchpoints() -> pd.DataFrame:
    rows = [
        ("L1", "01-01", "email", "form_submit", "NL-Jan"),
        ("L1", "01-05", "email", "email_click", "NL-Jan"),
        ("L1", "01-10", "webinar", "webinar_attend", "W-Q1"),
        ("L2", "01-02", "paid_search", "visit", "S-Brand"),
        ("L2", "01-03", "email", "email_open", None),
        ("L2", "01-20", "webinar", "webinar_attend", "W-Q1"),  # after L2 closed (01-12)
        ("L3", "01-20", "content", "download", "Ebook"),  # after L3 closed (01-13)
        ("L4", "01-08", "webinar", "webinar_attend", "W-Q1"),
        ("L4", "01-09", "paid_search", "pricing_page_view", "S-Brand"),
        ("L4", "01-25", "email", "email_open", "NL-Jan"),  # after L4 closed (01-18)
        ("L5", "01-09", "email", "email_open", "NL-Jan"),
        ("L6", "01-10", "paid_search", "visit", "S-Brand"),
        ("L6", "01-11", "paid_search", "visit", None),
        ("L7", "01-15", "webinar", "webinar_attend", "W-Q1"),
        ("L7", "01-16", "email", "email_click", None),
        ("L8", "01-16", "email", "email_open", "NL-Jan"),
    ]
    return pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "occurred_at": [_t(r[1]) for r in rows],
            "channel": [r[2] for r in rows],
            "activity": [r[3] for r in rows],
            "campaign": pd.Series([r[4] for r in rows], dtype="str"),
            "value": float("nan"),
        }
    )


def outcomes() -> pd.DataFrame:
    rows = [
        ("L1", "01-21", True, 1000.0),
        ("L2", "01-12", False, float("nan")),
        ("L3", "01-13", True, float("nan")),
        ("L4", "01-18", True, 3000.0),
        ("L5", "01-19", False, 500.0),  # a lost deal's amount is not revenue
        ("L7", "03-01", False, float("nan")),  # later than L7's win: the earliest outcome counts
        ("L7", "02-14", True, 2000.0),
    ]
    return pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "closed_at": [_t(r[1]) for r in rows],
            "won": [r[2] for r in rows],
            "amount": [r[3] for r in rows],
        }
    )


def scores() -> pd.DataFrame:
    rows = [
        ("L1", 80, "A", "sales", "01-20"),
        ("L2", 40, "B", "sales", "01-05"),
        ("L3", 70, "A", "sales", "01-05"),
        ("L4", 20, "C", "nurture", "01-10"),
        ("L5", 10, "D", "disqualify", "01-10"),
        ("L6", 55, "B", "nurture", "01-12"),
        ("L7", 65, "A", "sales", "01-20"),
        ("L7", 30, "C", "nurture", "01-16"),  # older than the row above
    ]
    return pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "score": [r[1] for r in rows],
            "grade": [r[2] for r in rows],
            "decision": [r[3] for r in rows],
            "scored_at": [_t(r[4]) for r in rows],
        }
    )
