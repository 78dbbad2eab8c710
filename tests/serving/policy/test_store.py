"""The policy store on SQLite and PostgreSQL: versions, audit, concurrent saves, the worker cache,
and the 0002_policy and 0003_policy_actor migrations."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from features.policy.rules import Policy
from serving.db import current_revision, make_engine, upgrade_database
from serving.policy.store import (
    PolicyCache,
    PolicyConflict,
    PolicyStoreError,
    current_policy,
    history,
    policy_versions,
    rollback,
    save_policy,
)
from tests.serving.waiting import wait_for_fresh_run

DEFAULT = Policy(sales_threshold=55, nurture_threshold=25)


def test_migration_matches_the_table_the_code_queries_and_downgrades(database_url):
    upgrade_database(database_url, "0003_policy_actor")  # later revisions are tested on their own
    engine = make_engine(database_url)
    assert current_revision(engine) == "0003_policy_actor"
    migrated = {c["name"] for c in sa.inspect(engine).get_columns("policy_versions")}
    assert migrated == {c.name for c in policy_versions.columns}
    from alembic import command

    from serving.db import alembic_config

    command.downgrade(alembic_config(database_url), "0002_policy")
    migrated = {c["name"] for c in sa.inspect(engine).get_columns("policy_versions")}
    assert migrated == {c.name for c in policy_versions.columns} - {"actor"}
    command.downgrade(alembic_config(database_url), "0001_initial")
    assert "policy_versions" not in sa.inspect(engine).get_table_names()
    assert current_revision(engine) == "0001_initial"
    engine.dispose()


def test_versions_keep_who_when_why_and_the_previous_value(engine):
    assert current_policy(engine, DEFAULT).version == 0
    first = save_policy(
        engine, DEFAULT.model_copy(update={"sales_threshold": 60}), "ops-a", "more focus", DEFAULT
    )
    second = save_policy(
        engine,
        first.policy.model_copy(update={"nurture_threshold": 10}),
        "ops-b",
        "nurture more",
        DEFAULT,
    )
    assert (first.version, second.version) == (1, 2)
    stored = history(engine)
    assert [v.version for v in stored] == [2, 1]
    assert stored[1].previous_version == 0 and stored[1].previous_policy == DEFAULT
    assert stored[0].previous_policy.sales_threshold == 60 and stored[0].created_by == "ops-b"
    assert stored[0].reason == "nurture more" and stored[0].created_at is not None
    assert current_policy(engine, DEFAULT).policy.nurture_threshold == 10


def test_rollback_creates_a_new_version_equal_to_the_old_one(engine):
    save_policy(engine, DEFAULT.model_copy(update={"sales_threshold": 60}), "a", "v1", DEFAULT)
    save_policy(engine, DEFAULT.model_copy(update={"sales_threshold": 90}), "a", "v2", DEFAULT)
    restored = rollback(engine, 1, "b", "v2 starved sales", DEFAULT)
    assert restored.version == 3 and restored.policy.sales_threshold == 60
    assert restored.action == "rollback" and restored.restored_version == 1
    assert restored.previous_version == 2
    assert len(history(engine)) == 3  # nothing rewritten


def test_conflicts_and_missing_reasons_are_refused(engine):
    save_policy(engine, DEFAULT, "a", "v1", DEFAULT)
    with pytest.raises(
        PolicyConflict, match="you edited version 0, the current one is version 1 \\(saved by a\\)"
    ):
        save_policy(engine, DEFAULT, "b", "late", DEFAULT, expected_version=0)
    with pytest.raises(PolicyStoreError, match="a policy change needs a reason"):
        save_policy(engine, DEFAULT, "b", "  ", DEFAULT)
    with pytest.raises(
        PolicyStoreError, match="there is no policy version 7; versions go from 1 to 1"
    ):
        rollback(engine, 7, "b", "x", DEFAULT)


def test_concurrent_saves_get_distinct_versions(engine):
    errors: list[Exception] = []

    def save(i: int) -> None:
        try:
            save_policy(
                engine,
                DEFAULT.model_copy(update={"sales_threshold": 40 + i}),
                f"w{i}",
                f"r{i}",
                DEFAULT,
            )
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = history(engine)
    assert sorted(v.version for v in stored) == [1, 2, 3, 4]
    # each version records the one it replaced: an unbroken chain
    assert sorted(v.previous_version for v in stored) == [0, 1, 2, 3]


def test_cache_serves_the_model_default_then_picks_up_saves_from_elsewhere(engine):
    model_policy = {"policy": DEFAULT}
    cache = PolicyCache(engine, default=lambda: model_policy["policy"], refresh_seconds=0.05)
    cache.start()
    try:
        assert cache.current().version == 0 and cache.current().policy == DEFAULT
        # a new champion with another default policy applies at once while nothing was saved
        model_policy["policy"] = Policy(sales_threshold=70)
        assert cache.current().policy.sales_threshold == 70
        # a save by another process (straight into the database) is in force after the next refresh
        save_policy(engine, Policy(sales_threshold=33), "elsewhere", "x", DEFAULT)
        wait_for_fresh_run(cache.refresher, "the policy cache did not refresh")
        assert cache.current().version == 1
        assert cache.current().policy.sales_threshold == 33
        # a local save is in force at once
        saved = cache.save(Policy(sales_threshold=44), "here", "y")
        assert cache.current() is saved
    finally:
        cache.stop()


def test_a_refresh_that_read_no_version_does_not_undo_a_local_save(engine, monkeypatch):
    """The refresher reads the newest version (none yet), a request saves version 1 and puts it
    in force, then the refresher installs what it read: the save must stay in force. Seen in CI:
    PUT /v1/policy answered version 1 and the next score answered policy_version 0."""
    import serving.policy.store as store

    cache = PolicyCache(engine, default=lambda: DEFAULT, refresh_seconds=3600)
    read_newest = store.latest_version_number

    def newest_then_a_local_save(engine_):
        newest = read_newest(engine_)  # 0: nothing saved yet
        cache.save(Policy(sales_threshold=55), "ops", "saved while the refresh ran")
        return newest

    monkeypatch.setattr(store, "latest_version_number", newest_then_a_local_save)
    cache.refresh()
    assert cache.current().version == 1 and cache.current().policy.sales_threshold == 55


def test_cache_keeps_the_last_policy_when_the_database_goes_away(tmp_path):
    url = f"sqlite:///{tmp_path / 'gone.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    save_policy(engine, Policy(sales_threshold=61), "a", "v1", DEFAULT)
    cache = PolicyCache(engine, default=lambda: DEFAULT, refresh_seconds=0.05)
    cache.refresh()
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE policy_versions"))
    with pytest.raises(sa.exc.OperationalError):
        cache.refresh()
    assert cache.current().version == 1 and cache.current().policy.sales_threshold == 61
    engine.dispose()
