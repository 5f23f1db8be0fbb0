"""What the tracker needs to know about the fleet each tick, cached per inventory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from cdnops.model import ApplianceState, CodeArray, FleetFrame, Inventory


class FleetView:
    """Rows by id, which appliances are excluded (drained, maintenance...), site sizes.

    An appliance whose poll fails has state UNKNOWN; it keeps its last known state
    here, so one in maintenance that stops answering is still excluded.
    """

    def __init__(self, excluded_states: Iterable[str]) -> None:
        self.set_excluded(excluded_states)
        self._inventory: Inventory | None = None
        self._index: dict[str, int] = {}
        self._state: CodeArray = np.zeros(0, np.int8)
        self._rows_by_site: dict[str, list[int]] = {}
        self.excluded = np.zeros(0, dtype=bool)
        self.site_sizes: dict[str, int] = {}
        self.n_sites = 0

    def set_excluded(self, states: Iterable[str]) -> None:
        """Which states exclude an appliance (`drained`, ...), from the next update on."""
        self._codes = np.array([ApplianceState[s.upper()] for s in states], np.int8)

    def update(self, frame: FleetFrame) -> None:
        """Take in one tick's states; O(n) numpy, O(sites) Python."""
        if frame.inventory is not self._inventory:
            self._relayout(frame.inventory)
        known = frame.state != ApplianceState.UNKNOWN
        self._state[known] = frame.state[known]
        self.excluded = np.isin(self._state, self._codes)
        sizes = np.bincount(frame.site_index[~self.excluded], minlength=len(frame.sites))
        self.site_sizes = dict(zip(frame.sites, sizes.tolist(), strict=True))
        self.n_sites = int(np.count_nonzero(sizes))

    def _relayout(self, inventory: Inventory) -> None:
        old = {a: int(self._state[i]) for a, i in self._index.items()}
        self._inventory = inventory
        self._index = inventory.index()
        self._state = np.array(
            [old.get(a.id, ApplianceState.UNKNOWN) for a in inventory.appliances], np.int8
        )
        self._rows_by_site = {}
        for i, a in enumerate(inventory.appliances):
            self._rows_by_site.setdefault(a.site, []).append(i)

    def is_excluded(self, appliance: str) -> bool:
        """Whether the appliance cannot have incidents now; unknown appliances are excluded."""
        row = self._index.get(appliance)
        return row is None or bool(self.excluded[row])

    def labels(self, appliance: str) -> Mapping[str, str]:
        """The appliance's inventory labels."""
        row = self._index.get(appliance)
        if row is None or self._inventory is None:
            return {}
        return self._inventory.appliances[row].labels

    def site_appliances(self, site: str) -> list[str]:
        """The ids of a site's appliances, in inventory order."""
        if self._inventory is None:
            return []
        apps = self._inventory.appliances
        return [apps[i].id for i in self._rows_by_site.get(site, [])]
