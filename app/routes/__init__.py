"""HTTP blueprints: data (records), health (probes, metrics) and ops (cache test, config)."""
