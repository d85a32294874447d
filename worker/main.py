"""Worker entry point: `celery -A btq.worker.main worker` (or `btq worker`). Settings are read here, once."""

import os

from btq.worker.celery.app import create_app
from btq.worker.settings import WorkerSettings

# A local cost map: otherwise every process waits on a download that the network may not allow.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

app = create_app(WorkerSettings())
