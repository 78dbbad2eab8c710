"""Exploration: a small, reproducible share of the leads the threshold holds back goes to sales.

A threshold only ever learns about the leads it lets through: whether the leads it holds back
would have closed stays unknown. With `Policy.exploration_rate` above 0, that share of the
held-back leads (decision `nurture` by the score alone: never a lead a hard rule decided, never a
do-not-contact lead, never a lead disqualified by its score) is sent to sales anyway and marked as
exploration, so their outcomes measure what the threshold misses
(`features.report.exploration`).

The draw is a hash of the policy version and the lead id, not a random number: the same lead
under the same policy version gets the same draw in every worker, in the API and in batch
scoring, and scoring it again does not give it a second chance. A new policy version draws anew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from features.policy.rules import Policy

_SCALE = float(2**64)


def exploration_draw(lead_id: Any, policy_version: int) -> float:
    """The lead's draw in [0, 1) under this policy version (blake2b of both: stable across
    processes and machines, unlike Python's `hash`)."""
    digest = hashlib.blake2b(
        f"{int(policy_version)}\x1f{lead_id}".encode(), digest_size=8, person=b"leadscore-xp"
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


def explored(
    lead_ids: Sequence[Any],
    decisions: Sequence[str],
    hard_rules: Sequence[str | None],
    do_not_contact: Sequence[bool] | np.ndarray | None,
    policy: Policy,
    policy_version: int,
) -> list[bool]:
    """Per lead, whether exploration sends it to sales: its decision is `nurture` with no hard
    rule, it is not do-not-contact (even when no rule says so), and its draw is below the rate."""
    rate = policy.exploration_rate
    n = len(lead_ids)
    if rate <= 0:
        return [False] * n
    dnc = [False] * n if do_not_contact is None else [bool(x) for x in do_not_contact]
    return [
        decision == "nurture"
        and rule is None
        and not blocked
        and exploration_draw(lead_id, policy_version) < rate
        for lead_id, decision, rule, blocked in zip(lead_ids, decisions, hard_rules, dnc)
    ]


def exploration_reason(score: int | float, policy: Policy) -> str:
    """Plain words for sales: why a lead under the threshold was sent to them."""
    share = policy.exploration_rate
    one_in = round(1 / share) if share > 0 else 0
    below = (
        f"its expected value is below the value threshold ({policy.value_threshold or 0:,.2f} "
        f"{policy.currency})"
        if policy.rank_by == "expected_value"
        else f"its score ({score:g}) is below the sales threshold ({policy.sales_threshold:g})"
    )
    return (
        f"Exploration: sent to sales although {below}, one of about 1 in {one_in} such leads "
        "chosen at random, to measure how the leads the threshold holds back turn out; please "
        "work it as any other"
    )


def apply_exploration(
    lead_ids: Sequence[Any],
    decisions: list[str],
    hard_rules: list[str | None],
    do_not_contact: Sequence[bool] | np.ndarray | None,
    policy: Policy,
    policy_version: int,
) -> list[bool]:
    """`explored` and its effect: explored leads' decisions become `sales` in place. Returns the
    per-lead exploration flags. `hard_rules` is left alone (no hard rule decided these leads)."""
    flags = explored(lead_ids, decisions, hard_rules, do_not_contact, policy, policy_version)
    if any(flags):
        for i in np.flatnonzero(flags):
            decisions[i] = "sales"
    return flags
