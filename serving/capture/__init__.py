"""Capture: what the service was told about each lead, and when it was told.

Every lead scored by `POST /v1/score` and every event of `POST /v1/events` is kept (attributes,
creation moment, touchpoints), each fact once, with the moment it happened and the moment the
service first received it, so the service can report on channels and retrain from its own
traffic without letting late-arriving data leak into the past (`training.database`).

- `rows.py`     the rows of the capture tables built from validated requests (dedup keys)
- `writer.py`   CaptureWriter: the queue consumer thread that inserts them, ignoring duplicates
- `store.py`    Capture (the service: writer + retention purge), erasure, a lead's history,
                outcomes since a moment
- `schemas.py`  the bodies of POST /v1/events and GET/DELETE /v1/leads/{lead_id}

The tables are defined in `serving.db` (migration `0004_capture`).
"""
