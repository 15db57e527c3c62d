"""Node log collector: tails container logs, emits enriched JSON lines on stdout."""
