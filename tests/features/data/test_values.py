"""One reading of a value everywhere: the file reader, the featurizer and the hard-rule facts
agree on every spelling of yes and no (they used three word lists, and disagreed on 'x', '1.0',
'on', 'checked')."""

from __future__ import annotations

import math

import pytest

from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.data.values import NO_WORDS, YES_WORDS, is_yes, to_yes_no, yes_no
from features.featurizer import LeadFeaturizer
from features.policy.facts import attribute_facts, frame_facts, lead_facts


def _spellings(words: frozenset[str]) -> list[str]:
    return [s for w in sorted(words) for s in (w, w.upper(), f" {w.title()} ")]


YES = _spellings(YES_WORDS)
NO = _spellings(NO_WORDS)


@pytest.mark.parametrize("text,expected", [*((s, True) for s in YES), *((s, False) for s in NO)])
def test_file_featurizer_and_facts_read_a_spelling_the_same_way(tmp_path, text, expected):
    # a leads file where the column holds this spelling (and a plain no, so it is yes/no data)
    path = tmp_path / "leads.csv"
    other = "No" if expected else "Yes"
    path.write_text(
        f"lead_id,Do Not Email,Converted\nL1,{text},1\nL2,{other},0\n", encoding="utf-8"
    )
    data = load_lead_data(
        DataConfig(leads=path, label="Converted", types={"Do Not Email": "boolean"})
    )
    read_from_file = bool(data.leads.loc[data.leads["lead_id"] == "L1", "Do Not Email"].item())
    assert read_from_file is expected

    featurizer = LeadFeaturizer().fit(data.leads, {"Do Not Email": "boolean"})
    record = {"lead_id": "L1", "attributes": {"Do Not Email": text}, "touchpoints": []}
    (row,) = featurizer.transform_records([record])
    column = list(featurizer.get_feature_names_out()).index(
        next(n for n in featurizer.get_feature_names_out() if "do_not_email" in n.lower()
             or "do not email" in n.lower())
    )  # fmt: skip
    assert row[column] == (1.0 if expected else 0.0)

    assert yes_no(text) is expected and is_yes(text) is expected
    assert lead_facts({"Do Not Email": text})["do_not_contact"] is expected
    assert attribute_facts([{"Do Not Email": text}])["do_not_contact"].tolist() == [expected]
    assert frame_facts(data.leads)["do_not_contact"].tolist() == [expected, not expected]


@pytest.mark.parametrize("value", ["maybe", "", "  ", None, math.nan, 2, -1, 0.5, "yes please"])
def test_values_that_are_not_yes_or_no_are_missing_and_never_a_fact(value):
    assert yes_no(value) is None
    assert math.isnan(to_yes_no(value))
    assert lead_facts({"Do Not Email": value})["do_not_contact"] is False
