"""A warning at worker start: workers on other hosts cannot read fine-tunes from this worker's local directory.

A fine-tune published by one worker is served by any worker (a later step, a shard, `JobClient.program`),
so the fleet needs one store all of them reach. A plain directory is shared only by workers on one host
(or on a mount every host sees, which a worker cannot tell), so the worker says so once, naming the
other hosts, instead of a step failing later on a model it cannot find.
"""

import logging
import socket
from urllib.parse import urlparse

import redis

from btq.worker.state import fleet

log = logging.getLogger(__name__)


def is_local(artifact_dir: str) -> bool:
    """Whether the artifact store is a directory on this host (a path or file:// URL), not an object store."""
    scheme = urlparse(artifact_dir).scheme
    return scheme in ("", "file") or len(scheme) == 1  # a Windows drive letter is a path too


def other_hosts(client: redis.Redis, me: str) -> list[str]:
    """Return the hosts of live workers (Celery names `name@host`) other than this one's."""
    here = {socket.gethostname(), me.partition("@")[2]} - {""}
    hosts = {record.worker.partition("@")[2] for record in fleet.live_records(client)}
    return sorted(h for h in hosts if h and h not in here)


def warn_if_unshared(client: redis.Redis, me: str, artifact_dir: str) -> str | None:
    """Log (and return) a warning when the store is local and live workers run on other hosts."""
    if not is_local(artifact_dir):
        return None
    hosts = other_hosts(client, me)
    if not hosts:
        return None
    message = (
        f"artifact dir {artifact_dir} is local to this host, but live workers run on {', '.join(hosts)}: "
        "fine-tunes published here are not found there (and theirs not here) unless every host mounts this "
        "directory; set BTQ_ARTIFACT_DIR to a shared mount or s3://bucket/prefix"
    )
    log.warning(message)
    return message
