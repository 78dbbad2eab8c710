"""Every command that reads lead data (`validate`, `train`, `score`) takes the same data options,
declared once in `features.data.cli`, and they reach the `DataConfig` the command reads with."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from features.data.config import DataConfig
from features.policy.rules import Policy
from leadscore.cli import app

runner = CliRunner()

DATA_OPTIONS = {
    "--leads", "--touchpoints", "--outcomes", "--id", "--created-at", "--label", "--positive",
    "--exclude", "--type", "--timezone", "--dayfirst", "--datetime-format", "--decimal",
    "--thousands", "--delimiter", "--encoding", "--do-not-contact", "--demo-request", "--config",
}  # fmt: skip


def test_the_three_commands_declare_every_data_option():
    commands = typer.main.get_command(app).commands
    for name in ("validate", "train", "score"):
        declared = {o for p in commands[name].params for o in (*p.opts, *p.secondary_opts)}
        assert DATA_OPTIONS | {"--no-dayfirst"} <= declared, (name, DATA_OPTIONS - declared)


class Captured(Exception):
    """Raised by the stand-ins below once the command built its data config."""


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Each command stopped right after it built its `DataConfig`, which is recorded."""
    seen: dict[str, DataConfig] = {}

    def grab(config, *args, **kwargs):
        config = getattr(config, "data", config)  # train gets a RunConfig
        seen["config"] = config
        raise Captured

    class FakeScorer:
        metadata = {"timestamped": True, "data_config": {"leads": {"lead_id": "id"}}}
        policy = Policy()  # `leadscore score` names the policy it decides with

    import features.data.cli
    import training.cli
    import training.score
    import training.train

    monkeypatch.setattr(features.data.cli, "load_lead_data", grab)
    monkeypatch.setattr(training.train, "train", grab)  # it reads the files in its MLflow run
    monkeypatch.setattr(training.cli, "_load_scorer", lambda uri: FakeScorer())
    monkeypatch.setattr(training.score, "load_for_scoring", grab)
    monkeypatch.chdir(tmp_path)
    for name in ("leads.csv", "tp.csv"):
        (tmp_path / name).write_text("id\nL1\n")
    (tmp_path / "run.yaml").write_text("timezone: Europe/Berlin\n")
    return seen


BASE = {
    "validate": ["validate", "--leads", "leads.csv"],
    "train": ["train", "--leads", "leads.csv"],
    "score": ["score", "--model", "models:/m@champion", "--out", "s.csv", "--leads", "leads.csv"],
}

# (arguments, what the data config holds afterwards)
OPTIONS = [
    (["--leads", "leads.csv"], lambda c: c.leads.path == Path("leads.csv")),
    (["--touchpoints", "tp.csv"], lambda c: c.touchpoints.path == Path("tp.csv")),
    (["--id", "Prospect ID"], lambda c: c.leads.lead_id == "Prospect ID"),
    (["--created-at", "Created"], lambda c: c.leads.created_at == "Created"),
    (["--exclude", "Tags", "--exclude", "Notes"], lambda c: {"Tags", "Notes"} <= set(c.exclude)),
    (["--type", "Zip Code=categorical"], lambda c: c.types == {"Zip Code": "categorical"}),
    (["--timezone", "Europe/Paris"], lambda c: c.timezone == "Europe/Paris"),
    (["--dayfirst"], lambda c: c.dayfirst is True),
    (["--no-dayfirst"], lambda c: c.dayfirst is False),
    (["--datetime-format", "%d.%m.%Y"], lambda c: c.datetime_format == "%d.%m.%Y"),
    (["--decimal", ","], lambda c: c.decimal == ","),
    (["--thousands", " "], lambda c: c.thousands == " "),
    (["--delimiter", ";"], lambda c: c.leads.delimiter == ";"),
    (["--encoding", "cp1252"], lambda c: c.leads.encoding == "cp1252"),
    (["--do-not-contact", "Liste rouge"], lambda c: c.do_not_contact_columns == ["Liste rouge"]),
    (["--demo-request", "Démo"], lambda c: c.demo_request_columns == ["Démo"]),
    (["--config", "run.yaml"], lambda c: c.timezone == "Europe/Berlin"),
]
# what the training-only options do (score ignores outcomes and a label column)
TRAINING_OPTIONS = {
    "--outcomes": (["--outcomes", "o.csv"], lambda c: c.outcomes.path == Path("o.csv")),
    "--label": (["--label", "Converted"], lambda c: c.label == "Converted"),
    "--positive": (["--label", "Converted", "--positive", "Oui"], lambda c: c.positive == "Oui"),
}
SCORING = {
    "--outcomes": (["--outcomes", "o.csv"], lambda c: c.outcomes is None),
    "--label": (["--label", "Converted"], lambda c: c.label is None and "Converted" in c.exclude),
    "--positive": (["--positive", "Oui"], lambda c: c.positive is None),
}


def cases():
    for command in ("validate", "train", "score"):
        extra = SCORING if command == "score" else TRAINING_OPTIONS
        for arguments, check in OPTIONS + list(extra.values()):
            yield pytest.param(command, arguments, check, id=f"{command} {' '.join(arguments)}")


@pytest.mark.parametrize(("command", "arguments", "check"), list(cases()))
def test_each_command_takes_each_data_option(captured, command, arguments, check):
    result = runner.invoke(app, BASE[command] + arguments)
    assert isinstance(result.exception, Captured), result.output
    assert check(captured["config"]), captured["config"]


def test_score_says_which_options_it_does_not_use(captured):
    result = runner.invoke(app, BASE["score"] + ["--outcomes", "o.csv", "--positive", "Oui"])
    assert isinstance(result.exception, Captured)
    assert "note: --outcomes and --positive not used when scoring" in result.output


def unboxed(output: str) -> str:
    """A usage error's text without the frame and line breaks rich puts around it."""
    return " ".join(output.replace("│", " ").split())


def test_a_type_option_without_a_known_type_is_a_usage_error(captured):
    result = runner.invoke(app, BASE["validate"] + ["--type", "Zip Code=text"])
    assert result.exit_code == 2
    assert (
        "Invalid value for --type: 'Zip Code=text': write COLUMN=TYPE with TYPE one of "
        "categorical, numeric, boolean, datetime, e.g. --type 'Postal Code=categorical'"
    ) in unboxed(result.output)


def test_an_unknown_decimal_mark_is_a_usage_error(captured):
    result = runner.invoke(app, BASE["train"] + ["--decimal", ";"])
    assert result.exit_code == 2
    assert "Invalid value for '--decimal': Value error, ';' is not one of '.', ','" in unboxed(
        result.output
    )


def test_train_with_a_config_reads_leads_given_as_an_option_from_the_working_directory(
    captured, tmp_path
):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "run.yaml").write_text("label: won\ntraining:\n  search: tiny\n")
    result = runner.invoke(app, ["train", "--config", "conf/run.yaml", "--leads", "leads.csv"])
    assert isinstance(result.exception, Captured), result.output
    assert captured["config"].leads.path.resolve() == tmp_path / "leads.csv"  # not conf/leads.csv


def test_resolve_config_resolves_option_paths_from_the_working_directory(tmp_path, monkeypatch):
    from training.train import resolve_config

    (tmp_path / "conf").mkdir()
    (tmp_path / "work").mkdir()
    config = tmp_path / "conf" / "run.yaml"
    config.write_text("touchpoints: data/tp.csv\ntraining:\n  search: tiny\n")
    monkeypatch.chdir(tmp_path / "work")
    run = resolve_config(config, leads=Path("x.csv"), outcomes="o.csv")
    assert run.data.leads.path.resolve() == tmp_path / "work" / "x.csv"
    assert run.data.outcomes.path.resolve() == tmp_path / "work" / "o.csv"
    assert run.data.touchpoints.path == tmp_path / "conf" / "data" / "tp.csv"  # from the file
    assert run.training.search == "tiny"
