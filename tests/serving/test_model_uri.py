"""The model store reads model URIs through `features.model.artifact` (one reader for all)."""

from __future__ import annotations

from serving.model_store import current_registry_version, parse_registry_uri


def test_registry_uris_as_name_alias_version():
    assert parse_registry_uri("models:/lead-scoring@champion") == ("lead-scoring", "champion", None)
    assert parse_registry_uri("models:/lead-scoring/3") == ("lead-scoring", None, "3")
    assert parse_registry_uri("runs:/0123abcd/model") == ("", None, None)


def test_only_an_alias_has_a_current_version_to_poll():
    # no registry call: the URI alone says there is nothing to follow
    assert current_registry_version("models:/lead-scoring/3", "http://127.0.0.1:9") is None
    assert current_registry_version("runs:/0123abcd/model", "http://127.0.0.1:9") is None
