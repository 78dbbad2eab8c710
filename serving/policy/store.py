"""Versioned, audited qualification policies in the database, and the cache every worker reads.

Each save inserts a new row in `policy_versions` (version = previous + 1) with who (the API key's
name, or `cli:<user>`, and the person when one is named: `actor`), when, why, the action (`set`,
`rollback` or `restore_default`) and the policy it replaced. Nothing is updated or deleted, so the
table is the audit log. Version 0 is the model's own default policy (from its metadata), in force
until marketing ops save one; `restore_default` puts the model's default back in force as a new
version: from then on the policy follows the model again (a new champion's default applies at
once), and the row keeps the default as it was then, for the audit.

Workers never read the table on the request path: `PolicyCache.current()` is an attribute read.
A background `Refresher` asks the database for the latest version number every `refresh_seconds`
(an index-only `max()`), and loads the row only when it changed, so a save in one worker is in
force in every worker within about that interval, without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from features.policy.rules import Policy
from serving.db import as_utc, metadata, utcnow
from serving.refresher import Refresher

log = logging.getLogger(__name__)

policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("policy", sa.JSON, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("previous_version", sa.Integer, nullable=False),
    sa.Column("previous_policy", sa.JSON, nullable=False),
    sa.Column("restored_version", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(100), nullable=True),  # migration 0003_policy_actor
)

MODEL_DEFAULT = 0


RESTORE_DEFAULT = "restore_default"  # the action that puts the model's own policy back in force


class PolicyStoreError(ValueError):
    """A policy change that cannot be made; the message says why and what to do."""


class PolicyConflict(PolicyStoreError):
    """The policy changed since the caller read it."""


class PolicyVersionNotFound(PolicyStoreError):
    """A rollback asked for a version that was never saved."""


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One version of the policy. Version 0 is the model's default, never saved."""

    version: int
    policy: Policy
    action: str = "default"
    created_by: str | None = None
    created_at: datetime | None = None
    reason: str | None = None
    previous_version: int | None = None
    previous_policy: Policy | None = None
    restored_version: int | None = None
    actor: str | None = None

    @property
    def follows_model(self) -> bool:
        """Whether the model's own default policy is in force (version 0, or restored)."""
        return self.version == MODEL_DEFAULT or self.action == RESTORE_DEFAULT

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": "model default" if self.follows_model else "saved",
            "policy": self.policy.model_dump(mode="json"),
            "action": self.action,
            "created_by": self.created_by,
            "actor": self.actor,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "reason": self.reason,
            "previous_version": self.previous_version,
            "restored_version": self.restored_version,
            "changes": describe_changes(self.previous_policy, self.policy)
            if self.previous_policy
            else [],
        }


def describe_changes(before: Policy, after: Policy) -> list[str]:
    """Plain-word list of what differs between two policies, e.g. 'sales_threshold: 50 -> 60'."""
    changes = []
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    for field in ("sales_threshold", "nurture_threshold"):
        if old[field] != new[field]:
            changes.append(f"{field}: {_num(old[field])} -> {_num(new[field])}")
    if old["grades"]["by"] != new["grades"]["by"]:
        changes.append(f"grades by: {old['grades']['by']} -> {new['grades']['by']}")
    if new["grades"]["by"] == "share" and _shares(old["grades"]) != _shares(new["grades"]):
        changes.append(f"grade shares: {_shares(old['grades'])} -> {_shares(new['grades'])}")
    for grade in ("A", "B", "C"):
        if old["grades"][grade] != new["grades"][grade]:
            changes.append(
                f"grade {grade} from: {_num(old['grades'][grade])} -> {_num(new['grades'][grade])}"
            )
    if old.get("weekly_capacity") != new["weekly_capacity"]:
        changes.append(
            f"weekly_capacity: {_num(old.get('weekly_capacity'))} -> {_num(new['weekly_capacity'])}"
        )
    if old.get("currency", "EUR") != new["currency"]:
        changes.append(f"currency: {old.get('currency', 'EUR')} -> {new['currency']}")
    # policies saved before these fields existed had them at their defaults
    if old.get("exploration_rate", 0.0) != new["exploration_rate"]:
        changes.append(
            f"exploration_rate: {_num(old.get('exploration_rate', 0.0))} -> "
            f"{_num(new['exploration_rate'])}"
        )
    if old.get("trend_points", 5.0) != new["trend_points"]:
        changes.append(
            f"trend_points: {_num(old.get('trend_points', 5.0))} -> {_num(new['trend_points'])}"
        )
    if old.get("rank_by", "probability") != new["rank_by"]:
        changes.append(f"rank_by: {old.get('rank_by', 'probability')} -> {new['rank_by']}")
    if old.get("value_threshold") != new["value_threshold"]:
        changes.append(
            f"value_threshold: {_money(old.get('value_threshold'))} -> "
            f"{_money(new['value_threshold'])} {new['currency']}"
        )
    if old["rules"] != new["rules"]:

        def fmt(rules):
            return ", ".join(f"{r['fact']} -> {r['decision']}" for r in rules) or "none"

        changes.append(f"hard rules: {fmt(old['rules'])} -> {fmt(new['rules'])}")
    return changes


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def _money(value: float | None) -> str:
    """An amount to the cent, with thousands separators (`:g` would write 1.23457e+06)."""
    return "none" if value is None else f"{value:,.2f}"


def _shares(grades: dict[str, Any]) -> str:
    shares = grades.get("shares") or {"A": 0.25, "B": 0.25, "C": 0.25}
    return "/".join(f"{100 * shares[g]:g}%" for g in ("A", "B", "C"))


def _row_to_version(row) -> PolicyVersion:
    return PolicyVersion(
        version=row.version,
        policy=Policy.model_validate(row.policy),
        action=row.action,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
        reason=row.reason,
        previous_version=row.previous_version,
        previous_policy=Policy.model_validate(row.previous_policy),
        restored_version=row.restored_version,
        actor=getattr(row, "actor", None),
    )


def in_force(version: PolicyVersion, default: Policy) -> PolicyVersion:
    """`version` with the policy it puts in force: the model's default when it follows the model."""
    return replace(version, policy=default) if version.follows_model else version


def latest_version_number(engine: Engine) -> int:
    """The newest saved version, 0 when none was ever saved (one cheap query)."""
    with engine.connect() as connection:
        value = connection.execute(sa.select(sa.func.max(policy_versions.c.version))).scalar()
    return int(value or 0)


def load_version(engine: Engine, version: int) -> PolicyVersion | None:
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(policy_versions).where(policy_versions.c.version == version)
        ).first()
    return None if row is None else _row_to_version(row)


def current_policy(engine: Engine, default: Policy) -> PolicyVersion:
    """The policy in force: the newest saved version, or the model's default (version 0, or a
    version that restored it)."""
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(policy_versions).order_by(policy_versions.c.version.desc()).limit(1)
        ).first()
    if row is None:
        return PolicyVersion(MODEL_DEFAULT, default)
    return in_force(_row_to_version(row), default)


def history(engine: Engine, limit: int = 100) -> list[PolicyVersion]:
    """Saved versions, newest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(policy_versions).order_by(policy_versions.c.version.desc()).limit(limit)
        ).all()
    return [_row_to_version(row) for row in rows]


def save_policy(
    engine: Engine,
    policy: Policy,
    who: str,
    reason: str,
    default: Policy,
    *,
    expected_version: int | None = None,
    action: str = "set",
    restored_version: int | None = None,
    actor: str | None = None,
) -> PolicyVersion:
    """Store `policy` as the new current version and return it.

    `default` is the model's policy, recorded as the previous value when nothing was saved yet.
    With `expected_version`, refuse (PolicyConflict) if someone saved a newer version meanwhile.
    `actor` names the person (beside `who`, the key), when the caller said who they are.
    """
    reason = (reason or "").strip()
    if not reason:
        raise PolicyStoreError(
            "a policy change needs a reason (who asked for it, and why), e.g. "
            "'sales can take 40 leads a week from March'"
        )
    if not who:
        raise PolicyStoreError("a policy change needs the name of who made it")
    actor = " ".join((actor or "").split())[:100] or None
    for _attempt in range(5):
        try:
            new = _insert_next(
                engine, policy, who, reason, default, expected_version, action, restored_version,
                actor,
            )  # fmt: skip
        except IntegrityError:
            continue  # another writer took this version number: read again and retry
        log.info(
            "policy version %d saved by %s%s (%s)",
            new.version, new.created_by, f" ({actor})" if actor else "", action,
        )  # fmt: skip
        return new
    raise PolicyStoreError("could not save the policy: too many concurrent changes; try again")


def _insert_next(
    engine: Engine,
    policy: Policy,
    who: str,
    reason: str,
    default: Policy,
    expected_version: int | None,
    action: str,
    restored_version: int | None,
    actor: str | None,
) -> PolicyVersion:
    with engine.begin() as connection:
        row = connection.execute(
            sa.select(policy_versions).order_by(policy_versions.c.version.desc()).limit(1)
        ).first()
        previous = (
            PolicyVersion(MODEL_DEFAULT, default)
            if row is None
            else in_force(_row_to_version(row), default)
        )
        if expected_version is not None and expected_version != previous.version:
            raise PolicyConflict(
                f"the policy changed since you read it: you edited version {expected_version}, "
                f"the current one is version {previous.version}"
                + (f" (saved by {previous.created_by})" if previous.created_by else "")
                + "; reload it and make your change again"
            )
        new = PolicyVersion(
            version=previous.version + 1,
            policy=policy,
            action=action,
            created_by=who[:100],
            created_at=utcnow(),
            reason=reason,
            previous_version=previous.version,
            previous_policy=previous.policy,
            restored_version=restored_version,
            actor=actor,
        )
        connection.execute(
            policy_versions.insert().values(
                version=new.version,
                policy=policy.model_dump(mode="json"),
                action=action,
                created_by=new.created_by,
                created_at=new.created_at,
                reason=reason,
                previous_version=previous.version,
                previous_policy=previous.policy.model_dump(mode="json"),
                restored_version=restored_version,
                actor=actor,
            )
        )
    return new


def rollback(
    engine: Engine,
    version: int,
    who: str,
    reason: str,
    default: Policy,
    *,
    expected_version: int | None = None,
    actor: str | None = None,
) -> PolicyVersion:
    """Make version `version` current again, as a new audited version equal to it. Version 0,
    or a version that restored the model's default, restores the model's default again."""
    if version == MODEL_DEFAULT:
        return restore_default(
            engine, who, reason, default, expected_version=expected_version, actor=actor
        )
    old = load_version(engine, version)
    if old is None:
        newest = latest_version_number(engine)
        raise PolicyVersionNotFound(
            f"there is no policy version {version}; versions go from 1 to {newest}"
            if newest
            else f"there is no policy version {version}: no policy was saved yet"
        )
    if old.follows_model:
        return restore_default(
            engine, who, reason, default, expected_version=expected_version, actor=actor
        )
    return save_policy(
        engine,
        old.policy,
        who,
        reason,
        default,
        expected_version=expected_version,
        action="rollback",
        restored_version=version,
        actor=actor,
    )


def restore_default(
    engine: Engine,
    who: str,
    reason: str,
    default: Policy,
    *,
    expected_version: int | None = None,
    actor: str | None = None,
) -> PolicyVersion:
    """Put the model's own default policy back in force, as a new audited version: the policy
    follows the model again (a new champion's default applies at once, as before any change)."""
    return save_policy(
        engine,
        default,
        who,
        reason,
        default,
        expected_version=expected_version,
        action=RESTORE_DEFAULT,
        restored_version=MODEL_DEFAULT,
        actor=actor,
    )


def merge_policy(current: Policy, changes: dict[str, Any]) -> Policy:
    """`current` with the top-level fields in `changes` replaced (raises pydantic ValidationError)."""
    data = current.model_dump(mode="json")
    data.update(changes)
    return Policy.model_validate(data)


def validation_message(error: ValidationError, prefix: str = "policy") -> str:
    """One line per problem: 'policy.sales_threshold: Input should be ...'."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


class PolicyCache:
    """The policy in force in this worker, refreshed from the database by a `Refresher`.

    `default` returns the model's default policy (version 0); it is called on each `current()`
    while nothing was saved, so a new champion's default applies at once.
    """

    def __init__(
        self, engine: Engine, default: Callable[[], Policy], refresh_seconds: float = 0.5
    ) -> None:
        self._engine = engine
        self._default = default
        self._saved: PolicyVersion | None = None
        self._following: tuple[PolicyVersion, Policy, PolicyVersion] | None = None
        self._lock = threading.Lock()
        self.refresher = Refresher("leadscore-policy", self.refresh, refresh_seconds)

    def current(self) -> PolicyVersion:
        saved = self._saved
        if saved is not None and not saved.follows_model:
            return saved
        default = self._default()
        if saved is None:
            return PolicyVersion(MODEL_DEFAULT, default)
        cached = self._following  # the restored version with the model's policy of now
        if cached is None or cached[0] is not saved or cached[1] is not default:
            cached = self._following = (saved, default, in_force(saved, default))
        return cached[2]

    def default(self) -> Policy:
        return self._default()

    def refresh(self) -> None:
        newest = latest_version_number(self._engine)
        saved = self._saved
        if newest == (saved.version if saved else MODEL_DEFAULT):
            return
        row = load_version(self._engine, newest) if newest else None
        self._install(row)

    def _install(self, version: PolicyVersion | None) -> None:
        with self._lock:
            # Never go back to an older version because a slow refresh raced a local save: nor
            # to none (a refresh that read "nothing saved" just before this worker saved).
            saved = self._saved
            if version is not None and (saved is None or version.version > saved.version):
                self._saved = version
                if version is not None:
                    log.info("policy version %d in force", version.version)

    # Writes go to the database first, then into this worker's cache at once.
    def save(
        self,
        policy: Policy,
        who: str,
        reason: str,
        expected_version: int | None = None,
        actor: str | None = None,
    ) -> PolicyVersion:
        new = save_policy(
            self._engine, policy, who, reason, self._default(),
            expected_version=expected_version, actor=actor,
        )  # fmt: skip
        self._install(new)
        return new

    def rollback(
        self,
        version: int,
        who: str,
        reason: str,
        expected_version: int | None = None,
        actor: str | None = None,
    ) -> PolicyVersion:
        new = rollback(
            self._engine, version, who, reason, self._default(),
            expected_version=expected_version, actor=actor,
        )  # fmt: skip
        self._install(new)
        return self.current()

    def restore_default(
        self, who: str, reason: str, expected_version: int | None = None, actor: str | None = None
    ) -> PolicyVersion:
        new = restore_default(
            self._engine, who, reason, self._default(),
            expected_version=expected_version, actor=actor,
        )  # fmt: skip
        self._install(new)
        return self.current()

    def start(self) -> None:
        try:
            self.refresh()
        except Exception as error:  # the service starts on the default; /readyz reports the DB
            log.error("could not load the qualification policy: %s", error)
        self.refresher.start()

    def stop(self) -> None:
        self.refresher.stop()
