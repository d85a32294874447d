"""The live worker fleet as a producer sees it: manifests, routing, validation against them, liveness."""

from btq.producer.fleet.view import FleetView, LiveWorker, missing_entries, named_entries, union

__all__ = ["FleetView", "LiveWorker", "missing_entries", "named_entries", "union"]
