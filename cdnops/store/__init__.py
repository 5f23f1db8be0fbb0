"""The embedded store: one SQLite file for incidents (and later remediation state)."""
