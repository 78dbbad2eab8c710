"""The whole demo dataset from one seed: the steps in order, sharing one random generator.

The order of the steps is part of the data: each draws from the same generator, so the same seed
gives the same tables only if leads, early touchpoints, later touchpoints, outcomes and the
touchpoint table's spellings are drawn in this order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.data.demo.columns import lead_ids
from features.data.demo.leads import draw_leads
from features.data.demo.outcomes import draw_outcomes
from features.data.demo.process import (
    EXPORT_DATE,
    add_activity_counts,
    shape_named,
    true_expected_amount,
    true_median_days_to_close,
    true_win_probability,
)
from features.data.demo.touchpoints import (
    early_touches,
    first_touch,
    hidden_levels,
    later_touches,
    touchpoint_table,
)
from features.data.vocabulary import ACTIVITIES

# What `generate` tells `progress`, in order.
STEPS = ("leads", "touchpoints (first 21 days)", "touchpoints (later)", "outcomes", "assembling")


@dataclass
class DemoData:
    """The generated tables (pyarrow) and the export date (no event is after it)."""

    leads: pa.Table
    touchpoints: pa.Table
    outcomes: pa.Table
    oracle: pa.Table
    export_date: np.datetime64
    shape: str = "default"  # the process's variation (`process.SHAPES`)


def generate(
    n_leads: int,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    shape: str = "default",
) -> DemoData:
    """Generate the demo tables for `n_leads` leads of a shape (`process.SHAPES`); the same seed
    and shape give the same data."""
    if n_leads < 1:
        raise ValueError("the number of leads must be at least 1")
    process_shape = shape_named(shape)
    step = progress or (lambda description: None)
    rng = np.random.default_rng(seed)
    leads_step, early_step, later_step, outcomes_step, assembling_step = STEPS

    step(leads_step)
    leads = draw_leads(rng, n_leads, process_shape)

    step(early_step)
    intent, engagement = hidden_levels(rng, leads)
    first = first_touch(rng, leads)
    early = early_touches(rng, leads, intent, engagement)
    counts = np.zeros((n_leads, len(ACTIVITIES)), dtype=np.int32)
    for part in (first, early):
        add_activity_counts(counts, part["lead"], part["activity"])
    p = true_win_probability(leads.attribute_logit, counts)

    step(later_step)
    late = later_touches(rng, leads, engagement, p)

    step(outcomes_step)
    outcomes = draw_outcomes(rng, leads, p, counts)

    step(assembling_step)
    ids = lead_ids(n_leads)
    export_s = int(EXPORT_DATE.astype(np.int64))
    touchpoints = touchpoint_table(rng, [first, early, late], ids, export_s)
    oracle = pa.table(
        {
            "lead_id": ids,
            "true_win_probability": pa.array(p),
            "true_expected_amount": pa.array(true_expected_amount(outcomes.typical_amount)),
            "true_close_beta_a": pa.array(outcomes.close_a),
            "true_close_beta_b": pa.array(outcomes.close_b),
            "true_median_days_to_close": pa.array(
                true_median_days_to_close(outcomes.close_a, outcomes.close_b)
            ),
        }
    )
    return DemoData(leads.table(ids), touchpoints, outcomes.table(ids), oracle, EXPORT_DATE, shape)
