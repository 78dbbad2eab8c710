"""`leadscore policy ...` commands, mounted by `leadscore.cli`.

They talk to the service's database directly (LEADSCORE_DATABASE_URL, or --database-url), like
`leadscore keys`: whoever can run them can reach the database, and every change is audited as
`cli:<user>`. Running services pick a change up within about a second. `simulate` reads the
champion's holdout from MLflow (MLFLOW_TRACKING_URI, LEADSCORE_MODEL_URI), or a holdout file
(`--holdout scores.csv --weeks N`), or the recent score log (`--recent-days N`).
"""

from __future__ import annotations

import getpass
import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

policy_app = typer.Typer(
    help="Qualification policy: show, change, simulate thresholds, history, roll back.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

DatabaseOption = typer.Option(
    None,
    "--database-url",
    help="SQLAlchemy URL (default: LEADSCORE_DATABASE_URL or sqlite:///leadscore.db).",
)
JsonOption = typer.Option(
    False, "--json", help="Print JSON (same shape as the API) instead of tables."
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _settings():
    from pydantic import ValidationError

    from serving.config import Settings

    try:
        return Settings()
    except ValidationError as error:
        raise _fail(f"invalid LEADSCORE_* settings:\n{error}", 2) from None


def _engine(database_url: str | None):
    from serving.db import make_engine, upgrade_database

    url = database_url or _settings().database_url
    try:
        upgrade_database(url)
    except Exception as error:
        raise _fail(
            f"cannot open the database {url!r}: {type(error).__name__}: {error}\n"
            "Check LEADSCORE_DATABASE_URL (or --database-url) and that the database server is running.",
            2,
        ) from None
    return make_engine(url)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


class _Model:
    """The champion, loaded from MLflow only when a command needs it (it takes a few seconds)."""

    def __init__(self) -> None:
        self._loaded = None
        self._error: str | None = None

    def get(self):
        if self._loaded is None and self._error is None:
            from serving.model_store import ModelLoadError, load_from_mlflow

            settings = _settings()
            with err_console.status(f"Loading {settings.model_uri} from MLflow..."):
                try:
                    self._loaded = load_from_mlflow(
                        settings.model_uri, settings.mlflow_tracking_uri
                    )
                except ModelLoadError as error:
                    self._error = str(error)
        return self._loaded

    def default_policy(self):
        from features.policy.rules import Policy
        from serving.policy.simulation import model_default_policy

        loaded = self.get()
        if loaded is None:
            err_console.print(
                "[yellow]warning:[/yellow] no model to read its default policy from; the built-in "
                f"default stands for version 0 ({self._error})"
            )
            return Policy()
        return model_default_policy(loaded)


def _current(engine, model: _Model):
    """The version in force; the model is loaded only when that is its default policy."""
    from serving.policy.store import (
        MODEL_DEFAULT,
        PolicyVersion,
        in_force,
        latest_version_number,
        load_version,
    )

    newest = latest_version_number(engine)
    saved = load_version(engine, newest) if newest != MODEL_DEFAULT else None
    if saved is None:
        return PolicyVersion(MODEL_DEFAULT, model.default_policy())
    return in_force(saved, model.default_policy()) if saved.follows_model else saved


def _print_version(data: dict[str, Any]) -> None:
    policy = data["policy"]
    title = f"Policy version {data['version']}" + (
        " (the model's default: never changed)"
        if data["version"] == 0
        else " (the model's default, restored)"
        if data.get("action") == "restore_default"
        else ""
    )
    table = Table(title=title, show_header=False)
    table.add_row("sales threshold", f"score >= {policy['sales_threshold']:g} -> sales")
    table.add_row(
        "nurture threshold",
        f"score >= {policy['nurture_threshold']:g} -> nurture, below -> disqualify",
    )
    table.add_row("grades", grade_words(policy["grades"]))
    rules = (
        "; ".join(f"{r['fact']} -> {r['decision']} ({r['reason']})" for r in policy["rules"])
        or "none"
    )
    table.add_row("hard rules", rules)
    if policy.get("weekly_capacity"):
        table.add_row("sales capacity", f"{policy['weekly_capacity']:g} leads a week")
    table.add_row("currency", policy.get("currency", "EUR"))
    if data["version"]:
        who = data["created_by"] + (f" ({data['actor']})" if data.get("actor") else "")
        table.add_row("set by", f"{who} at {data['created_at']}")
        table.add_row("why", data["reason"])
        if data["changes"]:
            table.add_row("changed", "; ".join(data["changes"]))
    console.print(table)


def grade_words(grades: dict[str, Any]) -> str:
    """'by share of leads: A top 25% (score >= 31), ...' or 'by score: A >= 60, ...'."""
    if grades.get("by") == "share":
        shares = grades.get("shares") or {"A": 0.25, "B": 0.25, "C": 0.25}
        words = (
            f"by share of leads: A top {100 * shares['A']:g}% (score >= {grades['A']:g}), "
            f"B next {100 * shares['B']:g}% (>= {grades['B']:g}), "
            f"C next {100 * shares['C']:g}% (>= {grades['C']:g}), D the rest"
        )
        return words + (f"; computed on {grades['basis']}" if grades.get("basis") else "")
    return f"by score: A >= {grades['A']:g}, B >= {grades['B']:g}, C >= {grades['C']:g}, D below"


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print_version(data)


@policy_app.command("show")
def show(database_url: str | None = DatabaseOption, as_json: bool = JsonOption) -> None:
    """The policy in force."""
    engine = _engine(database_url)
    try:
        current = _current(engine, _Model())
    finally:
        engine.dispose()
    _emit(current.to_dict(), as_json)


@policy_app.command("set")
def set_policy(
    reason: str = typer.Option(..., "--reason", "-m", help="Why: kept in the history."),
    sales_threshold: float | None = typer.Option(
        None, help="Scores at or above go to sales (0-100)."
    ),
    nurture_threshold: float | None = typer.Option(
        None, help="Scores at or above are nurtured (0-100)."
    ),
    grade_a: float | None = typer.Option(None, help="Lowest score graded A."),
    grade_b: float | None = typer.Option(None, help="Lowest score graded B."),
    grade_c: float | None = typer.Option(None, help="Lowest score graded C (below: D)."),
    no_rules: bool = typer.Option(False, "--no-rules", help="Remove every hard rule."),
    rank_by: str | None = typer.Option(
        None,
        "--rank-by",
        help="What fills sales' capacity: probability (the sales threshold) or expected_value "
        "(the value threshold; needs a model with a deal value model).",
    ),
    value_threshold: float | None = typer.Option(
        None,
        min=0,
        help="With --rank-by expected_value: the lowest expected value (policy currency) sent "
        "to sales; left out, the one that fills the weekly capacity on the model's holdout.",
    ),
    weekly_capacity: float | None = typer.Option(None, min=0, help="Leads a week sales can take."),
    from_file: Path | None = typer.Option(
        None,
        "--from-file",
        exists=True,
        dir_okay=False,
        help="JSON file with policy fields (as in GET /v1/policy's `policy`); options above override it.",
    ),
    expected_version: int | None = typer.Option(
        None,
        min=0,
        max=2**31 - 1,
        help="Refuse if the current version is not this one (someone changed it meanwhile).",
    ),
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Change the policy; fields not given keep their current value."""
    from features.policy.rules import RANK_BY

    changes = _file_fields(from_file) if from_file else {}
    for name, value in (
        ("sales_threshold", sales_threshold),
        ("nurture_threshold", nurture_threshold),
        ("rank_by", rank_by),
        ("value_threshold", value_threshold),
        ("weekly_capacity", weekly_capacity),
    ):
        if value is not None:
            changes[name] = value
    if changes.get("rank_by") not in (None, *RANK_BY):
        raise _fail(
            f"--rank-by {changes['rank_by']!r} is not a ranking; use one of: {', '.join(RANK_BY)}"
        )
    engine = _engine(database_url)
    try:
        model = _Model()
        current = _current(engine, model)
        grades = {
            k: v for k, v in (("A", grade_a), ("B", grade_b), ("C", grade_c)) if v is not None
        }
        if grades:  # minimum scores given by hand: the bands go by score from now on
            changes["grades"] = (
                current.policy.grades.model_dump()
                | changes.get("grades", {})
                | grades
                | {"by": "score", "shares": None, "basis": None}
            )
        if no_rules:
            changes["rules"] = []
        if not changes:
            raise _fail(
                "nothing to change: give --sales-threshold, --nurture-threshold, --grade-a/b/c, "
                "--no-rules, --rank-by, --value-threshold, --weekly-capacity or --from-file"
            )
        if changes.get("rank_by", current.policy.rank_by) == "expected_value":
            changes = _value_ranking(changes, current.policy, model)
        saved = _save(engine, current, changes, reason, expected_version)
    finally:
        engine.dispose()
    if not as_json:
        err_console.print(
            f"Saved policy version {saved.version}; running services apply it within a second."
        )
    _emit(saved.to_dict(), as_json)


def _value_ranking(changes: dict[str, Any], in_force: Any, model: _Model) -> dict[str, Any]:
    """`changes` that rank by expected value, checked against the champion (it needs a deal
    value model), with the value threshold that fills the weekly capacity on its holdout when
    none is given or in force (as PUT /v1/policy does)."""
    from features.policy.rules import PolicyError, value_needed_message
    from serving.policy.simulation import holdout_basis, value_threshold_for_capacity

    loaded = model.get()
    if loaded is None:
        raise _fail(
            f"--rank-by expected_value needs the champion, to check it has a deal value model: "
            f"{model._error}"
        )
    if getattr(loaded.scorer, "value", None) is None:
        raise _fail(value_needed_message(f"model {loaded.name} version {loaded.version}"))
    if "value_threshold" in changes or (
        in_force.value_threshold is not None and "weekly_capacity" not in changes
    ):
        return changes
    capacity = changes.get("weekly_capacity", in_force.weekly_capacity)
    if capacity is None:
        raise _fail(
            "--rank-by expected_value needs --value-threshold (the lowest expected value sent "
            "to sales) or --weekly-capacity (the value threshold that fills it is chosen on the "
            "model's holdout)"
        )
    try:
        threshold = value_threshold_for_capacity(holdout_basis(loaded), float(capacity))
    except PolicyError as error:
        raise _fail(str(error)) from None
    return changes | {"value_threshold": threshold}


def _file_fields(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise _fail(
            f"cannot read {path}: {error}; it must be a JSON object of policy fields"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("policy"), dict):
        data = data["policy"]  # a saved `leadscore policy show --json`
    if not isinstance(data, dict):
        raise _fail(f'{path} must hold a JSON object such as {{"sales_threshold": 60}}')
    return data


def _save(engine, current, changes: dict, reason: str, expected_version: int | None):
    from pydantic import ValidationError

    from serving.policy.store import PolicyStoreError, merge_policy, save_policy, validation_message

    try:
        policy = merge_policy(current.policy, changes)
    except ValidationError as error:
        raise _fail(validation_message(error)) from None
    try:
        return save_policy(
            # `default` is only recorded when nothing was saved yet, and then it is `current`.
            engine,
            policy,
            _who(),
            reason,
            current.policy,
            expected_version=expected_version,
        )
    except PolicyStoreError as error:
        raise _fail(str(error)) from None


@policy_app.command("history")
def show_history(
    limit: int = typer.Option(20, min=1, max=1000, help="How many versions, newest first."),
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Every saved version: who, when, why and what changed."""
    from serving.policy.store import history

    engine = _engine(database_url)
    try:
        versions = [v.to_dict() for v in history(engine, limit)]
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(versions, indent=2))
        return
    if not versions:
        err_console.print(
            "No policy saved yet: the model's default is in force (`leadscore policy show`)."
        )
        return
    table = Table("version", "when (UTC)", "who", "action", "what changed", "why")
    for v in versions:
        action = v["action"] + (
            f" to {v['restored_version']}" if v["restored_version"] is not None else ""
        )
        table.add_row(
            str(v["version"]),
            v["created_at"][:19].replace("T", " "),
            v["created_by"],
            action,
            "; ".join(v["changes"]) or "(no change)",
            v["reason"],
        )
    console.print(table)


@policy_app.command("rollback")
def rollback_policy(
    version: int = typer.Argument(
        ..., min=0, max=2**31 - 1, help="Version to restore (0: the model's default)."
    ),
    reason: str = typer.Option(..., "--reason", "-m", help="Why: kept in the history."),
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Restore an earlier version, as a new audited version."""
    from serving.policy.store import PolicyStoreError, in_force, load_version, rollback

    engine = _engine(database_url)
    try:
        model = _Model()
        target = load_version(engine, version) if version else None
        current = _current(engine, model)  # loads the model when its default is in force
        needs_default = (
            version == 0 or current.follows_model or bool(target and target.follows_model)
        )
        default = model.default_policy() if needs_default else current.policy
        try:
            saved = rollback(engine, version, _who(), reason, default)
        except PolicyStoreError as error:
            raise _fail(str(error)) from None
    finally:
        engine.dispose()
    if not as_json:
        err_console.print(f"Restored version {version} as version {saved.version}.")
    _emit(in_force(saved, default).to_dict(), as_json)


@policy_app.command("restore-default")
def restore_default_policy(
    reason: str = typer.Option(..., "--reason", "-m", help="Why: kept in the history."),
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """Put the model's own default policy back in force, as a new audited version: from then on
    the policy follows the model (a new champion's default applies at once)."""
    from serving.policy.store import PolicyStoreError, restore_default

    engine = _engine(database_url)
    try:
        default = _Model().default_policy()
        try:
            saved = restore_default(engine, _who(), reason, default)
        except PolicyStoreError as error:
            raise _fail(str(error)) from None
    finally:
        engine.dispose()
    if not as_json:
        err_console.print(
            f"The model's default policy is in force again as version {saved.version}."
        )
    _emit(saved.to_dict(), as_json)


@policy_app.command("simulate")
def simulate_policy(
    by: str | None = typer.Option(
        None,
        help="value (most net value a week), capacity (leads a week), precision or recall (targets 0-1).",
    ),
    value: float | None = typer.Option(
        None,
        help="The target for --by: a win's value, leads a week, or the precision/recall target.",
    ),
    cost_per_lead: float = typer.Option(
        1.0, min=0, help="For --by value: what working one lead costs."
    ),
    threshold: float | None = typer.Option(
        None, min=0, max=100, help="Evaluate this sales threshold."
    ),
    holdout: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="CSV or Parquet of held-out leads with `probability` and `label` (1 won, 0 lost), "
        "and `expected_value` to rank by it, instead of the champion's holdout; needs --weeks.",
    ),
    weeks: float | None = typer.Option(
        None, min=0, help="Weeks of leads the --holdout file covers."
    ),
    recent_days: float | None = typer.Option(
        None, min=0, help="Simulate on the latest score of each lead scored in the last N days."
    ),
    rank_by: str | None = typer.Option(
        None,
        "--rank-by",
        help="probability (a score threshold) or expected_value (a value threshold: --by "
        "capacity or --by value with --cost-per-lead); default: the policy's.",
    ),
    table: bool = typer.Option(False, "--table", help="Print every threshold 0-100."),
    save: bool = typer.Option(
        False, "--save", help="Save the chosen threshold as the new sales threshold."
    ),
    reason: str | None = typer.Option(None, "--reason", "-m", help="Why (needed with --save)."),
    database_url: str | None = DatabaseOption,
    as_json: bool = JsonOption,
) -> None:
    """What a threshold would do: leads a week to sales, expected wins, precision, recall, lift."""
    from features.policy.rules import RANK_BY, PolicyError
    from features.policy.thresholds import CHOOSE_BY
    from serving.policy.simulation import BasisUnavailable, holdout_basis, recent_basis, simulate

    if by is not None and by not in CHOOSE_BY:
        raise _fail(
            f"--by {by!r} is not a way to choose a threshold; use one of: {', '.join(CHOOSE_BY)}"
        )
    if rank_by is not None and rank_by not in RANK_BY:
        raise _fail(f"--rank-by {rank_by!r} is not a ranking; use one of: {', '.join(RANK_BY)}")
    if by is not None and value is None and not (by == "value" and rank_by == "expected_value"):
        raise _fail(f"--by {by} needs --value (the target)")
    if holdout is not None and recent_days is not None:
        raise _fail("give either --holdout or --recent-days, not both")
    if save and not reason:
        raise _fail("--save needs --reason (kept in the history)")
    if save and by is None and threshold is None:
        raise _fail("--save needs a threshold to save: give --by and --value, or --threshold")
    engine = _engine(database_url)
    model = _Model()
    try:
        current = _current(engine, model)
        try:
            if holdout is not None:
                basis = _file_basis(holdout, weeks)
            elif recent_days is not None:
                basis = recent_basis(engine, recent_days)
            else:
                loaded = model.get()
                if loaded is None:
                    raise BasisUnavailable(
                        f"{model._error}\nOr simulate on a file (--holdout FILE --weeks N) or on "
                        "recent scores (--recent-days N)"
                    )
                basis = holdout_basis(loaded)
            result = simulate(
                basis,
                current.policy,
                by=by,
                value=value,
                cost_per_lead=cost_per_lead,
                threshold=threshold,
                include_table=table,
                rank_by=rank_by,
            )
        except (BasisUnavailable, PolicyError) as error:
            raise _fail(str(error)) from None
        result["current"]["version"] = current.version
        if save:
            proposed = result["proposed_policy"]
            fields = (
                ("rank_by", "value_threshold", "weekly_capacity")
                if proposed["rank_by"] == "expected_value"
                else ("rank_by", "sales_threshold", "nurture_threshold")
            )
            saved = _save(
                engine,
                current,
                {name: proposed[name] for name in fields if name in proposed},
                reason or "",
                current.version,
            )
            result["saved_version"] = saved.version
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_simulation(result, by, value)


def _file_basis(path: Path, weeks: float | None):
    import pandas as pd

    from serving.policy.simulation import Basis

    if weeks is None or weeks <= 0:
        raise _fail(
            f"--holdout {path} needs --weeks: how many weeks of leads the file covers (> 0)"
        )
    try:
        frame = (
            pd.read_parquet(path)
            if path.suffix.lower() in (".parquet", ".pq")
            else pd.read_csv(path)
        )
    except Exception as error:
        raise _fail(f"cannot read {path}: {error}") from None
    missing = [c for c in ("probability", "label") if c not in frame.columns]
    if missing:
        raise _fail(
            f"{path} has no column {', '.join(missing)}; it needs `probability` (0-1) and `label` "
            f"(1 won, 0 lost); found: {', '.join(map(str, frame.columns))}"
        )
    try:
        probabilities = pd.to_numeric(frame["probability"]).to_numpy(float)
        labels = pd.to_numeric(frame["label"]).to_numpy(float)
    except (TypeError, ValueError) as error:
        raise _fail(f"{path}: column probability and label must be numbers: {error}") from None
    bad = [
        i
        for i, (p, y) in enumerate(zip(probabilities, labels))
        if not (0 <= p <= 1) or y not in (0, 1)
    ]
    if bad:
        raise _fail(
            f"{path}: row {bad[0] + 2} (and {len(bad) - 1} more) has probability outside 0-1 or a label "
            "other than 0/1"
        )
    values = None
    if "expected_value" in frame.columns:  # probability x expected deal amount, when known
        values = pd.to_numeric(frame["expected_value"], errors="coerce").to_numpy(float)
        bad = [i for i, v in enumerate(values) if not (math.isfinite(v) and v >= 0)]
        if bad:
            raise _fail(
                f"{path}: row {bad[0] + 2} (and {len(bad) - 1} more) has an expected_value that "
                "is not a number of 0 or more; give each lead's probability x expected deal amount"
            )
    return Basis(
        "holdout",
        probabilities,
        labels,
        weeks,
        f"{path.name}: {len(frame)} leads over {weeks:g} weeks with known outcomes",
        values,
    )


def _fmt(value: Any, digits: int = 2, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.{digits}f}"


def _row_cells(row: dict[str, Any], revenue: bool = False) -> list[str]:
    """A row's cells under `_headers(revenue)`."""
    threshold = (
        str(row["threshold"])
        if row.get("threshold") is not None
        else f"value >= {row.get('value_threshold', 0):,.2f}"
    )
    return [
        threshold,
        _fmt(row["leads_per_week"], 1),
        _fmt(row["share_to_sales"], percent=True),
        _fmt(row["expected_wins"], 2),
        *([_fmt(row.get("expected_revenue"), 2)] if revenue else []),
        _fmt(row["precision"], percent=True),
        _fmt(row["recall"], percent=True),
        _fmt(row.get("lift"), 2),
    ]


HEADERS = ("threshold", "leads/week", "share", "wins/week", "precision", "recall", "lift")


def _headers(revenue: bool) -> tuple[str, ...]:
    """The columns; with expected values, the expected revenue a week after the wins."""
    return (*HEADERS[:4], "revenue/week", *HEADERS[4:]) if revenue else HEADERS


def _print_simulation(result: dict[str, Any], by: str | None, value: float | None) -> None:
    basis = result["basis"]
    console.print(f"Simulated on {basis['description']}.")
    labels = [f"now (v{result['current']['version']})"]
    if result["chosen"] is not None:
        labels.append(f"{by} {value:g}" if by and value is not None else by or "asked")
    console.print(_label_table(result, labels))
    revenue = bool(result["basis"].get("expected_values"))
    rankings = result.get("rankings")
    if rankings:
        compare = Table(
            "ranked by",
            *_headers(True),
            title=f"Filling {rankings['leads_per_week']:g} leads a week; expected revenue "
            f"(probability x expected deal amount) in {result['currency']}",
        )
        for name in ("probability", "expected_value"):
            if rankings[name] is not None:
                compare.add_row(name, *_row_cells(rankings[name], True))
        console.print(compare)
    if result.get("chosen") and "net_value_per_week" in result["chosen"]:
        console.print(
            f"Net value a week at the chosen threshold: {result['chosen']['net_value_per_week']:,.2f}"
        )
    if "table" in result:
        full = Table(*_headers(revenue), title="Every threshold")
        columns = result["table"]
        for i in range(len(columns["threshold"])):
            full.add_row(*_row_cells({k: columns[k][i] for k in columns}, revenue))
        console.print(full)
    if "saved_version" in result:
        console.print(f"Saved as policy version {result['saved_version']}.")
    elif result["chosen"] is not None:
        console.print("Not saved: add --save --reason '...' to make it the policy.")


def _label_table(result: dict[str, Any], labels: list[str]) -> Table:
    title = (
        "Sending every lead of expected value at or above the threshold to sales"
        if result.get("rank_by") == "expected_value"
        else "Sending every lead scored at or above the threshold to sales"
    )
    revenue = bool(result["basis"].get("expected_values"))
    table = Table("", *_headers(revenue), title=title)
    rows = [result["current"]] + ([result["chosen"]] if result["chosen"] is not None else [])
    for label, row in zip(labels, rows):
        table.add_row(label, *_row_cells(row, revenue))
    return table


def register(app: typer.Typer) -> None:
    """Add the policy commands to the top-level app."""
    app.add_typer(policy_app, name="policy")
