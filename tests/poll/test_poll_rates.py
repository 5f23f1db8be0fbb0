"""Counters to rates: two good samples make a rate; a lower value is a reset, never negative."""

from __future__ import annotations

import numpy as np

from cdnops.poll.rates import CounterRates

NAN = np.nan


def tick(rates: CounterRates, values: list[float], ts: list[float]) -> tuple[list[float], int]:
    update = rates.update(np.array(values, dtype=float)[:, None], np.array(ts, dtype=float))
    assert (update.valid == np.isfinite(update.rates)).all()
    return list(update.rates[:, 0]), update.resets


def test_rate_needs_two_samples_then_is_delta_over_appliance_time() -> None:
    r = CounterRates(2, 1)
    assert np.isnan(tick(r, [100.0, 0.0], [10.0, 10.0])[0]).all()
    rates, resets = tick(r, [150.0, 40.0], [20.0, 15.0])
    assert rates == [5.0, 8.0]
    assert resets == 0


def test_reset_gives_no_rate_counts_and_rebases() -> None:
    r = CounterRates(1, 1)
    tick(r, [1000.0], [0.0])
    rates, resets = tick(r, [10.0], [10.0])
    assert np.isnan(rates[0])
    assert resets == 1
    assert r.resets_total == 1
    rates, resets = tick(r, [30.0], [20.0])
    assert rates == [2.0]  # the post-reset value is the new base
    assert resets == 0


def test_failed_poll_keeps_previous_sample_and_rate_spans_the_gap() -> None:
    r = CounterRates(1, 1)
    tick(r, [0.0], [0.0])
    assert np.isnan(tick(r, [NAN], [NAN])[0][0])
    assert tick(r, [200.0], [20.0])[0] == [10.0]


def test_no_rate_when_the_appliance_clock_does_not_advance() -> None:
    r = CounterRates(1, 1)
    tick(r, [10.0], [5.0])
    rates, resets = tick(r, [20.0], [5.0])
    assert np.isnan(rates[0])
    assert resets == 0


def test_never_negative_over_many_random_ticks() -> None:
    rng = np.random.default_rng(7)
    r = CounterRates(200, 3)
    seen_resets = 0
    for t in range(1, 30):
        cur = rng.integers(0, 1000, size=(200, 3)).astype(float)
        update = r.update(cur, np.full(200, float(t)))
        assert not (update.rates[update.valid] < 0).any()
        seen_resets += update.resets
    assert seen_resets == r.resets_total > 0


def test_remap_keeps_kept_rows_and_starts_new_ones_empty() -> None:
    r = CounterRates(3, 1)
    tick(r, [10.0, 20.0, 30.0], [0.0, 0.0, 0.0])
    r2 = r.remap([2, None, 0])
    rates, _ = tick(r2, [40.0, 50.0, 20.0], [10.0, 10.0, 10.0])
    assert rates[0] == 1.0
    assert np.isnan(rates[1])
    assert rates[2] == 1.0
