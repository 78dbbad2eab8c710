"""Which columns state a hard-rule fact: the built-in English and European names, plus the ones a
data config adds; and the scorer applies a model's configured columns on every path."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from features.policy.facts import (
    BUILT_IN,
    attribute_facts,
    fact_columns,
    fact_columns_of,
    frame_facts,
    lead_facts,
)

NEITHER = {"do_not_contact": False, "demo_request": False}
DNC = {"do_not_contact": True, "demo_request": False}
DEMO = {"do_not_contact": False, "demo_request": True}


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"Ne pas contacter": "Oui"}, DNC),
        ({"Ne pas contacter": "Non"}, NEITHER),
        ({"Ne pas envoyer d'email": "oui"}, DNC),
        ({"NE PAS ENVOYER D'E-MAIL": "VRAI"}, DNC),
        ({"Désabonné": "oui"}, DNC),
        ({"Nicht kontaktieren": "ja"}, DNC),
        ({"Keine E-Mail": "Ja"}, DNC),
        ({"No contactar": "sí"}, DNC),
        ({"Não contactar": "sim"}, DNC),
        ({"Non contattare": "sì"}, DNC),
        ({"Niet bellen": "ja"}, DNC),
        ({"Demande de démo": "Oui"}, DEMO),
        ({"Demo angefordert": "ja"}, DEMO),
        ({"Liste rouge": "Oui"}, NEITHER),  # not a built-in name
    ],
)
def test_built_in_european_fact_columns(attributes, expected):
    assert lead_facts(attributes) == expected


def test_configured_columns_add_to_the_built_in_names():
    columns = fact_columns(("Liste rouge", "Kein Kontakt erwünscht"), ("Rendez-vous démo",))
    assert lead_facts({"liste_rouge": "oui"}, columns=columns) == DNC
    assert lead_facts({"Kein Kontakt erwünscht": "ja"}, columns=columns) == DNC
    assert lead_facts({"Rendez-vous demo": "Oui"}, columns=columns) == DEMO
    assert lead_facts({"Do Not Email": "Yes"}, columns=columns) == DNC  # built-in still there
    assert fact_columns() is BUILT_IN


def test_the_columns_of_a_models_data_config():
    config = {"leads": {"path": "x.csv"}, "do_not_contact_columns": ["Liste rouge"]}
    assert fact_columns_of(config).fact_of("Liste Rouge") == "do_not_contact"
    assert fact_columns_of({}) is BUILT_IN and fact_columns_of(None) is BUILT_IN
    assert fact_columns_of({"do_not_contact_columns": None}) is BUILT_IN  # as old models store it


def test_the_three_paths_agree_on_configured_columns():
    columns = fact_columns(("Liste rouge",), ("Démo demandée ?",))
    leads = [
        {"Liste rouge": "Oui", "Secteur": "Santé"},
        {"Liste rouge": "non", "Démo demandée ?": "oui"},
        {"Liste rouge": None},
        {"Ne pas contacter": "Oui"},
        None,
    ]
    many = attribute_facts(leads, columns)
    frame = pd.DataFrame([lead or {} for lead in leads]).assign(lead_id=list("abcde"))
    batch = frame_facts(frame, None, columns)
    for fact in ("do_not_contact", "demo_request"):
        one_by_one = [lead_facts(lead, columns=columns)[fact] for lead in leads]
        assert many[fact].tolist() == one_by_one == batch[fact].tolist()
    assert many["do_not_contact"].tolist() == [True, False, False, True, False]
    assert attribute_facts(leads)["do_not_contact"].tolist() == [False, False, False, True, False]


class _Everyone90:
    """An estimator that gives every lead 90%: only the hard rules keep a lead from sales."""

    _linear = _trees = None

    def predict_proba(self, X):
        return np.full(X.shape[0], 0.9)


@pytest.mark.parametrize("n_leads", [1, 8, 9, 12])  # the per-lead and the array paths
def test_the_scorer_applies_the_columns_of_its_training_config(n_leads):
    from features.model.scorer import LeadScorer
    from tests.features.test_featurizer import fitted

    scorer = LeadScorer(fitted(), _Everyone90())
    scorer.metadata = {"data_config": {"do_not_contact_columns": ["Liste rouge"]}}
    now = datetime(2024, 6, 1, tzinfo=UTC)
    marked = [i % 3 == 0 for i in range(n_leads)]
    records = [
        {"lead_id": f"L{i}", "attributes": {"Liste rouge": "Oui" if m else "Non"},
         "as_of": now, "created_at": None, "touchpoints": []}
        for i, m in enumerate(marked)
    ]  # fmt: skip
    decisions = scorer.score_columns(records, explain=False)["decision"]
    assert decisions == ["disqualify" if m else "sales" for m in marked]

    frame = pd.DataFrame({"lead_id": [r["lead_id"] for r in records],
                          "Liste rouge": [r["attributes"]["Liste rouge"] for r in records]})  # fmt: skip
    for spec in scorer.featurizer.attributes_.columns_:
        if spec["column"] not in frame:
            frame[spec["column"]] = pd.NaT if spec["type"] == "datetime" else None
    scored = scorer.score_frame(frame, as_of=now, explain=False)
    assert scored["decision"].tolist() == decisions
    assert scored["hard_rule"].notna().tolist() == marked
