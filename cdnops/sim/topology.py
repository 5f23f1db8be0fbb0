"""The simulated fleet's layout: sites, appliance ids, labels and the spec that sizes them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAX_APPLIANCES = 100_000

# (city code, first site number, region, UTC offset in hours): the offset places each
# site's diurnal peak in its own evening.
CITIES: tuple[tuple[str, int, str, float], ...] = (
    ("sea", 1, "us-west", -8.0),
    ("ams", 2, "eu-west", 1.0),
    ("fra", 1, "eu-central", 1.0),
    ("lhr", 3, "eu-west", 0.0),
    ("nyc", 2, "us-east", -5.0),
    ("sjc", 1, "us-west", -8.0),
    ("sin", 1, "ap-southeast", 8.0),
    ("nrt", 2, "ap-northeast", 9.0),
    ("syd", 1, "ap-southeast", 10.0),
    ("gru", 1, "sa-east", -3.0),
    ("iad", 4, "us-east", -5.0),
    ("ord", 1, "us-central", -6.0),
    ("dfw", 2, "us-central", -6.0),
    ("cdg", 1, "eu-west", 1.0),
    ("mad", 1, "eu-south", 1.0),
    ("waw", 1, "eu-central", 1.0),
    ("jnb", 1, "af-south", 2.0),
    ("bom", 2, "ap-south", 5.5),
    ("hkg", 1, "ap-east", 8.0),
    ("yyz", 1, "ca-central", -5.0),
)
MODELS: tuple[str, ...] = ("storage-v3", "storage-v4", "flash-v2")


@dataclass(frozen=True)
class SimSpec:
    """How big the simulated fleet is and how fast its time runs.

    `speed` is simulated seconds per real second; `action_delay_scale` multiplies the
    realistic duration of every action (1.0 = realistic, 0.02 for fast tests).
    """

    appliances: int = 200
    sites: int = 10
    seed: int = 0
    speed: float = 1.0
    action_delay_scale: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.appliances <= MAX_APPLIANCES:
            problems.append(f"appliances must be in 1..{MAX_APPLIANCES}, got {self.appliances}")
        if not 1 <= self.sites <= self.appliances:
            problems.append(f"sites must be in 1..appliances, got {self.sites}")
        if not (math.isfinite(self.speed) and self.speed > 0):
            problems.append(f"speed must be a number > 0, got {self.speed}")
        if not (math.isfinite(self.action_delay_scale) and self.action_delay_scale >= 0):
            problems.append(f"action_delay_scale must be >= 0, got {self.action_delay_scale}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Topology:
    """Row i of every fleet array is appliance `ids[i]`, in site `sites[site_index[i]]`."""

    ids: tuple[str, ...]
    sites: tuple[str, ...]
    site_index: npt.NDArray[np.intp]
    site_utc_offset_h: npt.NDArray[np.float64]
    labels: tuple[dict[str, str], ...]
    index: dict[str, int]
    site_rows: dict[str, npt.NDArray[np.intp]]

    @property
    def n(self) -> int:
        """Number of appliances."""
        return len(self.ids)

    def rows_for(self, target: str) -> npt.NDArray[np.intp] | None:
        """Rows of an appliance id or of every appliance of a site; None if unknown."""
        if target in self.index:
            return np.array([self.index[target]], dtype=np.intp)
        return self.site_rows.get(target)


def site_codes(count: int) -> list[tuple[str, str, float]]:
    """`count` distinct (site code, region, UTC offset) triples: sea01, ams02, fra01, ..."""
    out = []
    for k in range(count):
        city, first, region, offset = CITIES[k % len(CITIES)]
        number = first + 10 * (k // len(CITIES))
        out.append((f"{city}{number:02d}", region, offset))
    return out


def build_topology(spec: SimSpec) -> Topology:
    """Spread the appliances evenly over the sites; the first sites take the remainder."""
    rng = np.random.default_rng(spec.seed)
    codes = site_codes(spec.sites)
    per_site, extra = divmod(spec.appliances, spec.sites)
    ids: list[str] = []
    labels: list[dict[str, str]] = []
    site_of: list[int] = []
    models = rng.choice(len(MODELS), size=spec.appliances, p=[0.5, 0.3, 0.2])
    for s, (code, region, _) in enumerate(codes):
        for j in range(per_site + (1 if s < extra else 0)):
            ids.append(f"{code}-oca-{j + 1:03d}")
            labels.append({"region": region, "model": MODELS[int(models[len(site_of)])]})
            site_of.append(s)
    site_index = np.array(site_of, dtype=np.intp)
    sites = tuple(c for c, _, _ in codes)
    return Topology(
        ids=tuple(ids),
        sites=sites,
        site_index=site_index,
        site_utc_offset_h=np.array([o for _, _, o in codes], dtype=np.float64),
        labels=tuple(labels),
        index={a: i for i, a in enumerate(ids)},
        site_rows={c: np.flatnonzero(site_index == s) for s, c in enumerate(sites)},
    )
