"""Remediation: YAML playbooks turned into safe, audited executions."""
