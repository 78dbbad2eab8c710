"""Model registry: register a trained model, the champion/challenger gate, promotion.

Every new version gets the alias ``challenger``. The gate promotes it to ``champion`` only when,
on the SAME recent holdout (the new run's, scored by both models):

- its ROC AUC is at least `AUC_MARGIN` (0.005) higher than the champion's, and
- its calibration is not worse: log loss (a proper score, which punishes miscalibration) not
  higher than the champion's, and expected calibration error at most max(`ECE_TOLERANCE`,
  0.5/sqrt(holdout leads)) above it (ECE measured on a few hundred leads moves by about
  that much from sampling alone; 0.005 from 10,000 leads up).

The margin keeps a retrain on the same data (equal metrics, or noise-level gains) from churning
the champion. With no champion yet, the first model is promoted. `leadscore promote VERSION`
moves the alias by hand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from features.model.artifact import CHAMPION

AUC_MARGIN = 0.005
ECE_TOLERANCE = 0.005


class RegistryError(ValueError):
    """A registry request that cannot be done; the message says what to do instead."""


@dataclass
class GateDecision:
    promote: bool
    reason: str
    challenger: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] | None = None
    champion_version: str | None = None

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
