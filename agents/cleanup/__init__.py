"""The hourly cleanup job: one run that deletes expired records and orphaned cache keys.

Run it as ``python -m agents.cleanup [--dry-run]``; see docs/cleanup.md.
"""
