"""The simulated fleet, speaking the appliance contract."""

from cdnops.sim.scenario import Scenario, load_scenario
from cdnops.sim.server import SimServer
from cdnops.sim.topology import SimSpec

__all__ = ["Scenario", "SimServer", "SimSpec", "load_scenario"]
