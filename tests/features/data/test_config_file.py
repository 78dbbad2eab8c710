"""One reader of config files (`load_config`) for validate, train and score: where paths start,
which sections it splits off, and the messages a user gets for a wrong file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.config import FeatureConfig
from features.data.config import DataConfig, load_config
from features.data.validation import DataValidationError
from features.policy.rules import Policy
from leadscore.cli import app


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A working directory beside (not inside) the folder of the config file."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def config_error(path, **kwargs):
    with pytest.raises(DataValidationError) as caught:
        load_config(path, **kwargs)
    (error,) = caught.value.report.errors
    return error


def test_paths_in_the_file_start_at_the_file_and_paths_given_as_options_at_the_working_directory(
    tmp_path, workdir
):
    config = write(
        tmp_path / "conf" / "run.yaml",
        "leads:\n  path: data/crm.csv\n  lead_id: Prospect ID\ntouchpoints: ../exports/tp.csv\n",
    )
    from_file = load_config(config).data
    assert from_file.leads.path == tmp_path / "conf" / "data" / "crm.csv"
    assert from_file.touchpoints.path == tmp_path / "exports" / "tp.csv"

    given = load_config(config, leads="x.csv", outcomes=Path("sub/outcomes.csv")).data
    assert given.leads.path == Path("x.csv")  # not conf/x.csv
    assert given.leads.path.resolve() == workdir / "x.csv"
    assert given.outcomes.path.resolve() == workdir / "sub" / "outcomes.csv"
    assert given.leads.lead_id == "Prospect ID"  # the file's mapping of the table is kept
    assert given.touchpoints.path == tmp_path / "exports" / "tp.csv"


def test_from_yaml_is_the_same_reader(tmp_path, workdir):
    config = write(tmp_path / "conf" / "run.yaml", "leads: crm.csv\nlabel: Converted\n")
    assert DataConfig.from_yaml(config, leads="x.csv", id="id") == (
        load_config(config, leads="x.csv", id="id").data
    )
    assert DataConfig.from_yaml(config, leads="x.csv").leads.path.resolve() == workdir / "x.csv"


def test_other_sections_are_split_off_and_validated_when_a_model_is_given(tmp_path):
    config = write(
        tmp_path / "run.yaml",
        "leads: crm.csv\nlabel: won\nfeatures:\n  horizon_days: 30\npolicy:\n  sales_threshold: 70\n"
        "training:\n  search: tiny\n",
    )
    loaded = load_config(config, sections={"features": FeatureConfig, "policy": Policy})
    assert loaded.sections["features"].horizon_days == 30
    assert loaded.sections["policy"].sales_threshold == 70
    assert loaded.sections["training"] == {"search": "tiny"}  # raw: nobody validated it here
    assert loaded.data.label == "won" and loaded.path == config


def test_a_file_without_leads_takes_them_from_the_options(tmp_path):
    config = write(tmp_path / "run.yaml", "label: won\ntimezone: Europe/Paris\n")
    data = load_config(config, leads="x.csv").data
    assert data.leads.path == Path("x.csv") and data.timezone == "Europe/Paris"


def test_no_leads_anywhere_says_how_to_give_them(tmp_path):
    config = write(tmp_path / "run.yaml", "label: won\n")
    error = config_error(config)
    assert error.message == "no leads file given" and error.file == str(config)
    assert error.fix == f"pass --leads PATH, or set 'leads: PATH' in {config}"


def test_a_missing_config_file_names_it_and_the_option(tmp_path):
    error = config_error(tmp_path / "nope.yaml")
    assert error.message == f"config file {tmp_path / 'nope.yaml'} not found"
    assert error.fix.startswith("check the --config path (relative paths start at")


def test_a_misspelt_key_names_the_file_the_field_and_the_close_match(tmp_path):
    config = write(tmp_path / "run.yaml", "leads: crm.csv\nlabell: won\n")
    error = config_error(config)
    assert (error.file, error.column) == (str(config), "labell")
    assert error.message == "config labell: Extra inputs are not permitted"
    assert error.fix.startswith("did you mean 'label'? remove 'labell' or check its spelling")


def test_a_bad_section_value_names_the_section_field(tmp_path):
    config = write(tmp_path / "run.yaml", "leads: crm.csv\nfeatures:\n  horizon_days: -3\n")
    error = config_error(config, sections={"features": FeatureConfig})
    assert (error.file, error.column) == (str(config), "features.horizon_days")
    assert error.message.startswith("config features.horizon_days: Input should be greater")
    assert error.fix == "see the README for the 'features:' settings"


def test_a_config_file_that_is_not_utf8_says_so(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_bytes("leads: données.csv\n".encode("cp1252"))
    error = config_error(config)
    assert error.message.startswith("config file is not UTF-8 text")
    assert error.fix == "save the config file as UTF-8"


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        ("decimal: ';'\n", "decimal", "config decimal: Input should be '.' or ','"),
        ("thousands: x\n", "thousands", "config thousands: thousands separator 'x' is not one"),
        ("decimal: ','\nthousands: ','\n", None, "config: decimal and thousands are both ','"),
    ],
)
def test_number_format_fields_are_checked(tmp_path, text, field, message):
    config = write(tmp_path / "run.yaml", "leads: crm.csv\n" + text)
    error = config_error(config)
    assert error.message.startswith(message) and error.column == field


def test_validate_reads_a_training_config_file(tmp_path, workdir):
    write(workdir / "crm.csv", "id,won,source\na,1,web\nb,0,ads\nc,1,web\n")
    config = write(
        tmp_path / "conf" / "run.yaml",
        "label: won\ntraining:\n  search: tiny\npolicy:\n  sales_threshold: 60\n",
    )
    result = CliRunner().invoke(
        app, ["validate", "--config", str(config), "--leads", "crm.csv", "--id", "id"]
    )
    assert result.exit_code == 0, result.output
    assert "crm.csv: 3 rows read, 3 kept" in result.output


def test_train_with_a_config_error_prints_the_file_the_field_and_the_fix(tmp_path):
    config = write(tmp_path / "run.yaml", "leads: crm.csv\ntraining:\n  serach: tiny\n")
    result = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 2
    assert (
        f"ERROR {config}, column 'training.serach': config training.serach: Extra inputs are "
        "not permitted" in result.output
    )
    assert "fix: remove 'serach' or check its spelling" in result.output
    assert "Traceback" not in result.output
