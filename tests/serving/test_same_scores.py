"""The API, `leadscore score` and the MLflow pyfunc give the same probabilities for the same leads."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
from typer.testing import CliRunner

from features.data.vocabulary import lookup_activity, lookup_channel
from leadscore.cli import app as cli
from tests.serving.conftest import auth, demo_records

AS_OF = "2025-06-01T00:00:00Z"


def _unknown(touch: dict) -> bool:
    return lookup_channel(touch["channel"]) is None or lookup_activity(touch["activity"]) is None


N = 40


def test_api_cli_and_pyfunc_agree(scoring_app, trained_model, tmp_path, monkeypatch):
    import mlflow

    # As exported, half of them with spellings the vocabulary does not know ('Chat Started'): the
    # API reads them as files do ('other', with a warning), so the probabilities agree.
    exported = demo_records(trained_model, 600, as_of=AS_OF, as_exported=True)
    unknown = [r for r in exported if any(_unknown(t) for t in r["touchpoints"])]
    assert unknown, "the demo data has spellings the vocabulary does not know"
    records = unknown[: N // 2] + [r for r in exported if r not in unknown][: N // 2]
    ids = [r["lead_id"] for r in records]
    uri = f"models:/{trained_model.name}/{trained_model.versions[0]}"

    answer = scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    assert answer["rejected"] == 0
    assert {w["value"] for w in answer["warnings"]} <= {"Chat Started", "Olark Chat Conversation"}
    assert all(w["read_as"] == "other" for w in answer["warnings"]) and answer["warnings"]
    api = answer["results"]
    api_p = {r["lead_id"]: r["probability"] for r in api}

    # `leadscore score` on the same leads, read from files as exported.
    leads = pq.read_table(trained_model.demo_dir / "leads.parquet").to_pandas()
    touches = pq.read_table(trained_model.demo_dir / "touchpoints.parquet").to_pandas()
    leads[leads["lead_id"].isin(ids)].to_parquet(tmp_path / "leads.parquet", index=False)
    touches[touches["lead_id"].isin(ids)].to_parquet(tmp_path / "touchpoints.parquet", index=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(
        cli,
        [
            "score",
            "--model",
            uri,
            "--leads",
            str(tmp_path / "leads.parquet"),
            "--touchpoints",
            str(tmp_path / "touchpoints.parquet"),
            "--out",
            str(out),
            "--as-of",
            AS_OF,
        ],
    )
    assert result.exit_code == 0, result.output
    cli_p = dict(
        zip(*pd.read_parquet(out)[["lead_id", "probability"]].to_dict("list").values(), strict=True)
    )

    # The MLflow pyfunc, with touchpoints as a JSON string column.
    mlflow.set_tracking_uri(trained_model.tracking_uri)
    frame = pd.DataFrame(
        [
            {
                "lead_id": r["lead_id"],
                **r["attributes"],
                "created_at": r["created_at"],
                "as_of": r["as_of"],
                "touchpoints": json.dumps(r["touchpoints"]),
            }
            for r in records
        ]
    )
    predicted = mlflow.pyfunc.load_model(uri).predict(frame)
    pyfunc_p = dict(zip(predicted["lead_id"], predicted["probability"], strict=True))

    assert set(api_p) == set(cli_p) == set(pyfunc_p) == set(ids)
    spread = max(
        max(api_p[i], cli_p[i], pyfunc_p[i]) - min(api_p[i], cli_p[i], pyfunc_p[i]) for i in ids
    )
    assert spread < 1e-12, f"probabilities differ by up to {spread}"
    assert len(set(api_p.values())) >= 2  # the leads do get different scores (isotonic steps)
