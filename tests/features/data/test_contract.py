"""The data contract: canonical names and dtypes, column mapping, type inference, time zones,
flat mode, and the real X Education export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.data.vocabulary import (
    ACTIVITIES,
    CHANNELS,
    HIGH_INTENT,
    lookup_channel,
    normalise_activity,
    normalise_channel,
)
from tests.conftest import missing_service

REPO = Path(__file__).resolve().parents[3]
XEDUCATION = REPO.parent / "shared" / "data" / "xeducation_leads.csv"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_canonical_names():
    assert CHANNELS[-1] == "other" and ACTIVITIES[-1] == "other"
    assert set(HIGH_INTENT) <= set(ACTIVITIES)
    assert len(set(CHANNELS)) == len(CHANNELS) == 11


@pytest.mark.parametrize(
    ("raw", "channel"),
    [
        ("Google Ads", "paid_search"),
        ("google / cpc", "paid_search"),
        ("  ORGANIC SEARCH ", "organic_search"),
        ("LinkedIn Ads", "paid_social"),
        ("Events and Trade Shows", "event"),
        ("Trade Show", "event"),
        ("Webinars", "webinar"),
        ("Newsletter", "email"),
        ("Content Downloads", "content"),
        ("Partner Referral", "referral"),
        ("(direct)", "direct"),
        ("Print Ad", "print"),
        ("paid_social", "paid_social"),
        ("Carrier pigeon", "other"),
        (None, "other"),
    ],
)
def test_normalise_channel(raw, channel):
    assert normalise_channel(raw) == channel


@pytest.mark.parametrize(
    ("raw", "activity"),
    [
        ("Email Opened", "email_open"),
        ("Email Link Clicked", "email_click"),
        ("Page Visited on Website", "visit"),
        ("Viewed Pricing", "pricing_page_view"),
        ("Form Submitted", "form_submit"),
        ("Request a Demo", "demo_request"),
        ("Webinar Attended", "webinar_attend"),
        ("Unsubscribed", "unsubscribe"),
        ("Email Bounced", "email_bounce"),
        ("Chat Started", "other"),
    ],
)
def test_normalise_activity(raw, activity):
    assert normalise_activity(raw) == activity


def test_extra_spellings_from_the_config():
    assert lookup_channel("Carrier Pigeon") is None
    assert normalise_channel("carrier pigeon", {"Carrier Pigeon": "print"}) == "print"


def test_timestamped_tables_are_canonical(tmp_path):
    leads = write(
        tmp_path / "Leads Export.csv",
        "Id,Created Date,Employees,Is Customer,Industry,Signup\n"
        "007,2024-01-01T09:00:00+01:00,120,Yes,Software,2023-12-01\n"
        "008,2024-01-02T10:30:00Z,,no,retail ,2023-11-15\n",
    )
    tp = write(
        tmp_path / "activities.csv",
        "Lead,When,Source,Type,Campaign Name,Seconds\n"
        "007,2024-01-03T08:00:00Z,Google Ads,Pricing Page,Brand Q1,35\n"
        "008,2024-01-04T08:00:00Z,Newsletter,Email Opened,Select,\n",
    )
    out = write(
        tmp_path / "deals.csv",
        "Lead,Closed,Stage,Value\n007,2024-03-01T00:00:00Z,Closed Won,12000\n008,2024-02-01T00:00:00Z,Closed Lost,\n",
    )
    config = DataConfig.model_validate(
        {
            "leads": {"path": leads, "lead_id": "Id", "created_at": "Created Date"},
            "touchpoints": {
                "path": tp,
                "lead_id": "Lead",
                "occurred_at": "When",
                "channel": "Source",
                "activity": "Type",
                "campaign": "Campaign Name",
                "value": "Seconds",
            },
            "outcomes": {
                "path": out,
                "lead_id": "Lead",
                "closed_at": "Closed",
                "won": "Stage",
                "amount": "Value",
            },
        }
    )
    data = load_lead_data(config)
    assert data.report.ok and not data.flat
    leads_frame = data.leads
    assert leads_frame["lead_id"].tolist() == ["007", "008"]  # leading zeros kept
    assert str(leads_frame["created_at"].dtype) == "datetime64[ns, UTC]"
    assert leads_frame["created_at"].tolist() == [
        pd.Timestamp("2024-01-01 08:00", tz="UTC"),
        pd.Timestamp("2024-01-02 10:30", tz="UTC"),
    ]
    assert data.attribute_types == {
        "Employees": "numeric",
        "Is Customer": "boolean",
        "Industry": "categorical",
        "Signup": "datetime",
    }
    assert leads_frame["Employees"].dtype == "float64" and pd.isna(leads_frame["Employees"][1])
    assert leads_frame["Is Customer"].tolist() == [True, False]
    assert leads_frame["Industry"].tolist() == ["Software", "retail "]  # the featurizer normalises
    assert str(leads_frame["Signup"].dtype) == "datetime64[ns, UTC]"
    tp = data.touchpoints
    assert list(tp.columns) == [
        "lead_id",
        "occurred_at",
        "channel",
        "activity",
        "campaign",
        "value",
    ]
    assert tp["lead_id"].tolist() == ["007", "008"]
    assert tp["occurred_at"].tolist() == [
        pd.Timestamp("2024-01-03 08:00", tz="UTC"),
        pd.Timestamp("2024-01-04 08:00", tz="UTC"),
    ]
    assert tp["channel"].tolist() == ["paid_search", "email"]
    assert tp["activity"].tolist() == ["pricing_page_view", "email_open"]
    assert data.touchpoints["campaign"][0] == "Brand Q1" and pd.isna(
        data.touchpoints["campaign"][1]
    )
    assert data.touchpoints["value"][0] == 35.0 and pd.isna(data.touchpoints["value"][1])
    assert data.outcomes["won"].tolist() == [True, False]
    assert data.outcomes["amount"][0] == 12000.0 and pd.isna(data.outcomes["amount"][1])
    assert str(data.outcomes["closed_at"].dtype) == "datetime64[ns, UTC]"


def test_naive_timestamps_are_utc_with_a_warning(tmp_path):
    path = write(tmp_path / "leads.csv", "lead_id,created_at\nA,2024-03-01 09:00\n")
    data = load_lead_data(DataConfig(leads=path))
    assert data.leads["created_at"][0] == pd.Timestamp("2024-03-01 09:00", tz="UTC")
    (warning,) = data.report.warnings
    assert warning.message == "timestamps have no time zone; read as UTC"
    assert "timezone:" in warning.fix


def test_timezone_option_reads_local_times(tmp_path):
    path = write(
        tmp_path / "leads.csv", "lead_id,created_at\nA,2024-03-01 09:00\nB,2024-07-01 09:00\n"
    )
    data = load_lead_data(DataConfig(leads=path, timezone="Europe/Berlin"))
    assert data.leads["created_at"].tolist() == [
        pd.Timestamp("2024-03-01 08:00", tz="UTC"),  # CET
        pd.Timestamp("2024-07-01 07:00", tz="UTC"),  # CEST
    ]
    assert not data.report.warnings


def test_parquet_timestamps_keep_their_zone(tmp_path):
    frame = pd.DataFrame(
        {
            "lead_id": [1, 2],
            "created_at": pd.to_datetime(["2024-01-01 12:00", "2024-01-02 12:00"]).tz_localize(
                "America/New_York"
            ),
            "score": [0.5, 0.7],
        }
    )
    frame.to_parquet(tmp_path / "leads.parquet")
    data = load_lead_data(DataConfig(leads=tmp_path / "leads.parquet"))
    assert data.leads["lead_id"].tolist() == ["1", "2"]
    assert data.leads["created_at"][0] == pd.Timestamp("2024-01-01 17:00", tz="UTC")
    assert data.attribute_types == {"score": "numeric"}


def test_flat_mode_has_a_label_and_no_timestamps(tmp_path):
    path = write(
        tmp_path / "crm.csv",
        "Prospect ID,Converted,Lead Source,TotalVisits,Do Not Email\n"
        "a,1,Google,5,No\nb,0,Select,0,Yes\nc,0,Olark Chat,2,No\nd,,Google,1,No\n",
    )
    config = DataConfig(leads=path).with_overrides(id="Prospect ID", label="Converted")
    data = load_lead_data(config)
    assert data.flat and data.touchpoints is None and data.outcomes is None
    assert list(data.leads.columns) == ["lead_id", "Lead Source", "TotalVisits", "Do Not Email"]
    assert data.label.tolist() == [1, 0, 0] and data.label.dtype == "int64"
    assert (data.label.index == data.leads.index).all()
    assert pd.isna(data.leads["Lead Source"][1])  # 'Select' is a placeholder
    assert data.attribute_types == {
        "Lead Source": "categorical",
        "TotalVisits": "numeric",
        "Do Not Email": "boolean",
    }
    messages = [w.message for w in data.report.warnings]
    assert "rows without a label were dropped" in messages
    assert "placeholder values read as missing" in messages


def test_codes_with_leading_zeros_stay_categorical(tmp_path):
    path = write(tmp_path / "crm.csv", "id,won,zip,visits\na,1,01234,3\nb,0,99999,10\n")
    data = load_lead_data(DataConfig(leads=path, label="won").with_overrides(id="id"))
    assert data.attribute_types == {"zip": "categorical", "visits": "numeric"}
    assert data.leads["zip"].tolist() == ["01234", "99999"]


def test_type_overrides_and_exclusions(tmp_path):
    path = write(tmp_path / "crm.csv", "id,won,zip,rank,secret\na,yes,01234,1,x\nb,no,99999,2,y\n")
    config = DataConfig(
        leads=path,
        label="won",
        exclude=["secret"],
        types={"zip": "categorical", "rank": "categorical"},
    ).with_overrides(id="id")
    data = load_lead_data(config)
    assert data.attribute_types == {"zip": "categorical", "rank": "categorical"}
    assert data.leads["zip"].tolist() == ["01234", "99999"]
    assert "secret" not in data.leads


def test_type_override_that_does_not_fit_reports_the_values(tmp_path):
    path = write(tmp_path / "crm.csv", "id,won,size\na,1,10\nb,0,big\n")
    data = load_lead_data(
        DataConfig(leads=path, label="won", types={"size": "numeric"}).with_overrides(id="id")
    )
    (warning,) = [w for w in data.report.warnings if w.column == "size"]
    assert warning.message == "values that are not numeric read as missing"
    assert warning.examples == ("'big'",)


def test_yaml_config_paths_are_relative_to_the_file_and_options_win(tmp_path):
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "crm.csv", "Prospect ID,Converted,Other Id\np1,1,a\np2,0,b\n")
    config_path = write(
        tmp_path / "mapping.yaml",
        "leads:\n  path: data/crm.csv\n  lead_id: Other Id\nlabel: Converted\npositive: 1\n",
    )
    config = DataConfig.from_yaml(config_path, id="Prospect ID")
    assert config.leads.path == tmp_path / "data" / "crm.csv"
    assert config.leads.lead_id == "Prospect ID" and config.positive == "1"
    data = load_lead_data(config)
    assert data.leads["lead_id"].tolist() == ["p1", "p2"]
    assert data.label.tolist() == [1, 0]


def test_from_directory_prefers_parquet(tmp_path):
    for name in ("leads", "outcomes"):
        write(tmp_path / f"{name}.csv", "x\n")
    pd.DataFrame({"lead_id": ["a"]}).to_parquet(tmp_path / "leads.parquet")
    config = DataConfig.from_directory(tmp_path)
    assert config.leads.path.name == "leads.parquet"
    assert config.outcomes.path.name == "outcomes.csv"
    assert config.touchpoints is None


def test_several_outcomes_per_lead_keep_the_first_win(tmp_path):
    leads = write(tmp_path / "l.csv", "lead_id,created_at\nA,2024-01-01\nB,2024-01-01\n")
    out = write(
        tmp_path / "o.csv",
        "lead_id,closed_at,won\nA,2024-02-01,false\nA,2024-03-01,true\nA,2024-04-01,true\n"
        "B,2024-02-01,false\nB,2024-05-01,false\n",
    )
    data = load_lead_data(DataConfig(leads=leads, outcomes=out))
    got = data.outcomes.set_index("lead_id")
    assert got.loc["A", "won"] and got.loc["A", "closed_at"] == pd.Timestamp("2024-03-01", tz="UTC")
    assert not got.loc["B", "won"] and got.loc["B", "closed_at"] == pd.Timestamp(
        "2024-05-01", tz="UTC"
    )
    (warning,) = [w for w in data.report.warnings if "several outcomes" in w.message]
    assert warning.rows == 3


def test_identifier_like_columns_are_flagged(tmp_path):
    rows = "".join(f"L{i},{i % 2},{1000 + i},{'ab'[i % 2]}\n" for i in range(60))
    path = write(tmp_path / "crm.csv", "id,won,Lead Number,group\n" + rows)
    data = load_lead_data(DataConfig(leads=path, label="won").with_overrides(id="id"))
    flagged = [w for w in data.report.warnings if "identifier" in w.message]
    assert [w.column for w in flagged] == ["Lead Number"]
    # not silently a feature: dropped, and the message says how to keep it
    assert "Lead Number" not in data.leads.columns and "Lead Number" not in data.attribute_types
    assert "not used as a feature" in flagged[0].message
    assert "types: {Lead Number: numeric}" in flagged[0].fix
    assert list(data.attribute_types) == ["group"]
    kept = load_lead_data(
        DataConfig(leads=path, label="won", types={"Lead Number": "numeric"}).with_overrides(
            id="id"
        )
    )
    assert kept.attribute_types["Lead Number"] == "numeric"
    assert kept.leads["Lead Number"].tolist()[:2] == [1000.0, 1001.0]
    assert not [w for w in kept.report.warnings if "identifier" in w.message]


def test_xeducation_export_loads_in_flat_mode():
    if not XEDUCATION.exists():
        missing_service(
            f"real-data check: {XEDUCATION} is not present (put ../shared/data beside the repo)"
        )
    config = DataConfig.from_yaml(REPO / "examples" / "xeducation.yaml")
    data = load_lead_data(config)
    assert data.flat and len(data.leads) == 9237 and data.leads["lead_id"].is_unique
    assert data.label.sum() == 3559  # 38.5% converted
    assert data.attribute_types["TotalVisits"] == "numeric"
    assert data.attribute_types["Do Not Email"] == "boolean"
    assert data.attribute_types["Lead Source"] == "categorical"
    for leaky in ("Tags", "Lead Quality", "Lead Number"):
        assert leaky not in data.leads
    placeholders = {w.column: w.rows for w in data.report.warnings if "placeholder" in w.message}
    assert placeholders["City"] == 2248 and placeholders["Specialization"] == 1942
    assert data.leads["City"].isna().sum() >= 2248


def test_a_config_saved_in_full_still_treats_default_columns_as_optional(tmp_path):
    leads = write(tmp_path / "l.csv", "lead_id,created_at\nA,2024-01-01T00:00:00Z\n")
    tp = write(
        tmp_path / "t.csv",
        "lead_id,occurred_at,channel,activity\nA,2024-01-02T00:00:00Z,SEO,visit\n",
    )
    saved = DataConfig(leads=leads, touchpoints=tp).model_dump(mode="json")  # as a model stores it
    data = load_lead_data(DataConfig.model_validate(saved))
    assert data.touchpoints["channel"].tolist() == ["organic_search"]
    assert data.touchpoints["campaign"].isna().all() and data.touchpoints["value"].isna().all()
