"""Credentials never shown: one helper masks passwords in URLs and in messages quoting them."""

from __future__ import annotations

import pytest

from serving.redact import redact_text, redact_url


@pytest.mark.parametrize(
    "url,shown",
    [
        ("http://leadscore:s3cret@mlflow:5000", "http://leadscore:***@mlflow:5000"),
        (
            "postgresql+psycopg://app:p%40ss@db.internal:5432/leadscore?sslmode=require",
            "postgresql+psycopg://app:***@db.internal:5432/leadscore?sslmode=require",
        ),
        (
            "postgresql://db/leadscore?user=app&password=hunter2&sslkey=/k#top",
            "postgresql://db/leadscore?user=app&password=***&sslkey=***#top",
        ),
        ("https://mlflow.example.com/api?token=abc", "https://mlflow.example.com/api?token=***"),
        # nothing secret: unchanged
        ("postgresql+psycopg://postgres@127.0.0.1:5432/test", None),
        ("sqlite:////srv/leadscore/mlflow.db", None),
        ("models:/lead-scoring@champion", None),
        ("models://profile@databricks/lead-scoring/3", None),
        ("not a url", None),
    ],
)
def test_passwords_and_secret_parameters_are_masked(url, shown):
    assert redact_url(url) == (url if shown is None else shown)


def test_every_url_inside_a_message_is_masked():
    message = (
        "API request to http://ops:s3cret@10.0.0.5:5000/api/2.0/mlflow/registered-models/alias"
        "?name=lead-scoring&alias=champion failed with exception HTTPConnectionPool("
        "host='10.0.0.5', port=5000): Max retries exceeded"
    )
    assert redact_text(message) == message.replace("ops:s3cret@", "ops:***@")
    assert redact_text("cannot reach 'https://u:s3cret@h/x' or sqlite:///a.db") == (
        "cannot reach 'https://u:***@h/x' or sqlite:///a.db"
    )
