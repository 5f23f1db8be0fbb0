"""HTTP side: /metrics, /healthz and (later) /api/v1."""
