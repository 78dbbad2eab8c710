"""`leadscore keys create|list|revoke` and the key bootstrap setting."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from typer.testing import CliRunner

from leadscore.cli import app
from serving.config import Settings
from serving.db import api_keys, make_engine


@pytest.fixture
def keys(database_url):
    runner = CliRunner()

    def run(*args):
        return runner.invoke(app, ["keys", *args, "--database-url", database_url])

    return run


def test_create_list_revoke(keys, database_url):
    created = keys("create", "hubspot", "--role", "scorer")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("ls_") and len(key) >= 40
    assert "Store it now; it is not shown again" in created.stderr
    engine = make_engine(database_url)
    with engine.connect() as connection:
        row = connection.execute(sa.select(api_keys)).one()
    engine.dispose()
    assert (row.name, row.role, row.key_hash) == (
        "hubspot",
        "scorer",
        hashlib.sha256(key.encode()).hexdigest(),
    )

    listed = keys("list")
    assert listed.exit_code == 0
    assert "hubspot" in listed.stdout and "scorer" in listed.stdout and key[:8] in listed.stdout
    assert key not in listed.stdout

    revoked = keys("revoke", "hubspot")
    assert revoked.exit_code == 0
    assert "Revoked key hubspot (scorer)" in revoked.stderr
    assert "hubspot" not in keys("list", "--active-only").stdout


def test_key_errors_say_what_to_do(keys):
    assert keys("create", "crm").exit_code == 0
    again = keys("create", "crm")
    assert again.exit_code == 1
    assert "a key named 'crm' already exists (active)" in again.stderr
    assert "leadscore keys revoke crm" in again.stderr
    bad_role = keys("create", "other", "--role", "boss")
    assert bad_role.exit_code == 1
    assert "unknown role 'boss'; expected one of scorer, ops, admin" in bad_role.stderr
    missing = keys("revoke", "nobody")
    assert missing.exit_code == 1
    assert "no key named 'nobody'; existing keys: crm" in missing.stderr


def test_unreachable_database_is_a_message_not_a_traceback():
    result = CliRunner().invoke(
        app, ["keys", "list", "--database-url", "postgresql+psycopg://nobody@127.0.0.1:9/none"]
    )
    assert result.exit_code == 2
    assert "cannot open the database" in result.stderr
    assert "LEADSCORE_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("crm:scorer", "entry 1 must be name:role:key (got 2 part(s))"),
        (
            "crm:boss:0123456789abcdefgh",
            "entry 1 ('crm') has role 'boss'; expected one of scorer, ops, admin",
        ),
        (
            "a:admin:0123456789abcdefgh,crm:scorer:short",
            "entry 2 ('crm') has a key shorter than 16 characters",
        ),
    ],
)
def test_bootstrap_setting_errors(value, message, monkeypatch):
    monkeypatch.setenv("LEADSCORE_API_KEYS_BOOTSTRAP", value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert message in str(error.value)


def test_bootstrap_keys_are_parsed(monkeypatch):
    monkeypatch.setenv(
        "LEADSCORE_API_KEYS_BOOTSTRAP",
        "crm:scorer:0123456789abcdefgh, ops:ops:abcdefghij0123456789",
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    settings = Settings()
    assert settings.bootstrap_keys() == [
        ("crm", "scorer", "0123456789abcdefgh"),
        ("ops", "ops", "abcdefghij0123456789"),
    ]
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"
