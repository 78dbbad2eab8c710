"""Model evaluation on held-out leads: metrics, gains, grades, threshold table and charts.

Pure functions of (labels, probabilities) except `save_charts`, which writes PNG files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from features.policy.monitoring import win_rate_by_grade
from features.policy.rules import (
    GRADES,
    GradeBands,
    Policy,
    apply_policy,
    grade_bands_by_share,
    score_from_probability,
)
from features.policy.thresholds import threshold_table

CALIBRATION_BINS = 10
# Lead ages (days at the scoring moment) the holdout's calibration is checked in, each band from
# its edge to the next: a CRM scores leads at any age, and a model calibrated on average can
# under-predict the young leads and over-predict the old ones.
AGE_BAND_EDGES_DAYS = (0.0, 7.0, 14.0, 30.0, 60.0)


def expected_calibration_error(
    labels: Any, probabilities: Any, bins: int = CALIBRATION_BINS
) -> float:
    """Mean |observed win rate - mean probability| over equal-width probability bins, weighted
    by the share of leads in each bin (0 = perfectly calibrated)."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    if y.size == 0:
        return float("nan")
    index = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y, minlength=bins)
    used = count > 0
    return float(np.sum(np.abs(sum_y[used] - sum_p[used])) / y.size)


def calibration_table(
    labels: Any, probabilities: Any, bins: int = CALIBRATION_BINS
) -> pd.DataFrame:
    """Per equal-width probability bin: leads, mean predicted probability, observed win rate."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(index, weights=p, minlength=bins) / count
        rate = np.bincount(index, weights=y, minlength=bins) / count
    return pd.DataFrame(
        {
            "bin_low": np.arange(bins) / bins,
            "bin_high": (np.arange(bins) + 1) / bins,
            "leads": count,
            "mean_probability": mean_p,
            "win_rate": rate,
        }
    )


def age_band_names(edges: tuple[float, ...] = AGE_BAND_EDGES_DAYS) -> list[str]:
    """`0-7d`, `7-14d`, ..., `60d+`: the bands' names in metrics and tables."""
    names = [f"{low:g}-{high:g}d" for low, high in zip(edges[:-1], edges[1:], strict=True)]
    return [*names, f"{edges[-1]:g}d+"]


def calibration_by_age(
    labels: Any, probabilities: Any, ages_days: Any, edges: tuple[float, ...] = AGE_BAND_EDGES_DAYS
) -> pd.DataFrame:
    """Per band of lead age at the scoring moment (`edges` in days, each band from its edge up to
    the next): snapshots, their ages, wins, observed win rate, mean probability, ECE, ROC AUC.
    Bands without a snapshot are left out."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    age = np.asarray(ages_days, dtype=float)
    band = np.searchsorted(np.asarray(edges, dtype=float), age, side="right") - 1
    rows = []
    for i, name in enumerate(age_band_names(edges)):
        at = band == i
        if not at.any():
            continue
        yb, pb = y[at], p[at]
        both = 0 < yb.sum() < yb.size
        rows.append(
            {
                "age_band": name,
                "snapshots": int(at.sum()),
                "ages_days": " ".join(f"{a:g}" for a in np.unique(age[at])[:20]),
                "wins": int(yb.sum()),
                "win_rate": float(yb.mean()),
                "mean_probability": float(pb.mean()),
                "ece": expected_calibration_error(yb, pb),
                "roc_auc": float(roc_auc_score(yb, pb)) if both else float("nan"),
            }
        )
    columns = ["age_band", "snapshots", "ages_days", "wins", "win_rate", "mean_probability",
               "ece", "roc_auc"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def age_band_metrics(table: pd.DataFrame) -> dict[str, float]:
    """`ece_age_<band>` and `mean_probability_minus_win_rate_age_<band>` of each band of a
    `calibration_by_age` table, and the worst band's ECE (`ece_age_worst`)."""
    out: dict[str, float] = {}
    for row in table.itertuples():
        key = str(row.age_band).replace("-", "_").replace("+", "_plus")
        out[f"ece_age_{key}"] = float(row.ece)
        out[f"mean_probability_minus_win_rate_age_{key}"] = float(
            row.mean_probability - row.win_rate
        )
    if len(table):
        out["ece_age_worst"] = float(table["ece"].max())
    return out


def gains_table(labels: Any, probabilities: Any, groups: int = 10) -> pd.DataFrame:
    """Lift and cumulative gains by decile (decile 1 = the highest-scored tenth of leads)."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    order = np.argsort(-p, kind="stable")
    parts = np.array_split(order, groups)
    total_wins = y.sum()
    base = y.mean() if y.size else np.nan
    rows, cumulative_leads, cumulative_wins = [], 0, 0.0
    for i, part in enumerate(parts, start=1):
        wins = float(y[part].sum())
        cumulative_leads += part.size
        cumulative_wins += wins
        rate = wins / part.size if part.size else np.nan
        rows.append(
            {
                "decile": i,
                "leads": int(part.size),
                "wins": wins,
                "win_rate": rate,
                "mean_probability": float(p[part].mean()) if part.size else np.nan,
                "lift": rate / base if base else np.nan,
                "cumulative_share_of_leads": cumulative_leads / y.size,
                "cumulative_gain": cumulative_wins / total_wins if total_wins else np.nan,
                "cumulative_lift": (cumulative_wins / cumulative_leads) / base if base else np.nan,
            }
        )
    return pd.DataFrame(rows)


def classification_metrics(
    labels: Any, probabilities: Any, policy: Policy | None = None
) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier, ECE, lift in the top decile, and precision/recall/share
    sent to sales at the policy's sales threshold."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    policy = policy or Policy()
    both = 0 < y.sum() < y.size
    metrics = {
        "leads": float(y.size),
        "win_rate": float(y.mean()) if y.size else float("nan"),
        "mean_probability": float(p.mean()) if p.size else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))
        if y.size
        else float("nan"),
        "brier": float(brier_score_loss(y, p)) if y.size else float("nan"),
        "ece": expected_calibration_error(y, p),
    }
    gains = gains_table(y, p)
    metrics["top_decile_lift"] = float(gains["lift"].iloc[0]) if len(gains) else float("nan")
    sent = score_from_probability(p) >= policy.sales_threshold
    wins = y.sum()
    metrics["sales_threshold"] = float(policy.sales_threshold)
    metrics["share_to_sales"] = float(sent.mean()) if y.size else float("nan")
    metrics["precision_at_threshold"] = float(y[sent].mean()) if sent.any() else float("nan")
    metrics["recall_at_threshold"] = float(y[sent].sum() / wins) if wins else float("nan")
    return metrics


def model_policy(policy: Policy, probabilities: Any) -> Policy:
    """The policy shipped with the model: `policy` with its grade bands by share of leads
    (A the top 25%, B the next 25%, C the next 25%, D the rest, or the config's `shares`)
    computed on the holdout's scores, unless the config set grade bands by score.

    By share is the default because probability bands (A from 60%) fill A and D by the model's
    base rate, not by what sales can work: on the 20,000-lead demo the holdout had 60% D and
    0.3% A, and the grade ranked wins worse than the share-based one (notes-reasons.md)."""
    grades = policy.grades
    if "grades" not in policy.model_fields_set:
        grades = GradeBands(by="share")
    if grades.by != "share":
        return policy
    p = np.asarray(probabilities, dtype=float).reshape(-1)
    basis = f"{p.size:,} held-out leads at training"
    return policy.model_copy(update={"grades": grade_bands_by_share(p, grades.shares, basis)})


def grade_table(labels: Any, probabilities: Any, policy: Policy | None = None) -> pd.DataFrame:
    """Leads, wins and win rate per grade (A-D) under the model's policy (`model_policy`)."""
    policy = model_policy(policy or Policy(), probabilities)
    grades, _, _ = apply_policy(score_from_probability(probabilities), None, policy)
    return win_rate_by_grade(grades, labels)


def grade_bases_table(
    labels: Any, probabilities: Any, policy: Policy | None = None
) -> pd.DataFrame:
    """Grades by score (the policy's minimum scores, else 60/35/15) against grades by share
    (25% each) on the same leads: per basis and grade, leads, share, wins and win rate, and how
    well the grade alone ranks wins (`grade_roc_auc`: 0.5 = not at all, 1 = perfectly)."""
    y = np.asarray(labels, dtype=float).reshape(-1)
    p = np.asarray(probabilities, dtype=float).reshape(-1)
    policy = policy or Policy()
    by_score = policy.grades if policy.grades.by == "score" else GradeBands()
    by_share = grade_bands_by_share(p, policy.grades.shares)
    rows = []
    for basis, bands in (("score", by_score), ("share", by_share)):
        grades, _, _ = apply_policy(score_from_probability(p), None, Policy(grades=bands))
        rank = np.select([grades == g for g in GRADES], [4, 3, 2, 1], 0).astype(float)
        both = 0 < y.sum() < y.size
        auc = float(roc_auc_score(y, rank)) if both else float("nan")
        table = win_rate_by_grade(grades, y)
        table.insert(0, "basis", basis)
        table.insert(2, "lowest_score", [bands.A, bands.B, bands.C, 0.0])
        table["share_of_leads"] = table["leads"] / max(y.size, 1)
        table["grade_roc_auc"] = auc
        rows.append(table)
    return pd.concat(rows, ignore_index=True)


def evaluation_tables(
    labels: Any, probabilities: Any, weeks: float, policy: Policy | None = None
) -> dict[str, pd.DataFrame]:
    """Every table the run logs: gains, grades, grade bases, calibration, thresholds."""
    return {
        "gains": gains_table(labels, probabilities),
        "grades": grade_table(labels, probabilities, policy),
        "grade_bases": grade_bases_table(labels, probabilities, policy),
        "calibration": calibration_table(labels, probabilities),
        "thresholds": threshold_table(probabilities, labels, weeks),
    }


def save_charts(
    labels: Any, probabilities: Any, directory: str | Path, title: str = ""
) -> list[Path]:
    """ROC, precision-recall, calibration and cumulative gains charts as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = directory / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)

    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC {title}".strip())
    ax.legend(loc="lower right")
    save(fig, "roc.png")

    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, label=f"model (AP {average_precision_score(y, p):.3f})")
    ax.axhline(y.mean(), ls="--", color="grey", label=f"win rate {y.mean():.2f}")
    ax.set(xlabel="Recall", ylabel="Precision", title=f"Precision-recall {title}".strip())
    ax.legend(loc="upper right")
    save(fig, "pr.png")

    table = calibration_table(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    used = table["leads"] > 0
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    ax.plot(table.loc[used, "mean_probability"], table.loc[used, "win_rate"], "o-", label="model")
    ax.set(xlabel="Predicted probability", ylabel="Observed win rate",
           title=f"Calibration (ECE {expected_calibration_error(y, p):.3f})")  # fmt: skip
    ax.legend(loc="upper left")
    save(fig, "calibration.png")

    gains = gains_table(y, p)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(
        [0, *gains["cumulative_share_of_leads"]],
        [0, *gains["cumulative_gain"]],
        "o-",
        label="model",
    )
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.set(xlabel="Share of leads (highest scores first)", ylabel="Share of wins",
           title="Cumulative gains")  # fmt: skip
    ax.legend(loc="lower right")
    save(fig, "gains.png")
    return paths
