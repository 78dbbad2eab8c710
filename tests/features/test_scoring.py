"""The scorer's vectorised helpers give exactly what their reference (a full sort) gives."""

from __future__ import annotations

import numpy as np
import pytest

from features.scoring import ranked_effects, strongest_effects


@pytest.mark.parametrize("seed", range(6))
def test_strongest_effects_pick_what_a_stable_sort_picks(seed):
    rng = np.random.default_rng(seed)
    n_leads, n_features = 300, 25
    # Effects on a coarse grid tie often; NaN (typical value) is never a reason.
    effects = np.round(rng.normal(scale=3, size=(n_leads, n_features)) * 2) / 2
    effects[rng.random(effects.shape) < 0.5] = np.nan
    effects[:5] = np.nan  # leads without any effect
    effects[5:10, 2:] = np.nan  # leads with fewer effects than reasons
    effects[10, :] = 1.5  # one lead where everything ties
    for n in (1, 3, n_features):
        fast = strongest_effects(effects, n)
        reference = ranked_effects(effects, n)
        for mine, theirs in ((fast[1], reference[1]), (fast[3], reference[3])):
            np.testing.assert_array_equal(mine, theirs)  # the same effects, NaN where none is left
        sides = ((fast[0], fast[1], reference[0]), (fast[2], fast[3], reference[2]))
        for columns, values, ref_columns in sides:
            used = ~np.isnan(values)
            np.testing.assert_array_equal(columns[used], ref_columns[used])
    top, top_effect, bottom, bottom_effect = strongest_effects(effects[10:11], 3)
    assert top.tolist() == [[0, 1, 2]] and bottom.tolist() == [[24, 23, 22]]
