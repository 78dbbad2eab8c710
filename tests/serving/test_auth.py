"""API keys and roles: 401 for missing/unknown keys, 403 for the wrong role, revocation, hashing."""

from __future__ import annotations

import hashlib
import logging
import threading

import pytest
import sqlalchemy as sa

from serving.auth import create_key, revoke_key
from serving.db import api_keys, make_engine
from tests.serving.conftest import KEYS, auth
from tests.serving.waiting import wait_for_fresh_run

LEAD = {"leads": [{"lead_id": "L-1", "attributes": {"industry": "retail"}}]}


def test_missing_key_is_401_and_says_how_to_send_one(sqlite_client_without_model):
    response = sqlite_client_without_model.post("/v1/score", json=LEAD)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing API key" in response.json()["detail"]
    assert "Authorization: Bearer <key>" in response.json()["detail"]


def test_unknown_key_is_401(sqlite_client_without_model):
    response = sqlite_client_without_model.post(
        "/v1/score", json=LEAD, headers={"Authorization": "Bearer ls_not-a-real-key-000000000000"}
    )
    assert response.status_code == 401
    assert response.json()["detail"].startswith("invalid or revoked API key")


def test_wrong_role_is_403_naming_the_role_needed(sqlite_client_without_model):
    client = sqlite_client_without_model
    response = client.post("/v1/score", json=LEAD, headers=auth("ops"))
    assert response.status_code == 403
    assert (
        response.json()["detail"]
        == "the key 'ops-key' has role ops; this needs role admin or scorer"
    )
    response = client.post("/v1/admin/reload", headers=auth("scorer"))
    assert response.status_code == 403
    assert "this needs role admin" in response.json()["detail"]
    response = client.get("/v1/keys", headers=auth("ops"))
    assert response.status_code == 403
    response = client.post(
        "/v1/outcomes",
        json={
            "outcomes": [{"lead_id": "L-1", "outcome": "won", "closed_at": "2026-01-01T00:00:00Z"}]
        },
        headers=auth("ops"),
    )
    assert response.status_code == 403


def test_allowed_roles_get_past_auth(sqlite_client_without_model):
    client = sqlite_client_without_model
    # No model is loaded in this app, so passing auth means the 503 of the model check.
    for role in ("scorer", "admin"):
        response = client.post("/v1/score", json=LEAD, headers=auth(role))
        assert response.status_code == 503, role
        assert response.json()["detail"].startswith("no model loaded yet")
    for role in ("scorer", "ops", "admin"):
        assert client.get("/v1/model", headers=auth(role)).status_code == 503, role
    response = client.post("/v1/score", json=LEAD, headers={"X-API-Key": KEYS["scorer"]})
    assert response.status_code == 503


def test_the_score_route_reads_keys_and_its_flag_as_every_route_does(sqlite_client_without_model):
    """POST /v1/score reads its key and `strict` itself (no dependency resolution): the same
    headers, the same order of answers (key, then body and flag, then model) and messages."""
    client = sqlite_client_without_model
    key = KEYS["scorer"]
    for headers in ({"Authorization": f"bearer {key}"}, {"Authorization": f"BEARER {key}"}):
        assert client.post("/v1/score", json=LEAD, headers=headers).status_code == 503
    for headers in ({"Authorization": f"Basic {key}"}, {"Authorization": "Bearer "}):
        response = client.post("/v1/score", json=LEAD, headers=headers)
        assert response.status_code == 401
        assert "missing API key" in response.json()["detail"]
    # a wrong Bearer key is not rescued by a good X-API-Key (as the dependency reads them)
    headers = {"Authorization": "Bearer ls_not-a-real-key-000000000000", "X-API-Key": key}
    assert client.post("/v1/score", json=LEAD, headers=headers).status_code == 401
    # no key: 401 before the body or the flag is read
    assert client.post("/v1/score?strict=maybe", content=b"{").status_code == 401
    for flag in ("true", "1", "yes", "off", "False"):
        response = client.post(f"/v1/score?strict={flag}", json=LEAD, headers=auth("scorer"))
        assert response.status_code == 503, flag
    response = client.post("/v1/score?strict=maybe", json=LEAD, headers=auth("scorer"))
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "strict", problem
    assert "strict" in problem["detail"] and "maybe" in problem["detail"], problem


def test_a_key_created_or_revoked_elsewhere_applies_at_the_next_cache_refresh(
    sqlite_client_without_model, sqlite_url
):
    client = sqlite_client_without_model
    refresher = client.app.state.services.keys.refresher
    assert refresher.interval == 0.2  # key_cache_seconds: revocations apply within it
    engine = make_engine(sqlite_url)
    key = create_key(engine, "crm-sync", "scorer")  # as `leadscore keys create` would, from outside
    headers = {"Authorization": f"Bearer {key}"}
    wait_for_fresh_run(refresher, "the key cache did not refresh")
    # past auth: no model is loaded in this app, so the answer is the model check's 503
    assert client.post("/v1/score", json=LEAD, headers=headers).status_code == 503
    revoke_key(engine, "crm-sync")
    wait_for_fresh_run(refresher, "the key cache did not refresh")
    refused = client.post("/v1/score", json=LEAD, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["detail"].startswith("invalid or revoked API key")
    engine.dispose()


def test_keys_are_stored_hashed_and_never_logged(sqlite_client_without_model, sqlite_url, caplog):
    client = sqlite_client_without_model
    with caplog.at_level(logging.DEBUG):
        created = client.post(
            "/v1/keys", json={"name": "hubspot", "role": "scorer"}, headers=auth("admin")
        )
        assert created.status_code == 201
        key = created.json()["key"]
        client.post("/v1/score", json=LEAD, headers={"Authorization": f"Bearer {key}"})
        client.post(
            "/v1/score",
            json=LEAD,
            headers={"Authorization": "Bearer ls_wrong-key-1234567890abcdef"},
        )
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(api_keys)).mappings().all()
    engine.dispose()
    stored = " ".join(str(value) for row in rows for value in row.values())
    for secret in (key, *KEYS.values(), "ls_wrong-key-1234567890abcdef"):
        assert secret not in stored
        assert secret not in caplog.text
    hubspot = next(row for row in rows if row["name"] == "hubspot")
    assert hubspot["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    listed = client.get("/v1/keys", headers=auth("admin")).json()
    assert {k["name"] for k in listed} == {"scorer-key", "ops-key", "admin-key", "hubspot"}
    assert all("key" not in k for k in listed)


def test_keys_over_http(sqlite_client_without_model):
    client = sqlite_client_without_model
    response = client.post("/v1/keys", json={"name": "crm", "role": "boss"}, headers=auth("admin"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "role"
    assert (
        client.post(
            "/v1/keys", json={"name": "crm", "role": "scorer"}, headers=auth("admin")
        ).status_code
        == 201
    )
    again = client.post("/v1/keys", json={"name": "crm", "role": "scorer"}, headers=auth("admin"))
    assert again.status_code == 409
    assert again.json()["detail"] == (
        "a key named 'crm' already exists (active); choose another name or revoke it first with "
        "`leadscore keys revoke crm`"
    )
    revoked = client.delete("/v1/keys/crm", headers=auth("admin"))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    missing = client.delete("/v1/keys/nobody", headers=auth("admin"))
    assert missing.status_code == 404
    assert missing.json()["detail"].startswith("no key named 'nobody'; existing keys: ")


def _start_together(engines, keys) -> list[BaseException]:
    """Run ensure_keys on every engine at the same moment; the errors they raised."""
    from serving.auth import ensure_keys

    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def start(engine) -> None:
        barrier.wait()
        try:
            ensure_keys(engine, keys)
        except BaseException as error:  # noqa: BLE001 - collected and asserted by the caller
            errors.append(error)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.postgres
def test_replicas_starting_together_all_bootstrap_the_same_keys(postgres_url):
    """Eight replicas inserting the same bootstrap keys at once: none fails on the unique name."""
    from serving.db import upgrade_database

    upgrade_database(postgres_url)
    engines = [make_engine(postgres_url) for _ in range(8)]
    try:
        for round_ in range(5):
            keys = [
                (f"boot-{round_}-{i}", "scorer", f"ls_boot-{round_}-{i}-{'x' * 24}")
                for i in range(20)
            ]
            assert _start_together(engines, keys) == []
            with engines[0].connect() as connection:
                names = connection.execute(
                    sa.select(api_keys.c.name).where(api_keys.c.name.like(f"boot-{round_}-%"))
                ).scalars()
                assert sorted(names) == sorted(name for name, _, _ in keys)
    finally:
        for engine in engines:
            engine.dispose()
