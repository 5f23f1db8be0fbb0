"""Polling stage: cadence loop and health parsing."""
