"""The REST API: Segment-compatible ingest, leads, playbook, reports (FastAPI)."""
