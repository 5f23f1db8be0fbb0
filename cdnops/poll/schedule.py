"""Poll phases: where inside the interval each appliance is polled, from a stable hash of its id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from cdnops.model import FloatArray

_SCALE = float(2**64)


def phase_fraction(appliance_id: str) -> float:
    """The appliance's phase as a fraction of the interval, in [0, 1).

    blake2b rather than `hash()`: the value must be the same in every process and after a
    restart (string hashing is salted per process), and uniform so the fleet is spread evenly.
    """
    digest = hashlib.blake2b(appliance_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def phases(appliance_ids: Iterable[str], interval_s: float) -> FloatArray:
    """Offsets in seconds inside the interval, one per id, in [0, interval_s)."""
    fractions = np.fromiter((phase_fraction(i) for i in appliance_ids), dtype=np.float64)
    return fractions * interval_s
