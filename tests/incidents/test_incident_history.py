"""The triage history ring."""

from __future__ import annotations

import numpy as np
import pytest
from fleetkit import make_frame, make_inventory

from cdnops.incidents.history import History


def values(n: int, fill: float) -> np.ndarray:
    return np.full((n, 12), fill)


def test_window_is_oldest_first_and_wraps() -> None:
    inv = make_inventory({"sea01": 3})
    h = History(4)
    for t in range(6):
        h.append(make_frame(inv, 100.0 + t, t, values=values(3, float(t))))
    w = h.window([2, 0])
    assert w.ts.tolist() == [102.0, 103.0, 104.0, 105.0]
    assert w.values.shape == (4, 2, 12)
    assert w.values[:, 0, 0].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert w.appliances == ("sea01-a02", "sea01-a00")
    assert h.window([0], ticks=2).ts.tolist() == [104.0, 105.0]
    assert h.nbytes == 4 * 3 * 12 * 4


def test_invalid_cells_are_nan() -> None:
    inv = make_inventory({"sea01": 2})
    v = values(2, 1.0)
    v[1, 3] = np.nan
    h = History(2)
    h.append(make_frame(inv, 1.0, 1, values=v))
    w = h.window([0, 1])
    assert np.isnan(w.values[0, 1, 3])
    assert np.isfinite(w.values[0, 0, 3])


def test_inventory_change_keeps_rows_by_id() -> None:
    h = History(3)
    old = make_inventory({"lhr01": 1, "sea01": 2})
    h.append(make_frame(old, 1.0, 1, values=np.arange(3.0)[:, None] * np.ones((3, 12))))
    new = make_inventory({"ams01": 1, "sea01": 3})  # lhr01 gone, ams01 and sea01-a02 added
    h.append(make_frame(new, 2.0, 2, values=values(4, 9.0)))
    rows = h.rows(["sea01-a01", "ams01-a00", "lhr01-a00"])
    assert len(rows) == 2  # lhr01-a00 is no longer known
    w = h.window(rows)
    assert w.values[:, 0, 0].tolist() == [2.0, 9.0]  # sea01-a01 kept its past
    assert np.isnan(w.values[0, 1, 0])  # ams01-a00 has none
    assert w.values[1, 1, 0] == 9.0


def test_empty_history_window() -> None:
    h = History(3)
    h.append(make_frame(make_inventory({"sea01": 1}), 1.0, 1))
    assert h.window([0], ticks=0).values.shape == (0, 1, 12)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity_ticks must be >= 1"):
        History(0)
