"""The fleet model: numpy state for every appliance, advanced in one vectorized step."""

from __future__ import annotations

import math

import numpy as np

from cdnops.model import CONTRACT_METRICS
from cdnops.sim.effects import SVC_DEGRADED, Effects
from cdnops.sim.topology import Topology

M = {name: j for j, name in enumerate(CONTRACT_METRICS)}
INT_COLUMNS = ("active_connections", "requests_total", "disk_errors_total", "nic_errors_total")
# Decimal places kept per metric, so bodies look like an appliance's, not like float noise.
DECIMALS = {
    "cpu_util": 4,
    "mem_util": 4,
    "egress_gbps": 3,
    "cache_hit_ratio": 4,
    "http_5xx_ratio": 6,
    "origin_latency_p99_ms": 1,
    "tcp_retransmit_ratio": 5,
    "temperature_c": 1,
}
_ROUND_COLS = np.array([M[name] for name in DECIMALS])
_ROUND_SCALE = np.array([10.0**places for places in DECIMALS.values()])
NIC_CAPACITY_GBPS = 100.0
REQUESTS_PER_GBPS = 130.0  # requests/s per Gbps of egress: objects of about 1 MB
CONNECTIONS_PER_GBPS = 1340.0
HIT_RECOVERY_TAU_S = 180.0  # after a purge the hit ratio comes back over minutes
THERMAL_TAU_S = 60.0
NOISE_TAU_S = 30.0
NOISE_BLOCKS = 4  # each step refreshes the noise of one row in four
THROTTLE_C = 85.0
STATE_SERVING, STATE_DRAINING, STATE_DRAINED = 0, 1, 2
STATE_NAMES = ("serving", "draining", "drained")
DISK_BASE_RATE, NIC_BASE_RATE = 2e-6, 5e-6  # errors/s of a healthy appliance


def diurnal(local_hour: np.ndarray) -> np.ndarray:
    """Share of the daily peak: about 0.3 around 05:30, about 1.0 around 20:00 local time."""
    x = 2 * np.pi * local_hour / 24.0
    return (
        0.6 + 0.32 * np.cos(x - 2 * np.pi * 19.5 / 24) + 0.08 * np.cos(2 * x - 2 * np.pi * 21 / 12)
    )


class Fleet:
    """Static traits, dynamic state and the latest metrics of every appliance.

    Row i is `topology.ids[i]`. `step` moves the model to a new sim time; the HTTP side
    reads `values` (n x 12, rounded), `services`, `state` and `boot_sim` between steps.
    """

    def __init__(self, topology: Topology, *, seed: int, sim_now: float) -> None:
        n, s = topology.n, len(topology.sites)
        self.topology = topology
        self.rng = np.random.default_rng(seed + 1)
        rng = self.rng
        self.site_index = topology.site_index
        self.site_count = np.bincount(self.site_index, minlength=s).astype(np.float64)
        self._draw_traits(n, s)
        self.boot_sim = sim_now - rng.uniform(2 * 86400.0, 60 * 86400.0, n)
        uptime = sim_now - self.boot_sim
        self.requests = np.floor(uptime * rng.uniform(2500.0, 4000.0, n))
        # Requests/s since the last step: counters are integrated with it (left sum) and
        # extrapolated with it between steps, so they stay monotonic at any speed.
        self.req_rate = np.zeros(n)
        self.disk_errors = rng.poisson(uptime * DISK_BASE_RATE).astype(np.float64)
        self.nic_errors = rng.poisson(uptime * NIC_BASE_RATE).astype(np.float64)
        self.state = np.zeros(n, dtype=np.int8)
        self.drain_from = np.zeros(n)  # real time a drain started
        self.drain_for = np.ones(n)  # real seconds it takes
        self.down = np.zeros(n, dtype=np.bool_)
        self.purge_sim = np.full(n, -np.inf)
        self.temp = self.base_temp + 10.0
        # float32: the noise is the largest per-step draw, and its precision does not matter.
        self.noise = rng.standard_normal((n, 6), dtype=np.float32)
        self.values = np.zeros((n, len(CONTRACT_METRICS)))
        self.services = np.zeros((n, 3), dtype=np.int8)
        self.service_key = np.zeros(n, dtype=np.intp)
        # What a health answer reads, one row per appliance: the 12 metrics, then boot
        # time, request rate, state and service key, so that rendering takes one
        # `tolist()` instead of a numpy scalar per field.
        self.table = np.zeros((n, len(CONTRACT_METRICS) + 4))
        self.row_id = list(topology.ids)
        self.row_site = [topology.sites[s] for s in topology.site_index.tolist()]
        self.last_sim = sim_now
        self._noise_block = 0
        self._noise_sim = [sim_now] * NOISE_BLOCKS

    def _draw_traits(self, n: int, s: int) -> None:
        """What makes each appliance and site a little different, fixed for the run."""
        rng = self.rng
        self.peak_gbps = rng.uniform(36.0, 48.0, n)
        self.base_mem = rng.uniform(0.5, 0.7, n)
        self.base_hit = rng.uniform(0.955, 0.985, n)
        self.base_5xx = rng.lognormal(math.log(3e-4), 0.4, n)
        self.base_retx = rng.uniform(0.0012, 0.0028, n)
        self.base_temp = rng.uniform(38.0, 44.0, n)
        self.site_latency = rng.uniform(55.0, 120.0, s)

    @property
    def n(self) -> int:
        """Number of appliances."""
        return self.topology.n

    def weights(self, real_now: float) -> np.ndarray:
        """Each appliance's share of its site's traffic: 1 serving, ramping to 0 when draining."""
        w = np.where(self.state == STATE_SERVING, 1.0, 0.0)
        draining = self.state == STATE_DRAINING
        if draining.any():
            left = 1.0 - (real_now - self.drain_from[draining]) / self.drain_for[draining]
            w[draining] = np.clip(left, 0.0, 1.0)
        w[self.down] = 0.0
        return w

    def reboot_done(self, row: int, sim_now: float) -> None:
        """Back from a reboot: fresh uptime, counters from zero, cache partly cold."""
        self.down[row] = False
        self.boot_sim[row] = sim_now
        self.requests[row] = self.disk_errors[row] = self.nic_errors[row] = 0.0
        self.req_rate[row] = 0.0
        self.temp[row] = self.base_temp[row] + 5.0

    def step(self, sim_now: float, real_now: float, fx: Effects) -> None:
        """Advance counters and recompute every metric for the whole fleet."""
        dt = max(sim_now - self.last_sim, 0.0)
        self.last_sim = sim_now
        self._stir_noise(sim_now)
        w = self.weights(real_now) * ~fx.withdraw
        egress = self._egress(sim_now, w, fx)
        raw = self._gauges(sim_now, dt, w, egress, fx)
        self._count(dt, w, egress, fx)
        raw[:, M["requests_total"]] = self.requests
        raw[:, M["disk_errors_total"]] = self.disk_errors
        raw[:, M["nic_errors_total"]] = self.nic_errors
        for rows, metric, value in fx.flaps:
            raw[rows, M[metric]] = value
        rounded = raw[:, _ROUND_COLS] * _ROUND_SCALE
        np.rint(rounded, out=rounded)
        raw[:, _ROUND_COLS] = rounded / _ROUND_SCALE
        self.values = raw
        self._services(raw, fx)
        self.table = np.column_stack(
            (raw, self.boot_sim, self.req_rate, self.state, self.service_key)
        )

    def _stir_noise(self, sim_now: float) -> None:
        """Advance the AR(1) noise of one block of rows (the draw is the costliest part)."""
        block = self._noise_block = (self._noise_block + 1) % NOISE_BLOCKS
        rows = slice(block, None, NOISE_BLOCKS)
        dt = max(sim_now - self._noise_sim[block], 0.0)
        self._noise_sim[block] = sim_now
        a = math.exp(-dt / NOISE_TAU_S)
        part = self.noise[rows]
        fresh = self.rng.standard_normal(part.shape, dtype=np.float32)
        fresh *= np.float32(math.sqrt(1 - a * a))
        part *= np.float32(a)
        part += fresh

    def _egress(self, sim_now: float, w: np.ndarray, fx: Effects) -> np.ndarray:
        site_w = np.bincount(self.site_index, weights=w, minlength=len(self.site_count))
        hour = ((sim_now / 3600.0) + self.topology.site_utc_offset_h) % 24.0
        # Site traffic is shared by its serving appliances: draining one raises its peers.
        per_unit = np.where(site_w > 0, self.site_count / np.maximum(site_w, 1e-9), 0.0)
        share = w * per_unit[self.site_index]
        level = diurnal(hour)[self.site_index] * fx.traffic
        egress = self.peak_gbps * level * share * (1 + 0.04 * self.noise[:, 0]) * fx.egress
        throttled = self.temp > THROTTLE_C
        egress[throttled] *= 0.8
        return np.asarray(np.clip(egress, 0.0, NIC_CAPACITY_GBPS))

    def _gauges(
        self, now: float, dt: float, w: np.ndarray, egress: np.ndarray, fx: Effects
    ) -> np.ndarray:
        nz = self.noise
        out = np.empty_like(self.values)
        throttled = self.temp > THROTTLE_C
        out[:, M["cpu_util"]] = np.clip(
            0.04 + 0.0092 * egress + 0.015 * nz[:, 1] + 0.3 * throttled, 0.01, 1.0
        )
        mem = self.base_mem + 0.01 * nz[:, 2]
        out[:, M["mem_util"]] = np.clip(mem + (0.995 - mem) * fx.leak, 0.05, 0.999)
        out[:, M["egress_gbps"]] = egress
        out[:, M["active_connections"]] = np.floor(egress * CONNECTIONS_PER_GBPS)
        recovered = 1.0 - np.exp(-(now - self.purge_sim) / HIT_RECOVERY_TAU_S)
        hit = (self.base_hit * recovered + 0.25 * (1 - recovered)) * fx.hit_mult
        hit = np.minimum(hit + 0.003 * nz[:, 3], fx.hit_cap)
        out[:, M["cache_hit_ratio"]] = np.clip(hit, 0.0, 1.0)
        miss = 1.0 - out[:, M["cache_hit_ratio"]]
        out[:, M["http_5xx_ratio"]] = np.clip(
            self.base_5xx * np.exp(0.3 * nz[:, 4]) + fx.add_5xx + 0.002 * miss, 0.0, 1.0
        )
        latency = self.site_latency[self.site_index] * (1 + 0.08 * nz[:, 4]) * fx.latency_mult
        floor = fx.latency_floor * (1 + 0.05 * nz[:, 5])
        out[:, M["origin_latency_p99_ms"]] = np.maximum(latency, floor)
        retx = self.base_retx * (1 + 0.1 * nz[:, 5]) + fx.retx_add
        out[:, M["tcp_retransmit_ratio"]] = np.clip(retx, 0.0, 1.0)
        target = self.base_temp + 0.3 * egress + fx.heat * (0.35 + 0.65 * w)
        self.temp += (target - self.temp) * (1 - math.exp(-dt / THERMAL_TAU_S))
        out[:, M["temperature_c"]] = self.temp + 0.3 * nz[:, 5]
        return out

    def _count(self, dt: float, w: np.ndarray, egress: np.ndarray, fx: Effects) -> None:
        up = ~self.down
        self.requests += self.req_rate * dt
        self.req_rate = np.where(up, egress * REQUESTS_PER_GBPS, 0.0)
        self._errors(self.disk_errors, DISK_BASE_RATE * dt, fx.disk_rate * dt, up)
        self._errors(self.nic_errors, NIC_BASE_RATE * dt, fx.nic_rate * (0.1 + 0.9 * w) * dt, up)

    def _errors(self, counter: np.ndarray, base: float, extra: np.ndarray, up: np.ndarray) -> None:
        """Add Poisson error counts: the healthy rate, plus the extra rate of faulty rows."""
        # Healthy errors are rare and uniform: draw the fleet's total, then where they land,
        # instead of one Poisson draw per appliance per step.
        for row in self.rng.integers(0, self.n, self.rng.poisson(base * self.n)).tolist():
            counter[row] += up[row]
        faulty = np.flatnonzero((extra > 0) & up)
        if len(faulty):
            counter[faulty] += self.rng.poisson(extra[faulty])

    def _services(self, values: np.ndarray, fx: Effects) -> None:
        svc = fx.svc.copy()
        leaking = values[:, M["mem_util"]] > 0.92
        svc[leaking, 0] = np.maximum(svc[leaking, 0], SVC_DEGRADED)
        self.services = svc
        # Index into the renderer's table of service combinations (4 codes per service).
        self.service_key = (svc[:, 0] * 16 + svc[:, 1] * 4 + svc[:, 2]).astype(np.intp)
