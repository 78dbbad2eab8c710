"""Honest about thin data: refuse to train when there are too few won or lost leads.

A model fitted on a handful of wins gives confident numbers that mean little (its holdout has a
few wins, its calibration a few points). `check_enough_outcomes` counts leads, not snapshots (a
lead seen at three ages is one lead), and refuses with the numbers, the minimum and what would
help; `training.min_wins` / `training.min_losses` set the minimums.
"""

from __future__ import annotations

import numpy as np

from training.data import Examples, TrainingDataError

MIN_WINS = 30
MIN_LOSSES = 30


def outcome_counts(examples: Examples) -> tuple[int, int]:
    """(won leads, lost leads): a lead is won when any of its examples is, else lost."""
    labels = np.asarray(examples.labels, dtype=np.int64)
    if not examples.timestamped:
        return int(labels.sum()), int(labels.size - labels.sum())
    won = (
        np.bincount(
            np.unique(examples.groups, return_inverse=True)[1], weights=labels
        )  # wins per lead
        > 0
    )
    return int(won.sum()), int(won.size - won.sum())


def check_enough_outcomes(
    examples: Examples, min_wins: int = MIN_WINS, min_losses: int = MIN_LOSSES
) -> None:
    """Raise TrainingDataError with the counts, the minimums and what would help."""
    wins, losses = outcome_counts(examples)
    if wins >= min_wins and losses >= min_losses:
        return
    short = []
    if wins < min_wins:
        short.append(f"{wins} won leads (at least {min_wins} needed)")
    if losses < min_losses:
        short.append(f"{losses} lost leads (at least {min_losses} needed)")
    help_with = (
        "outcomes of more leads: a longer history in the outcomes file, closed deals from more "
        "months or teams, or leads whose outcome is recorded (closed_at, won)"
        if examples.timestamped
        else "more labelled rows in the leads file (the label column)"
    )
    raise TrainingDataError(
        f"too few outcomes to train a trustworthy model: {' and '.join(short)}, from "
        f"{wins} won and {losses} lost leads in all. What would help: {help_with}. A model "
        "fitted on fewer would give confident-looking numbers that mean little; the minimums "
        "are training.min_wins and training.min_losses in the config file"
    )
