"""features.policy.facts: the facts hard rules read (do-not-contact, demo request), from a lead's
attributes and touchpoints.

An attribute column states a fact when its name is one of the built-in names below (English and
the common French, German, Spanish, Italian, Portuguese and Dutch CRM fields) or one a data config
adds (`do_not_contact_columns:`, `demo_request_columns:`), and its value says yes
(`features.data.values.is_yes`: yes, oui, ja, sí ...). Names compare with case, accents, spaces
and punctuation ignored (`features.data.values.column_key`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.data.values import column_key, datetime_ns, is_yes
from features.data.vocabulary import ACTIVITIES, lookup_activity

if TYPE_CHECKING:
    from features.touchpoints import TouchpointArrays

FACTS = ("do_not_contact", "demo_request")


# ---------------------------------------------------------------------------------------------
# Facts

DO_NOT_CONTACT_ATTRIBUTES = frozenset(
    {
        "donotcontact",
        "donotemail",
        "donotcall",
        "optout",
        "optedout",
        "emailoptout",
        "emailoptedout",
        "hasoptedoutofemail",
        "unsubscribed",
        "unsubscribe",
        "nocontact",
        # fr: Ne pas contacter, Ne pas appeler, Ne pas envoyer d'e-mail, Désabonné, Désinscrit
        "nepascontacter", "nepasappeler", "nepasenvoyerdemail", "nepasenvoyerdemails",
        "nepasenvoyerdecourriel", "nepasenvoyerdecourriels", "nepasenvoyerdemailing",
        "desabonne", "desinscrit",
        # de: Nicht kontaktieren, Nicht anrufen, Keine E-Mail, Keine Werbung, Abgemeldet
        "nichtkontaktieren", "nichtanrufen", "keinekontaktaufnahme", "keineemail",
        "keineemails", "keinewerbung", "abgemeldet", "kontaktsperre", "werbesperre",
        # es: No contactar, No llamar, No enviar e-mail / correo, Dado de baja
        "nocontactar", "nollamar", "noenviaremail", "noenviarcorreo", "noenviarcorreos",
        "dadodebaja",
        # it: Non contattare, Non chiamare, Non inviare e-mail; pt: Não contactar / contatar
        "noncontattare", "nonchiamare", "noninviareemail", "naocontactar", "naocontatar",
        "naoligar", "naoenviaremail",
        # nl: Niet contacteren, Niet bellen, Niet mailen, Afgemeld
        "nietcontacteren", "nietbellen", "nietmailen", "afgemeld",
    }
)  # fmt: skip


DEMO_REQUEST_ATTRIBUTES = frozenset(
    {
        "demorequest", "demorequested", "requesteddemo",
        "demandededemo", "demodemandee", "demandedemo",  # fr
        "demoangefordert", "demoanfrage",  # de
        "solicituddedemo", "demosolicitada", "pedidodedemo",  # es, pt
        "richiestademo", "demorichiesta",  # it
        "demoaangevraagd", "demoaanvraag",  # nl
    }
)  # fmt: skip


@dataclass(frozen=True)
class FactColumns:
    """The attribute columns that state each fact, as `column_key`s."""

    do_not_contact: frozenset[str] = DO_NOT_CONTACT_ATTRIBUTES
    demo_request: frozenset[str] = DEMO_REQUEST_ATTRIBUTES

    def fact_of(self, name: Any) -> str | None:
        """The fact an attribute column states ('do_not_contact', 'demo_request'), if any."""
        key = column_key(name)
        if key in self.do_not_contact:
            return "do_not_contact"
        return "demo_request" if key in self.demo_request else None


BUILT_IN = FactColumns()


@lru_cache(maxsize=64)
def fact_columns(
    do_not_contact: tuple[str, ...] = (), demo_request: tuple[str, ...] = ()
) -> FactColumns:
    """The built-in names plus the columns a data config adds."""
    if not do_not_contact and not demo_request:
        return BUILT_IN
    return FactColumns(
        DO_NOT_CONTACT_ATTRIBUTES | {column_key(c) for c in do_not_contact},
        DEMO_REQUEST_ATTRIBUTES | {column_key(c) for c in demo_request},
    )


def fact_columns_of(data_config: Mapping[str, Any] | None) -> FactColumns:
    """The fact columns of a model: built-in plus its training data config's
    `do_not_contact_columns` / `demo_request_columns` (`metadata["data_config"]`)."""
    if not data_config:
        return BUILT_IN
    return fact_columns(
        tuple(data_config.get("do_not_contact_columns") or ()),
        tuple(data_config.get("demo_request_columns") or ()),
    )


_KEY_JUNK = re.compile(r"[^a-z0-9]")


@lru_cache(maxsize=4096)
def _activity_text(value: str) -> str:
    # The contract's synonyms: 'Email Unsubscribe' -> unsubscribe, 'Request a Demo' -> demo_request.
    return lookup_activity(value) or _KEY_JUNK.sub("_", value.strip().lower())


def _activity(value: Any) -> str:
    return _activity_text(value if isinstance(value, str) else str(value))


def lead_facts(
    attributes: Mapping[str, Any] | None,
    touchpoints: Sequence[Mapping[str, Any]] | None = None,
    columns: FactColumns = BUILT_IN,
) -> dict[str, bool]:
    """Facts of one lead from its attributes and touchpoints (already cut at `as_of`)."""
    dnc = demo = False
    for name, value in (attributes or {}).items():
        key = column_key(name)
        if key in columns.do_not_contact and is_yes(value):
            dnc = True
        elif key in columns.demo_request and is_yes(value):
            demo = True
    for touch in touchpoints or ():
        activity = _activity(touch.get("activity", ""))
        if activity == "unsubscribe":
            dnc = True
        elif activity == "demo_request":
            demo = True
    return {"do_not_contact": dnc, "demo_request": demo}


def attribute_facts(
    attributes: Sequence[Mapping[str, Any] | None], columns: FactColumns = BUILT_IN
) -> dict[str, np.ndarray]:
    """The attribute part of `lead_facts` for many leads, as boolean arrays (one per fact).

    Each distinct attribute name is keyed once, and only the values of the few names that are
    facts are read: a 1,000-lead request carries ~15,000 attribute values.
    """
    n = len(attributes)
    facts = {name: np.zeros(n, dtype=bool) for name in FACTS}
    names: set[Any] = set()
    for lead in attributes:
        if lead:
            names.update(lead)
    for name in names:
        target = columns.fact_of(name)
        if target is not None:
            facts[target] |= np.fromiter(
                (is_yes(lead.get(name)) if lead else False for lead in attributes),
                dtype=bool,
                count=n,
            )
    return facts


def frame_facts(
    leads: pd.DataFrame, touchpoints: pd.DataFrame | None = None, columns: FactColumns = BUILT_IN
) -> dict[str, np.ndarray]:
    """Facts of many leads as boolean arrays aligned with `leads` rows.

    Touchpoints after a lead's `as_of` (when `leads` has that column) are ignored, like features.
    """
    n = len(leads)
    facts = {name: np.zeros(n, dtype=bool) for name in FACTS}
    for column in leads.columns:
        target = columns.fact_of(column)
        if target is not None:
            facts[target] |= np.fromiter((is_yes(v) for v in leads[column]), dtype=bool, count=n)
    if touchpoints is not None and len(touchpoints) and n:
        tp = touchpoints[["lead_id", "activity"]].copy()
        if "as_of" in leads.columns and "occurred_at" in touchpoints.columns:
            cut = leads[["lead_id", "as_of"]].drop_duplicates("lead_id")
            tp = tp.assign(occurred_at=touchpoints["occurred_at"]).merge(cut, on="lead_id")
            tp = tp[tp["occurred_at"] <= tp["as_of"]]
        codes, uniques = pd.factorize(tp["activity"].astype(str))
        activity = (
            np.array([_activity(u) for u in uniques], dtype=object)[codes]
            if len(codes)
            else np.array([])
        )
        lead_ids = leads["lead_id"].astype(str)
        for fact, name in (("do_not_contact", "unsubscribe"), ("demo_request", "demo_request")):
            ids = set(tp.loc[activity == name, "lead_id"].astype(str))
            if ids:
                facts[fact] |= lead_ids.isin(ids).to_numpy()
    return facts


_UNSUBSCRIBE_CODE = ACTIVITIES.index("unsubscribe")


_DEMO_REQUEST_CODE = ACTIVITIES.index("demo_request")


def _touch_facts(arrays: TouchpointArrays, n: int) -> dict[str, np.ndarray]:
    """The touchpoint facts of many leads from the featurizer's arrays (canonical activities).

    A touchpoint counts up to and including the lead's `as_of` (age >= 0) or when its moment is
    unknown (NaN age), as `_touches_until` decides lead by lead.
    """
    known = ~(arrays.age_days < 0)
    return {
        "do_not_contact": np.bincount(arrays.row[known & (arrays.activity == _UNSUBSCRIBE_CODE)],
                                      minlength=n) > 0,
        "demo_request": np.bincount(arrays.row[known & (arrays.activity == _DEMO_REQUEST_CODE)],
                                    minlength=n) > 0,
    }  # fmt: skip


_RULE_ACTIVITIES = frozenset({"unsubscribe", "demo_request"})


_OTHER_ACTIVITIES = frozenset({"visit", "pricing_page_view", "email_open", "email_click", "form_submit",
                               "download", "webinar_attend", "email_bounce", "other"})  # fmt: skip


def _is_rule_activity(activity: Any) -> bool:
    if activity.__class__ is str:
        if activity in _RULE_ACTIVITIES:
            return True
        if activity in _OTHER_ACTIVITIES:
            return False
    return str(activity).strip().lower() in _RULE_ACTIVITIES


def _touches_until(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The record's rule-relevant touchpoints up to its `as_of` (later ones are not known yet)."""
    touches = record.get("touchpoints") or ()
    # Canonical names (what the API passes on) need no normalising: 20,000 touches in a request.
    try:
        relevant = [t for t in touches if (a := t.get("activity", "")) in _RULE_ACTIVITIES
                    or (a not in _OTHER_ACTIVITIES and _is_rule_activity(a))]  # fmt: skip
    except TypeError:  # an unhashable activity
        relevant = [t for t in touches if _is_rule_activity(t.get("activity", ""))]
    as_of = record.get("as_of")
    if not relevant or as_of is None:
        return relevant

    cut = datetime_ns(as_of, "as_of")
    kept = []
    for t in relevant:
        moment = datetime_ns(t.get("occurred_at"), "touchpoint occurred_at")
        if moment is None or cut is None or moment <= cut:
            kept.append(t)
    return kept
