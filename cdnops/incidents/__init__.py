"""Incidents: anomalies grouped into one incident per problem, correlated, silenced, triaged."""
