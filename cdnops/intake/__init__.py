"""Alerts from outside the daemon (Alertmanager) taken in as incidents."""
