"""Appliance side: the HTTP contract (health, actions, action status)."""
