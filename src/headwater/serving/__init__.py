"""Serving: the push-ingestion endpoint (``ingest``); the dashboard API comes later."""
