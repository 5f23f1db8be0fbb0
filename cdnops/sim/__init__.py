"""The simulated fleet, speaking the appliance contract."""
