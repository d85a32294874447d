"""Tests across simulated hosts (Linux namespaces on a bridge): no shared disk, colliding pids, partitions."""
