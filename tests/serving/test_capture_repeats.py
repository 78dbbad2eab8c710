"""A lead scored again with what the capture already holds is skipped without building its rows
(`CaptureWriter`'s known leads), and the database ends exactly as without the shortcut: after
changes from another worker, in the same batch, out-of-order moments, erasure and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from serving.capture.store import erase_lead, purge_captured
from serving.capture.writer import CaptureWriter, Events, Scored
from serving.db import (
    captured_leads,
    erasures,
    lead_attributes,
    lead_funnel,
    lead_touchpoints,
)

# every arrival after the erasures' real moments, so the writers keep what comes after one
RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)
TABLES = (captured_leads, lead_attributes, lead_touchpoints, lead_funnel)


def day(n: int) -> datetime:
    return datetime(2026, 11, 1, 9, tzinfo=UTC) + timedelta(days=n)


def scored(lead_id: str, as_of: int, city: str = "Paris", touches: int = 3, **attributes):
    lead = {
        "lead_id": lead_id, "created_at": day(0), "as_of": day(as_of),
        "attributes": {"city": city, **attributes},
        "touchpoints": [{"occurred_at": day(i), "channel": "email", "activity": "email_open",
                         "campaign": "nurture", "value": None} for i in range(touches)],
    }  # fmt: skip
    return lambda received: Scored([lead], None, received)


def changed(lead_id: str, name: str, value, at: int):
    lead = {"lead_id": lead_id,
            "attribute_changes": [{"name": name, "value": value, "changed_at": day(at)}]}  # fmt: skip
    return lambda received: Events([lead], received)


# (what happens, the writer (worker) that writes it) in order; a list is one batch
SCRIPT: list = [
    ([scored("L1", 10), scored("L2", 10, city="Oslo")], "a"),
    ([scored("L1", 11)], "a"),  # nothing new
    ([changed("L1", "city", "Rome", 12)], "b"),  # another worker changes it
    ([scored("L1", 13)], "a"),  # Paris again, after Rome: stored as observed
    ([scored("L1", 14)], "a"),
    ([changed("L2", "city", "Bergen", 30)], "b"),  # a change dated after the next scores
    ([scored("L2", 20, city="Oslo")], "a"),  # Oslo observed at 20, Bergen stays the latest
    ([scored("L2", 21, city="Oslo")], "a"),  # so Oslo is stored again at 21
    ([scored("L1", 15), changed("L1", "city", "Lyon", 15)], "a"),  # same batch
    ([scored("L1", 16)], "a"),
    ([scored("L3", 10, touches=5)], "a"),
    ("erase", "L3"),
    ([scored("L3", 11, touches=5)], "a"),  # after the erasure: captured again
    ([scored("L3", 12, touches=5)], "a"),
    ("purge", "L1"),  # retention removes what L1's first arrivals brought
    ([scored("L1", 17)], "a"),  # brought again, received now
    ([scored("L1", 18, touches=4)], "b"),  # a new touchpoint through the other worker
    ([scored("L1", 19, touches=4)], "a"),
    ([scored("L1", 20, touches=4, stage="SQL")], "a"),
    ([scored("L1", 21, touches=4, stage="SQL")], "a"),
]


def play(engine, known_leads: int, script: list = SCRIPT) -> tuple[dict, int]:
    """Run the script with the shortcut on (or off: 0); the tables' rows without row ids and
    write tokens (random), and how many repeats were skipped."""
    with engine.begin() as connection:
        for table in (*TABLES, erasures):
            connection.execute(table.delete())
    writers = {name: CaptureWriter(engine, known_leads=known_leads) for name in "ab"}
    received = RECEIVED
    for step, who in script:
        received += timedelta(minutes=1)
        if step == "erase":
            erase_lead(engine, who, erased_by="test")
            continue
        if step == "purge":
            with engine.connect() as connection:
                first = connection.execute(
                    sa.select(sa.func.max(lead_touchpoints.c.received_at)).where(
                        lead_touchpoints.c.lead_id == who
                    )
                ).scalar_one()
            purge_captured(engine, first + timedelta(seconds=1))
            continue
        writer = writers[who]
        items = []
        for make in step:  # each item of a batch arrives a millisecond after the one before
            received += timedelta(milliseconds=1)
            items.append(writer.prepare(make(received)))
        with engine.begin() as connection:
            writer.write(connection, items)
        writer.committed()
    contents = {}
    with engine.connect() as connection:
        for table in TABLES:
            columns = [c for c in table.c if c.name not in ("id", "write_token")]
            contents[table.name] = sorted(
                tuple(str(value) for value in row)
                for row in connection.execute(sa.select(*columns))
            )
    return contents, sum(writer.repeats_skipped for writer in writers.values())


def test_the_shortcut_leaves_the_database_as_the_full_path_does(engine):
    full, none_skipped = play(engine, known_leads=0)
    short, skipped = play(engine, known_leads=1000)
    assert none_skipped == 0
    assert short == full
    # the repeats it could skip: L1 at 11, 14 and 21, L3 at 12 (not L2, whose stored latest
    # value is not the one it is scored with; not L1 after the purge or the other worker's row)
    assert skipped == 4
    # L2's Oslo at day 20 and again at 21 (Bergen, dated 30, stays the latest); its first
    # arrival (day 10) went with the purge, which removes everything received before its cutoff
    oslo = [r[3][:10] for r in full["lead_attributes"] if r[0] == "L2" and r[2] == "Oslo"]
    assert oslo == ["2026-11-21", "2026-11-22"], full["lead_attributes"]


# two workers (a CRM's requests spread over them) scoring the same two leads with nothing new
ALTERNATING: list = [
    ([scored("L1", 10 + i), scored("L2", 10 + i, city="Oslo")], "ab"[i % 2]) for i in range(6)
]


def test_workers_scoring_the_same_leads_do_not_make_each_other_write_them(engine):
    """A write that adds nothing leaves the lead's write token alone, so the other worker's
    remembered lead stays valid: each worker writes the leads in full once, then skips them
    (when every write set a new token, the two made each other's stale and skipped none)."""
    full, _ = play(engine, known_leads=0, script=ALTERNATING)
    short, skipped = play(engine, known_leads=1000, script=ALTERNATING)
    assert short == full
    assert skipped == 2 * 4  # two leads, in the four steps after each worker's first


def described(lead_id: str, city: str):
    """An event describing the lead as the CRM knows it now (an observed value, no moment)."""
    return lambda received: Events([{"lead_id": lead_id, "attributes": {"city": city}}], received)


def twice(first, second):
    """One scored request listing a lead twice: `first`'s lead, then `second`'s."""
    return lambda received: Scored(
        [*first(received).leads, *second(received).leads], None, received
    )


# a repeat the writer cannot skip is written in its place in the batch, not after the rest
IN_ORDER: dict[str, list] = {
    # scored with nothing new, then in the same batch an event: the city is Rome now
    "repeat, then an event": [
        ([scored("L1", 20)], "a"),
        ([scored("L1", 21), described("L1", "Rome")], "a"),
    ],
    # retention removed the lead's rows: the repeat brings them again, then a newer score adds
    # a touchpoint; the rows' first arrival is the repeat's
    "repeat after a purge, then news": [
        ([scored("L1", 10)], "a"),
        ("purge", "L1"),
        ([scored("L1", 11), scored("L1", 12, touches=4)], "a"),
    ],
    # one request lists the lead twice: as stored, then with another city
    "a lead twice in a request": [
        ([scored("L1", 10)], "a"),
        ([twice(scored("L1", 11), scored("L1", 12, city="Rome"))], "a"),
        ([twice(scored("L1", 13, city="Rome"), scored("L1", 14))], "a"),
    ],
}


@pytest.mark.parametrize("case", list(IN_ORDER))
def test_a_repeat_written_after_all_keeps_its_place_in_the_batch(engine, case):
    full, _ = play(engine, known_leads=0, script=IN_ORDER[case])
    short, _ = play(engine, known_leads=1000, script=IN_ORDER[case])
    assert short == full


def test_a_repeat_builds_no_rows_and_a_spill_keeps_them_built(engine):
    writer = CaptureWriter(engine)
    first = scored("L1", 10)(RECEIVED)
    with engine.begin() as connection:
        writer.write(connection, [writer.prepare(first)])
    writer.committed()
    again = writer.prepare(scored("L1", 11)(RECEIVED + timedelta(minutes=1)))
    assert (len(again.repeats), again.leads, again.touchpoints) == (1, [], [])
    record = writer.to_record(again)  # what a spill file or a dead letter holds
    assert (len(record["leads"]), len(record["touchpoints"]), len(record["observed"])) == (1, 3, 1)
    assert writer.lead_id(again) == "L1"
    assert [part.repeats for part in writer.split(again)] == [again.repeats]


def test_known_leads_are_bounded(engine):
    writer = CaptureWriter(engine, known_leads=2)
    for i in range(5):
        with engine.begin() as connection:
            writer.write(connection, [writer.prepare(scored(f"L{i}", 10)(RECEIVED))])
        writer.committed()
    assert list(writer._known) == ["L3", "L4"]


# ---- cases a review found against an earlier version (state = counts and newest row id)


def at(minute: int) -> datetime:
    return RECEIVED + timedelta(minutes=minute)


def one(lead_id: str = "L1", touches: tuple[int, ...] = (), as_of: int | None = None, **attributes):
    lead = {"lead_id": lead_id, "created_at": day(0),
            "as_of": None if as_of is None else day(as_of),
            "attributes": attributes or {"city": "Paris"},
            "touchpoints": [{"occurred_at": day(n), "channel": "email", "activity": "email_open",
                             "campaign": None, "value": None} for n in touches]}  # fmt: skip
    return lambda received: Scored([lead], None, received)


def event(lead_id: str = "L1", touch: int | None = None, change: tuple | None = None):
    lead: dict = {"lead_id": lead_id}
    if touch is not None:
        lead["touchpoints"] = [{"occurred_at": day(touch), "channel": "web",
                                "activity": "email_open", "campaign": None, "value": None}]  # fmt: skip
    if change is not None:
        name, value, changed_at = change
        lead["attribute_changes"] = [{"name": name, "value": value, "changed_at": changed_at}]
    return lambda received: Events([lead], received)


def same_either_way(engine, steps: list) -> int:
    """Play `steps` ((writer, make, minute) or ("purge", minute)) with the shortcut off and on;
    the tables must end the same. Returns the repeats skipped with it on."""
    results = []
    for known in (0, 1000):
        with engine.begin() as connection:
            for table in (*TABLES, erasures):
                connection.execute(table.delete())
        writers = {name: CaptureWriter(engine, known_leads=known) for name in "ab"}
        for step in steps:
            if step[0] == "purge":
                purge_captured(engine, at(step[1]))
                continue
            name, make, minute = step
            with engine.begin() as connection:
                writers[name].write(connection, [writers[name].prepare(make(at(minute)))])
            writers[name].committed()
        contents = {}
        with engine.connect() as connection:
            for table in TABLES:
                columns = [c for c in table.c if c.name not in ("id", "write_token")]
                contents[table.name] = sorted(
                    tuple(str(v) for v in row) for row in connection.execute(sa.select(*columns))
                )
        results.append((contents, sum(w.repeats_skipped for w in writers.values())))
    (full, _), (short, skipped) = results
    assert short == full
    return skipped


def test_a_whole_number_float_is_compared_as_the_database_returns_it(engine):
    # SQLite's JSON column has NUMERIC affinity: 50.0 is stored as 50, and the full path then
    # stores the observed 50.0 again at every score; the shortcut must do the same
    steps = [("a", one(employees=50.0, as_of=n), n) for n in (1, 2, 3)]
    skipped = same_either_way(engine, steps)
    assert skipped == (0 if engine.dialect.name == "sqlite" else 2)


def test_a_purged_touchpoint_and_a_new_one_do_not_hide_the_change(engine):
    steps = [
        ("a", one(touches=(0,)), 1),
        ("a", one(touches=(0, 1)), 5),
        ("purge", 3),  # the lead's row goes
        ("a", one(touches=(0, 1)), 10),  # stored again: the lead's row is newer than a touch
        ("purge", 7),  # the touchpoint of day 1 (received at 5) goes
        ("b", event(touch=2), 11),  # another worker adds one: as many touchpoints as before
        ("a", one(touches=(0, 1)), 12),  # the full path stores day 1 again
    ]
    same_either_way(engine, steps)


def test_a_reused_row_id_does_not_hide_another_workers_change(engine):
    steps = [
        ("a", one(), 10),
        ("b", event(change=("stage", "MQL", day(1))), 5),  # written late
        ("a", one(), 11),
        ("purge", 7),  # removes b's row, the newest: SQLite gives its id to the next row
        ("b", event(change=("city", "Rome", at(60 * 24))), 12),
        ("a", one(), 13),  # Paris again, now not the latest: stored
    ]
    same_either_way(engine, steps)


def test_another_workers_change_waits_for_the_write_that_reads_the_lead(engine):
    """A write holds its leads first (locks): another worker's change to the lead cannot commit
    between what the write reads and what it remembers, so the next repeat is not skipped."""
    import threading

    class Pausing(CaptureWriter):
        during = None

        def _changes(self, connection, changes, observed):
            result = super()._changes(connection, changes, observed)
            if self.during is not None:
                during, self.during = self.during, None
                during()
            return result

    def write(writer, make, minute):
        with engine.begin() as connection:
            writer.write(connection, [writer.prepare(make(at(minute)))])
        writer.committed()

    for known in (0, 1000):
        with engine.begin() as connection:
            for table in (*TABLES, erasures):
                connection.execute(table.delete())
        a, b = Pausing(engine, known_leads=known), CaptureWriter(engine, known_leads=known)
        write(CaptureWriter(engine), one(), 1)  # a third worker stores the lead first
        other = threading.Thread(target=write, args=(b, event(change=("city", "Rome", at(60))), 2))
        waited = []

        def start_other(other=other, waited=waited):
            other.start()
            other.join(1.0)
            waited.append(other.is_alive())

        a.during = start_other
        write(a, one(), 2)
        other.join(30)
        assert waited == [True]  # b waited for a's commit
        write(a, one(), 3)  # Paris again after Rome: stored, shortcut or not
        with engine.connect() as connection:
            cities = connection.execute(
                sa.select(sa.func.count())
                .select_from(lead_attributes)
                .where(lead_attributes.c.name == "city")
            ).scalar_one()
        assert cities == 3, known  # Paris, Rome, Paris


def test_a_lead_not_stored_yet_is_locked_too(engine):
    """Worker c writes an event for a lead nobody stored yet; worker b's first score of it waits
    for c (the lock does not need the lead's row), so b's next repeat sees c's change."""
    import threading

    class Pausing(CaptureWriter):
        during = None

        def _stored_leads(self, connection, ids):
            if self.during is not None:
                during, self.during = self.during, None
                during()
            return super()._stored_leads(connection, ids)

    def write(writer, make, minute):
        with engine.begin() as connection:
            writer.write(connection, [writer.prepare(make(at(minute)))])
        writer.committed()

    b, c = CaptureWriter(engine), Pausing(engine)
    other = threading.Thread(target=write, args=(b, one(), 1))
    waited = []

    def start_other():
        other.start()
        other.join(1.0)
        waited.append(other.is_alive())

    c.during = start_other
    write(c, event(change=("city", "Rome", at(60))), 2)
    other.join(30)
    assert waited == [True]
    write(b, one(), 3)  # Paris differs from Rome (the latest): stored
    assert b.repeats_skipped == 0
    with engine.connect() as connection:
        cities = (
            connection.execute(
                sa.select(sa.cast(lead_attributes.c.value, sa.Text))
                .where(lead_attributes.c.name == "city")
                .order_by(lead_attributes.c.id)
            )
            .scalars()
            .all()
        )
    assert [c.strip('"') for c in cities] == ["Rome", "Paris", "Paris"], cities


def test_a_write_of_many_leads_takes_a_bounded_number_of_locks(engine):
    """PostgreSQL's lock table is shared and small (max_locks_per_transaction x connections):
    a batch of 5,000 leads locks at most LEAD_LOCK_BUCKETS buckets, not 5,000 leads."""
    from serving.capture.writer import LEAD_LOCK_BUCKETS, lock_leads

    with engine.begin() as connection:
        lock_leads(connection, [f"L-{i}" for i in range(5000)])
        if engine.dialect.name != "postgresql":
            return  # SQLite: one writer at a time, no lock of ours
        held = connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            )
        ).scalar_one()
    assert 0 < held <= LEAD_LOCK_BUCKETS


def test_a_score_received_while_an_erasure_commits_is_kept(database_url, engine):
    """The repeats' tokens are read once the leads are held: a score received after an erasure's
    moment, while the erasure is committing, waits for it and is stored, as without the
    shortcut (read before, its token was the one being deleted, and it was skipped)."""
    import threading

    from sqlalchemy import event as sa_event

    from serving.db import make_engine, utcnow

    def lead(received):
        return scored("L1", 5, touches=1)(received)

    kept = {}
    for known in (0, 1000):
        with engine.begin() as connection:
            for table in (*TABLES, erasures):
                connection.execute(table.delete())
        writer = CaptureWriter(engine, known_leads=known)
        with engine.begin() as connection:
            writer.write(connection, [writer.prepare(lead(utcnow() - timedelta(minutes=1)))])
        writer.committed()
        eraser = make_engine(database_url)
        paused, release = threading.Event(), threading.Event()

        @sa_event.listens_for(eraser, "commit")
        def hold(_connection, paused=paused, release=release):  # deleted, audited: not committed
            paused.set()
            release.wait(10)

        erasing = threading.Thread(target=erase_lead, args=(eraser, "L1", "test"))
        erasing.start()
        try:
            assert paused.wait(10)
            prepared = writer.prepare(lead(utcnow()))  # received after the erasure's moment
            assert bool(prepared.repeats) == (known > 0)

            def write(writer=writer, prepared=prepared):
                with engine.begin() as connection:
                    writer.write(connection, [prepared])
                writer.committed()

            writing = threading.Thread(target=write)
            writing.start()
            writing.join(0.5)
        finally:
            release.set()
            erasing.join()
        writing.join()
        eraser.dispose()
        with engine.connect() as connection:
            kept[known] = {
                table.name: connection.execute(
                    sa.select(sa.func.count()).select_from(table).where(table.c.lead_id == "L1")
                ).scalar_one()
                for table in TABLES
            }
    assert kept[1000] == kept[0]
    assert all(kept[0].values()), kept[0]
