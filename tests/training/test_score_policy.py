"""`leadscore score --database-url`: the policy in force in the service database, and the
messages for a database it cannot read."""

import pytest

from features.policy.rules import Policy
from serving.db import make_engine, upgrade_database
from serving.policy.store import save_policy
from training.score import ScoreError, policy_in_force

OWN = Policy(sales_threshold=50, nurture_threshold=20)


class Scorer:
    policy = OWN
    metadata = {"name": "lead-scoring", "version": "3"}


def test_without_a_database_the_model_default_decides():
    applied = policy_in_force(Scorer())
    assert applied.policy is OWN and applied.label == "model default v3"


def test_the_newest_saved_version_decides_and_none_saved_means_the_model_default(tmp_path):
    url = f"sqlite:///{tmp_path / 'leadscore.db'}"
    upgrade_database(url)
    assert policy_in_force(Scorer(), url).label == "model default v3"
    engine = make_engine(url)
    saved = Policy(sales_threshold=30, nurture_threshold=10)
    save_policy(engine, Policy(sales_threshold=40), "ops", "first", OWN)
    save_policy(engine, saved, "ops", "sales can take more leads", OWN)
    engine.dispose()
    applied = policy_in_force(Scorer(), url)
    assert applied.policy == saved and applied.label == "service policy v2"


def test_a_database_without_the_policy_table_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    with pytest.raises(ScoreError) as error:
        policy_in_force(Scorer(), url)
    assert str(error.value) == (
        f"--database-url {url}: no policy table there; give the URL of the service's database "
        "(its LEADSCORE_DATABASE_URL), which the service sets up when it starts"
    )


def test_an_unreachable_database_is_named_without_its_password():
    url = "postgresql+psycopg://ops:secret@127.0.0.1:9/leadscore"
    with pytest.raises(ScoreError) as error:
        policy_in_force(Scorer(), url)
    message = str(error.value)
    assert message.startswith(
        "--database-url postgresql+psycopg://ops:***@127.0.0.1:9/leadscore: cannot read the "
        "policy in force ("
    )
    assert message.endswith("); check the URL and that the database server is running")
    assert "secret" not in message


def test_a_malformed_url_is_refused():
    with pytest.raises(ScoreError, match=r"^--database-url not a url: not a database URL \("):
        policy_in_force(Scorer(), "not a url")
