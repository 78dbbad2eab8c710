"""Credentials out of URLs before they are shown: readiness answers, logs, error messages.

`redact_url` masks the password of one URL (`postgresql+psycopg://user:***@db/leadscore`) and
the values of query parameters named like secrets (`?password=***`, `?token=***`); `redact_text`
does the same for every URL inside a message (an MLflow error quotes the URL it called). User
names, hosts and paths stay: they say which server was meant.
"""

from __future__ import annotations

import re

MASK = "***"
# Query parameters whose value is masked: any name containing one of these words.
SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "key", "signature", "credential")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """`url` with its password and secret-named query values replaced by `MASK`; text that is
    not a URL comes back unchanged."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    authority, tail = (rest, "") if end < 0 else (rest[:end], rest[end:])
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    return f"{scheme}://{authority}{_redact_query(tail)}"


def _redact_query(tail: str) -> str:
    path, question, rest = tail.partition("?")
    if not question:
        return tail
    query, hash_mark, fragment = rest.partition("#")
    parts = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        secret = equals and any(word in name.lower() for word in SECRET_WORDS)
        parts.append(f"{name}={MASK}" if secret else item)
    return f"{path}?{'&'.join(parts)}{hash_mark}{fragment}"


def redact_text(text: str) -> str:
    """`text` with every URL in it passed through `redact_url`."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def describe_database_error(error: BaseException) -> str:
    """What a database error says, safe to log, store or answer: its type and the driver's first
    line, credentials masked, never the statement nor the row's parameters (engines are made
    with `hide_parameters=True`; the driver's DETAIL line, which quotes values, is left out)."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("(") and ") " in first:  # SQLAlchemy's "(module.Class) message" prefix
        first = first.split(") ", 1)[1]
    first = first.split(" [SQL:", 1)[0]
    return redact_text(f"{type(original).__name__}: {first}"[:300])
