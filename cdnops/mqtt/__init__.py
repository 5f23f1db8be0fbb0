"""MQTT: events published from a durable outbox in the store, and the command topic."""
