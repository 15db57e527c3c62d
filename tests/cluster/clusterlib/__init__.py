"""Build, start and stop the single-machine test cluster (see tests/cluster/README.md)."""
