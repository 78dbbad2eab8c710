"""Reading one value from a European export: yes/no words, decimal commas and thousands
separators, column names with accents. One module decides, for files, the featurizer and the
hard-rule facts alike."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from features.data.values import (
    COMMA,
    OUTCOME_WORDS,
    POINT,
    NumberFormat,
    column_key,
    number_reading,
    to_boolean,
    to_number,
    to_numeric,
    to_yes_no,
    yes_no,
)


@pytest.mark.parametrize(
    "word",
    ["Oui", "VRAI", "Ja", "wahr", "Sí", "si", "sì", "verdadero", "vero", "Sim", "verdadeiro", "waar",
     "tak", "prawda", " oui "],
)  # fmt: skip
def test_yes_in_european_languages(word):
    assert yes_no(word) is True and to_yes_no(word) == 1.0


@pytest.mark.parametrize(
    "word",
    ["Non", "faux", "Nein", "falsch", "No", "falso", "Não", "nao", "Nee", "onwaar", "nej", "nei",
     "nie", "fałsz"],
)  # fmt: skip
def test_no_in_european_languages(word):
    assert yes_no(word) is False and to_yes_no(word) == 0.0


def test_words_that_are_not_yes_or_no_stay_unknown():
    for word in ("peut-être", "vielleicht", "ne", "s", "oui!"):
        assert yes_no(word) is None and math.isnan(to_yes_no(word))


def test_a_column_of_oui_non_reads_as_booleans_with_missing_kept():
    values, bad = to_boolean(pd.Series(["Oui", "non", None, "OUI", "peut-être"]))
    assert values.tolist() == [True, False, pd.NA, True, pd.NA]
    assert bad.tolist() == [False, False, False, False, True]


def test_outcome_words_in_european_languages():
    assert OUTCOME_WORDS["gagné"] and not OUTCOME_WORDS["perdu"]
    assert OUTCOME_WORDS["gewonnen"] and not OUTCOME_WORDS["verloren"]
    assert OUTCOME_WORDS["oui"] and not OUTCOME_WORDS["non"]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1,5", 1.5),  # was 15.0: the comma was dropped
        ("1.234,5", 1234.5),
        ("1 234,5", 1234.5),
        ("1\u202f234,5", 1234.5),  # French exports: a narrow no-break space between thousands
        ("1'234.50", 1234.5),
        ("-0,25", -0.25),
        ("1,200", 1200.0),  # as before: a comma before three digits separates thousands
        ("1,234.5", 1234.5),
        ("12", 12.0),
    ],
)
def test_one_number_with_separators(text, number):
    assert to_number(text) == number


def test_one_number_that_no_format_reads_is_missing():
    for text in ("1,2,3", "1.2.3,4,5", "12,5%", "1,23,456"):
        assert math.isnan(to_number(text)), text


def test_a_column_in_a_given_format():
    values = pd.Series(["1.234,5", "12", "0,5", "1.5", None, "douze"])
    numbers, bad = to_numeric(values, COMMA)
    assert numbers.tolist()[:3] == [1234.5, 12.0, 0.5]
    assert bad.tolist() == [
        False,
        False,
        False,
        True,
        False,
        True,
    ]  # 1.5 is not a decimal-comma number
    numbers, bad = to_numeric(pd.Series(["1 234", "1.234"]), NumberFormat(",", " "))
    assert numbers.tolist()[0] == 1234.0 and bad.tolist() == [False, True]
    numbers, _ = to_numeric(pd.Series(["1,234.5", "1e3", "7"]), POINT)
    assert numbers.tolist() == [1234.5, 1000.0, 7.0]


@pytest.mark.parametrize(
    ("values", "kind", "examples"),
    [
        (["1,5", "2", "3,25"], "decimal_comma", ("1,5", "3,25")),
        (["1.234,5", "12"], "decimal_comma", ("1.234,5",)),
        (["1,234.5", "3"], "decimal_point", ("1,234.5",)),
        (["1.5", "2", "1e3"], "text", ()),  # plain numbers: read as before
        (["1.5", "2"], "plain", ()),
        (["0.125", "0.5"], "plain", ()),
        (["2.5", "2,5"], "mixed", ("2.5", "2,5")),
        (["1,234", "5,678", "12"], "ambiguous", ("1,234", "5,678")),
        (["1.500", "2.750", "12"], "ambiguous", ("1.500", "2.750")),
        (["Paris", "12"], "text", ()),
    ],
)
def test_how_a_column_writes_its_numbers(values, kind, examples):
    reading = number_reading(pd.Series(values))
    assert (reading.kind, reading.examples) == (kind, examples)


def test_an_ambiguous_column_is_never_guessed_with_commas_and_read_as_before_with_points():
    assert number_reading(pd.Series(["1,234", "5,678"])).default is None
    assert number_reading(pd.Series(["1.500", "2.750"])).default == POINT


def test_column_names_compare_without_case_accents_spaces_or_punctuation():
    assert column_key("Ne pas envoyer d'e-mail") == column_key("NE_PAS_ENVOYER_DEMAIL")
    assert column_key("Désabonné") == "desabonne"
    assert column_key("Não contactar") == "naocontactar"
    assert column_key(7) == "7"
