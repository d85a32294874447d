"""Where a worker's OpenTelemetry spans go: OTLP over HTTP, or a JSON-lines file (one span per line).

The JSON-lines exporter exists for tests and for a fleet without a collector: every process appends whole
lines to one file (`O_APPEND` writes of one line each), which `jq` or a test reads back.
"""

import json
import os
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """Return one span as plain JSON: ids in hex as in W3C trace context, times in unix nanoseconds."""
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "resource": dict(span.resource.attributes),
    }


class JsonLinesSpanExporter(SpanExporter):  # type: ignore[misc]
    """Appends each finished span as one JSON line to `path` (safe with many processes on one file)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Write the batch; one `write` per line keeps lines whole across processes."""
        lines = [json.dumps(span_record(span), default=str) + "\n" for span in spans]
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                for line in lines:
                    os.write(fd, line.encode())
            finally:
                os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is held open between batches."""
