"""Faust agents: ingest (validate + window), window timer, jobs (consolidate + write)."""
