"""Per-metric constants of the detectors, laid out as column vectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cdnops.config.detect import DetectConfig, Direction
from cdnops.detect.windows import F32, STATE_DTYPE
from cdnops.model import BoolArray


@dataclass(frozen=True, slots=True)
class Columns:
    """What every detector needs to know about each metric column, as (m,) arrays."""

    metrics: tuple[str, ...]
    up: F32  # 1 where a rise is bad
    down: F32  # 1 where a drop is bad
    neg_down: F32  # -down, so a drop's z-score turns positive in one multiplication
    temporal: BoolArray
    peers: BoolArray
    traffic: BoolArray
    min_var: F32  # squared sigma floor: the smallest spread that matters, per metric
    above: F32  # NaN where there is no upper bound
    below: F32
    counter_limit: F32  # NaN where the counter detector is off
    hard_above: F32  # the lower of `above` and `counter_limit` (NaN where neither)
    trend_cols: npt.NDArray[np.intp]  # columns with a ceiling
    ceiling: F32  # (len(trend_cols),)
    horizon_s: F32

    @classmethod
    def build(cls, cfg: DetectConfig, metrics: Sequence[str]) -> Columns:
        """Resolve the config against the metric list; unknown metrics get the default rule."""
        rules = [cfg.rule(name) for name in metrics]
        nan = np.float32(np.nan)

        def vec(values: Sequence[float | None]) -> F32:
            return np.array([nan if v is None else v for v in values], STATE_DTYPE)

        bounds = [cfg.bounds.get(name) for name in metrics]
        trend = [(j, cfg.trend[name]) for j, name in enumerate(metrics) if name in cfg.trend]
        down = vec([float(r.direction in (Direction.DOWN, Direction.BOTH)) for r in rules])
        above = vec([b.above if b else None for b in bounds])
        counter_limit = vec([cfg.counters.get(name) for name in metrics])
        return cls(
            metrics=tuple(metrics),
            up=vec([float(r.direction in (Direction.UP, Direction.BOTH)) for r in rules]),
            down=down,
            neg_down=-down,
            temporal=np.array([r.temporal and cfg.temporal.enabled for r in rules], np.bool_),
            peers=np.array([r.peers and cfg.peers.enabled for r in rules], np.bool_),
            traffic=np.array([r.traffic for r in rules], np.bool_),
            min_var=vec([max(r.min_sigma, cfg.temporal.abs_floor) ** 2 for r in rules]),
            above=above,
            below=vec([b.below if b else None for b in bounds]),
            counter_limit=counter_limit,
            hard_above=np.fmin(above, counter_limit),
            trend_cols=np.array([j for j, _ in trend], np.intp),
            ceiling=vec([c.ceiling for _, c in trend]),
            horizon_s=vec([c.horizon_s for _, c in trend]),
        )

    def index_of(self, names: Sequence[str]) -> npt.NDArray[np.intp] | None:
        """Column of each of our metrics in `names` (-1 if absent); None if identical."""
        if tuple(names) == self.metrics:
            return None
        where = {n: i for i, n in enumerate(names)}
        return np.array([where.get(n, -1) for n in self.metrics], np.intp)
