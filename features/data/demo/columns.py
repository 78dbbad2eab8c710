"""Draws and Arrow columns every step of the generator uses."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def choice(rng: np.random.Generator, shares: list[float], size: int) -> np.ndarray:
    """`size` option indices drawn with the given (unnormalised) shares, int32."""
    cdf = np.cumsum(np.asarray(shares, dtype=float))
    cdf /= cdf[-1]
    cdf[-1] = 1.0  # rounding must not let a draw fall past the last option
    return np.searchsorted(cdf, rng.random(size), side="right").astype(np.int32)


def dict_array(indices: np.ndarray, vocab: list[str], mask: np.ndarray | None = None) -> pa.Array:
    """A dictionary array; repeated spellings in `vocab` are merged (readers need unique values)."""
    unique, inverse = np.unique(np.array(vocab, dtype=object), return_inverse=True)
    codes = inverse.astype(np.int32)[indices]
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, mask=mask), pa.array(unique.tolist(), pa.string())
    )


def timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * 1000, pa.timestamp("ms", tz="UTC"))


def lead_ids(n: int) -> pa.Array:
    """'LD-0000001' ... for n leads."""
    width = max(7, len(str(n)))
    numbers = np.arange(1, n + 1).astype(str)
    return pa.array(np.char.add("LD-", np.char.zfill(numbers, width)).astype(object), pa.string())
