"""Model registry: register a trained model, score the champion, the gate, promotion.

Every new version gets the alias ``challenger`` (`register`). The gate promotes it to ``champion`` only when,
on the SAME recent holdout (the new run's, scored by both models):

- its ROC AUC is at least `AUC_MARGIN` (0.005) higher than the champion's, and
- its calibration is not worse: log loss (a proper score, which punishes miscalibration) not
  higher than the champion's, and expected calibration error at most max(`ECE_TOLERANCE`,
  0.5/sqrt(holdout leads)) above it (ECE measured on a few hundred leads moves by about
  that much from sampling alone; 0.005 from 10,000 leads up).

The margin keeps a retrain on the same data (equal metrics, or noise-level gains) from churning
the champion. With no champion yet, the first model is promoted. `score_champion` gives the
champion's metrics on the new run's holdout, `gate` the decision and `apply_gate` moves the alias;
`leadscore promote VERSION` moves it by hand (`promote`).

Suspected leakage (the strong warnings of `training.leakage`) comes first: a model with one is
registered but never promoted, the first one included, unless the user allows it
(`--allow-suspected-leakage`, `training.allow_suspected_leakage`). A champion that carries one
(version tag `suspected_leakage`, or for older versions its run's `leakage.json`) looked good on
a column filled in after hand-off: its metrics are not comparable, so a challenger without
suspected leakage replaces it without having to beat them.

`register` records the sha256 of every file of the model version (``hashes.json``, whose own
sha256 is the version tag ``leadscore.hashes_sha256``): the service refuses a version whose files
changed afterwards (`features.model.artifact.check_file_hashes`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from features.model.artifact import CHALLENGER, CHAMPION, ModelRef

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from features.data.config import DataConfig
    from features.data.loading import LeadData
    from features.policy.rules import Policy
    from training.leakage import LeakageWarning

AUC_MARGIN = 0.005
ECE_TOLERANCE = 0.005
LEAKAGE_TAG = "suspected_leakage"  # version tag: JSON list of the strongly suspected columns


class RegistryError(ValueError):
    """A registry request that cannot be done; the message says what to do instead."""


@dataclass
class GateDecision:
    promote: bool
    reason: str
    challenger: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None
    champion_version: str | None = None
    leakage: list[str] = field(default_factory=list)  # the challenger's strongly suspected columns
    champion_leakage: list[str] = field(default_factory=list)
    # with training.segment_by: per segment value, challenger_* and champion_* figures on the
    # segment's held-out snapshots (reported, not part of the decision)
    segments: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promotion_gate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None = None,
    auc_margin: float = AUC_MARGIN,
    ece_tolerance: float = ECE_TOLERANCE,
) -> GateDecision:
    """Decide whether the challenger replaces the champion (metrics on the same holdout)."""
    if champion is None:
        return GateDecision(True, "no champion yet: the first model becomes champion", challenger)
    gain = challenger["roc_auc"] - champion["roc_auc"]
    ece_gap = challenger["ece"] - champion["ece"]
    leads = challenger.get("leads") or 0
    ece_tolerance = max(ece_tolerance, 0.5 / leads**0.5) if leads else ece_tolerance
    loss_gap = challenger["log_loss"] - champion["log_loss"]
    facts = (
        f"ROC AUC {challenger['roc_auc']:.4f} vs {champion['roc_auc']:.4f} ({gain:+.4f}, needs "
        f"+{auc_margin}), ECE {challenger['ece']:.4f} vs {champion['ece']:.4f}, log loss "
        f"{challenger['log_loss']:.4f} vs {champion['log_loss']:.4f} (ECE may rise by "
        f"{ece_tolerance:.4f})"
    )
    if gain < auc_margin:
        reason = (
            f"stays challenger: not better than champion v{champion_version} by the margin; {facts}"
        )
        return GateDecision(False, reason, challenger, champion, champion_version)
    if ece_gap > ece_tolerance or loss_gap > 0:
        reason = f"stays challenger: better ranking but worse calibration than champion v{champion_version}; {facts}"
        return GateDecision(False, reason, challenger, champion, champion_version)
    reason = f"promoted: beats champion v{champion_version}; {facts}"
    return GateDecision(True, reason, challenger, champion, champion_version)


def champion_version(client: Any, model_name: str) -> str | None:
    """The version the champion alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def promote(model_name: str, version: str | int, client: Any = None) -> str:
    """Point the champion alias at `version` (the previous champion loses the alias)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient()
    version = str(version).strip()
    if not version.isdigit():
        raise RegistryError(f"version must be a number such as 3, got {version!r}")
    try:
        client.get_model_version(model_name, version)
    except MlflowException:
        try:
            versions = sorted(
                int(v.version) for v in client.search_model_versions(f"name = '{model_name}'")
            )
        except MlflowException:
            versions = []
        known = ", ".join(map(str, versions)) if versions else "none"
        raise RegistryError(
            f"model {model_name!r} has no version {version} (versions: {known}); list them with "
            f"`mlflow models` or the MLflow UI, or pass --model-name"
        ) from None
    client.set_registered_model_alias(model_name, CHAMPION, version)
    return version


def register(model_uri: str, model_name: str) -> str:
    """Register the logged model at `model_uri` as a new version of `model_name`, with the alias
    `CHALLENGER`; returns the version.

    The sha256 of every file of the model goes into its ``hashes.json`` first, and the sha256 of
    that file onto the version, as the tag `HASHES_TAG`, in the same call that creates it: no
    version exists without it, and the service refuses any file that no longer matches."""
    import mlflow

    from features.model.artifact import HASHES_TAG, record_file_hashes

    digest = record_file_hashes(model_uri)
    version = mlflow.register_model(model_uri, model_name, tags={HASHES_TAG: digest}).version
    mlflow.MlflowClient().set_registered_model_alias(model_name, CHALLENGER, version)
    return str(version)


@dataclass
class ChampionScore:
    """The champion on a new run's holdout."""

    version: str | None  # None: no champion yet
    metrics: dict[str, float] | None = None  # None: no champion, or it could not score
    error: str | None = None  # why it could not score this holdout
    leakage: list[str] = field(default_factory=list)  # its strongly suspected columns
    probability: np.ndarray | None = None  # its probability of each held-out snapshot


def version_leakage(client: Any, model_name: str, version: str) -> list[str]:
    """The strongly suspected leakage columns of a registered version: its `suspected_leakage`
    tag, or (a version registered before the tag existed) its run's `leakage.json`."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from training.leakage import strong_columns

    try:
        found = client.get_model_version(model_name, version)
    except MlflowException:
        return []
    if LEAKAGE_TAG in (found.tags or {}):
        return [str(c) for c in json.loads(found.tags[LEAKAGE_TAG])]
    if not found.run_id:
        return []
    try:
        logged = mlflow.artifacts.load_dict(f"runs:/{found.run_id}/leakage.json")
    except Exception:  # noqa: BLE001 - no leakage file (or no run): nothing is known
        return []
    return strong_columns(logged.get("warnings") or [])


def score_champion(
    model_name: str,
    holdout_frame: pd.DataFrame,
    data: LeadData,
    data_config: DataConfig,
    policy: Policy,
    labels: np.ndarray,
) -> ChampionScore:
    """The champion's metrics on this run's holdout, or why it could not be scored.

    A refitted champion is compared through its evaluation model (fitted without its holdout), as
    the challenger is: the refit may have learned this very holdout.
    The champion gets the inputs it was trained with: attribute columns this run excludes are
    read again from the leads file for the held-out leads.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    version = champion_version(client, model_name)
    if version is None:
        return ChampionScore(None)
    leaks = version_leakage(client, model_name, version)
    scored = _score_version(model_name, version, holdout_frame, data, data_config, policy, labels)
    scored.leakage = leaks
    return scored


def _score_version(
    model_name: str,
    version: str,
    holdout_frame: pd.DataFrame,
    data: LeadData,
    data_config: DataConfig,
    policy: Policy,
    labels: np.ndarray,
) -> ChampionScore:
    from features.data.loading import load_lead_data
    from features.model.artifact import load_model_scorer
    from training import evaluate

    try:
        # the champion's evaluation model: fitted without its own holdout, like this run's
        champion = load_model_scorer(ModelRef(model_name, version=version).uri, evaluation=True)
        if champion.featurizer.uses_touchpoints_ and data.touchpoints is None:
            return ChampionScore(
                version, error="the champion uses touchpoints and this run has none (--touchpoints)"
            )
        needed = [
            c["column"]
            for c in champion.featurizer.attributes_.columns_
            if c["column"] != "created_at"
        ]
        absent = [c for c in needed if c not in holdout_frame.columns]
        frame = holdout_frame
        if absent:
            again = data_config.model_copy(
                update={"exclude": [c for c in data_config.exclude if c not in absent],
                        "touchpoints": None, "outcomes": None, "label": data_config.label}
            )  # fmt: skip
            extra = load_lead_data(again).leads
            lacking = [c for c in absent if c not in extra.columns]
            if lacking:
                return ChampionScore(
                    version,
                    error=f"the champion needs column(s) {lacking} that the leads file lacks",
                )
            frame = holdout_frame.merge(extra[["lead_id", *absent]], on="lead_id", how="left")
        probability = champion.predict_proba(frame, data.touchpoints)
    except Exception as exc:  # noqa: BLE001 - any failure means the champion cannot be compared
        return ChampionScore(version, error=f"{type(exc).__name__}: {exc}")
    return ChampionScore(
        version,
        evaluate.classification_metrics(labels, probability, policy),
        probability=probability,
    )


def gate(
    version: str,
    metrics: dict[str, float],
    champion: ChampionScore,
    auc_margin: float = AUC_MARGIN,
    ece_tolerance: float = ECE_TOLERANCE,
    leaks: Sequence[LeakageWarning] = (),
    allow_leakage: bool = False,
) -> GateDecision:
    """The decision for challenger `version` (`metrics` on its holdout) against the champion.

    `leaks`: the challenger's strong leakage warnings; with any (and not `allow_leakage`) it stays
    challenger, the first model included. A champion with suspected leakage is not compared: a
    challenger without any replaces it. A champion that could not score the holdout keeps the
    challenger a challenger."""
    columns = [w.column for w in leaks]
    if columns and not allow_leakage:
        decision = GateDecision(
            False, _leak_reason(version, leaks, champion.version), metrics,
            champion.metrics, champion.version,
        )  # fmt: skip
    elif champion.leakage and not columns:
        decision = _replace_leaky_champion(metrics, champion)
    elif champion.error is not None:
        decision = GateDecision(
            False,
            f"stays challenger: champion v{champion.version} could not score this holdout "
            f"({champion.error[:300]}); promote by hand with `leadscore promote {version}`",
            metrics, None, champion.version,
        )  # fmt: skip
    else:
        decision = promotion_gate(
            metrics, champion.metrics, champion.version, auc_margin, ece_tolerance
        )
        if columns:
            decision.reason += (
                f"; suspected leakage in {_columns(columns)} allowed (--allow-suspected-leakage, "
                "training.allow_suspected_leakage)"
            )
    decision.leakage, decision.champion_leakage = columns, list(champion.leakage)
    return decision


def _columns(columns: Sequence[str]) -> str:
    quoted = ", ".join(f"'{c}'" for c in columns)
    return f"column{'s' if len(columns) > 1 else ''} {quoted}"


def _leak_reason(version: str, leaks: Sequence[LeakageWarning], champion: str | None) -> str:
    from training.leakage import exclude_command

    numbers = ", ".join(
        f"'{w.column}' alone: ROC AUC {w.single_auc:.3f}" for w in leaks if w.single_auc is not None
    )
    where = (
        f"Champion v{champion} stays in service."
        if champion is not None
        else "There is no champion yet: the service has no model until one is promoted."
    )
    return (
        f"stays challenger: suspected leakage in {_columns([w.column for w in leaks])}"
        f"{f' ({numbers})' if numbers else ''}: a model reading a column filled in after the lead "
        f"reached sales looks excellent here and fails on new leads. {where} Retrain without it: "
        f"{exclude_command(list(leaks))}; if the column is known when a lead arrives, use "
        "--allow-suspected-leakage (config: training.allow_suspected_leakage: true) or "
        f"`leadscore promote {version}`"
    )


def _replace_leaky_champion(metrics: dict[str, float], champion: ChampionScore) -> GateDecision:
    if champion.metrics is not None:
        facts = (
            f"ROC AUC {metrics['roc_auc']:.4f} vs {champion.metrics['roc_auc']:.4f} on this holdout"
        )
    else:
        facts = f"it could not score this holdout: {(champion.error or '')[:200]}"
    reason = (
        f"promoted: champion v{champion.version} has suspected leakage in "
        f"{_columns(champion.leakage)}, so its metrics are not comparable ({facts}); this model "
        "has no suspected leakage and replaces it"
    )
    return GateDecision(True, reason, metrics, champion.metrics, champion.version)


def apply_gate(model_name: str, version: str, decision: GateDecision) -> None:
    """Move the champion alias to `version` if the gate promotes it; the reason goes on the
    version (tag `promotion`), and its strongly suspected leakage columns (tag
    `suspected_leakage`, a JSON list) for the gates of later runs."""
    from mlflow import MlflowClient

    client = MlflowClient()
    if decision.promote:
        client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "promotion", decision.reason[:5000])
    client.set_model_version_tag(model_name, version, LEAKAGE_TAG, json.dumps(decision.leakage))
