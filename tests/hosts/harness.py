"""Simulated hosts on one machine: Linux namespaces on a bridge, an infra host with Redis and S3.

Each `Host` is a network namespace wired to a Linux bridge by a veth pair (its own IP on a /24 picked at
random per run), with its own UTS hostname, its own PID namespace (pid 1 is an anchor process, so the
pids of different hosts collide as they do on real machines) and its own mount namespace with a private
tmpfs `/tmp`: no directory is shared between hosts except the read-only use of the repository and its
virtualenv. The infra host runs redis-server and the moto S3 server, bound to its IP; the test process
reaches them through the bridge's own address.

Killing a host SIGKILLs its anchor, which ends every process of its PID namespace at once (a machine
losing power). Partitioning a host takes its veth link down; healing brings it back up.

Everything made is recorded and removed by `Network.close()`, which the fixtures call in a finalizer and
an `atexit` hook calls again for whatever a crashed run left.
"""

import atexit
import importlib.util
import os
import random
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
_REDIS_ARGV = ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", "/tmp"]


OUTER_TMP = "/run/btq-hosts-outer-tmp"
"""Where a host's mount namespace keeps the machine's /tmp before hiding it under its own tmpfs."""


def kept_under_tmp() -> list[str]:
    """Paths (relative to /tmp) a host must still see under its private /tmp: the checkout and the venv.

    A checkout in /tmp (CI clones there) would otherwise vanish under the host's tmpfs, and with it the
    code and the interpreter its workers run.
    """
    tmp = Path("/tmp").resolve()
    wanted = {ROOT.resolve(), Path(sys.prefix).resolve()}
    for package in ("btq.schemas", "btq.producer", "btq.worker"):  # an editable install's sources
        spec = importlib.util.find_spec(package)
        if spec is not None:
            wanted |= {Path(p).resolve() for p in spec.submodule_search_locations or []}
    kept: list[str] = []
    for path in sorted(wanted):
        if path.is_relative_to(tmp) and not any(path.is_relative_to(tmp / k) for k in kept):
            kept.append(path.relative_to(tmp).as_posix())
    return kept


def private_tmp_script(size: str) -> str:
    """Shell commands giving a host its own tmpfs on /tmp, with `kept_under_tmp()` bound back in place."""
    kept = kept_under_tmp()
    if not kept:
        return f"mount -t tmpfs -o size={size} tmpfs /tmp"
    steps = [f"mkdir -p {OUTER_TMP}", f"mount --bind /tmp {OUTER_TMP}", f"mount -t tmpfs -o size={size} tmpfs /tmp"]
    for rel in kept:
        inner, outer = shlex.quote(f"/tmp/{rel}"), shlex.quote(f"{OUTER_TMP}/{rel}")
        steps += [f"mkdir -p {inner}", f"mount --bind {outer} {inner}"]
    return " && ".join(steps)


def _unshare_in(netns: str) -> list[str]:
    return ["ip", "netns", "exec", netns, "unshare", "--uts", "--mount", "--pid", "--fork", "--mount-proc"]


_OPEN: list["Network"] = []


class Unavailable(Exception):
    """This machine cannot make namespaces (not root, no iproute2/unshare/nsenter, or refused)."""


def _run(argv: Sequence[str], timeout_s: float = 30, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def check_available() -> None:
    """Raise `Unavailable` with the reason when namespaces cannot be made here."""
    if os.geteuid() != 0:
        raise Unavailable("not root")
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is not installed")
    probe = subprocess.run(
        ["unshare", "--net", "--uts", "--mount", "--pid", "--fork", "--mount-proc", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        raise Unavailable(f"unshare refused: {probe.stderr.strip()}")


def _free_subnet() -> str:
    """A random 10.a.b.0/24 prefix ("10.a.b") no interface of this machine uses."""
    used = _run(["ip", "-o", "-4", "addr"]).stdout
    for _ in range(50):
        prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        if f" {prefix}." not in used:
            return prefix
    raise Unavailable("no free 10.x.y.0/24 found")


@dataclass
class Host:
    """One simulated machine; `popen` runs a command inside it."""

    network: "Network"
    name: str
    hostname: str
    ip: str
    netns: str
    veth: str
    anchor: subprocess.Popen[bytes] | None = None
    init_pid: int = 0
    """Global pid of the host's pid 1 (the anchor); `nsenter --target` joins its namespaces."""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    partitioned: str = ""
    """The partition mode in force ('' when connected)."""

    def start(self) -> None:
        """Start the anchor: new UTS, mount and PID namespaces inside the netns, a tmpfs on /tmp."""
        size = self.network.tmp_size
        script = f"hostname {self.hostname} && {private_tmp_script(size)} && echo up && exec sleep infinity"
        self.anchor = subprocess.Popen(
            [*_unshare_in(self.netns), "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        anchor = self.anchor

        def init() -> int:
            if anchor.poll() is not None:
                raise RuntimeError(f"host {self.name}: anchor exited {anchor.returncode}")
            try:
                children = Path(f"/proc/{anchor.pid}/task/{anchor.pid}/children").read_text().split()
            except OSError:
                return 0
            if not children:
                return 0
            pid = int(children[0])
            # Ready once the child has become `sleep` (hostname set, /tmp mounted).
            return pid if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep" else 0

        self.init_pid = int(wait_until(init, 30, f"host {self.name} anchor"))

    def nsenter(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's namespaces (network, UTS, mount, PID)."""
        return ["nsenter", "--target", str(self.init_pid), "--net", "--uts", "--mount", "--pid", "--", *argv]

    def popen(self, argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start `argv` inside the host (cwd = the repository), its output appended to `log` (outside the host)."""
        proc = subprocess.Popen(
            self.nsenter(argv),
            cwd=ROOT,
            env=dict(env),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout_s: float = 60) -> str:
        """Run `argv` inside the host to completion and return its stdout."""
        return _run(self.nsenter(argv), timeout_s).stdout

    def inner_pid(self, proc: subprocess.Popen[bytes]) -> int:
        """The pid (in this host's PID namespace) of the process `popen` started."""

        def child() -> int:
            try:
                kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            except OSError:
                return 0
            return int(kids[0]) if kids else 0

        outer = int(wait_until(child, 30, f"{self.name}: child of nsenter {proc.pid}"))
        for line in Path(f"/proc/{outer}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])  # the last is the pid in the innermost namespace
        raise RuntimeError("no NSpid in /proc status")

    def kill(self) -> None:
        """SIGKILL every process of the host at once (its pid 1 takes its namespace down with it)."""
        if self.init_pid and Path(f"/proc/{self.init_pid}").exists():
            os.kill(self.init_pid, signal.SIGKILL)
        for proc in [*self.procs, *([self.anchor] if self.anchor else [])]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()

    def partition(self, mode: str = "link") -> None:
        """Cut the host off the network; its sockets stay open.

        `link`: the veth link goes down (the host sees no carrier: connects fail at once with "no route").
        `silent`: the veth leaves the bridge with its link up, so every frame vanishes without an answer,
        as behind a failed switch or router (sends wait for TCP timeouts, connects time out).
        """
        if mode not in ("link", "silent"):
            raise ValueError(f"partition mode: 'link' or 'silent', not {mode!r}")
        self.partitioned = mode
        if mode == "link":
            _run(["ip", "link", "set", self.veth, "down"])
        else:
            _run(["ip", "link", "set", self.veth, "nomaster"])

    def heal(self) -> None:
        """Undo `partition`: the link up again and back on the bridge."""
        _run(["ip", "link", "set", self.veth, "master", self.network.bridge, "up"])
        self.partitioned = ""


@dataclass
class Network:
    """A bridge, its hosts and the infra host's servers; `close()` removes all of it."""

    prefix: str = field(default_factory=_free_subnet)
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: dict[str, Host] = field(default_factory=dict)
    logs: Path = field(default_factory=lambda: Path(os.environ.get("BTQ_HOSTS_LOGS", "/var/tmp")))
    redis_port: int = 6379
    s3_port: int = 5000
    bucket: str = "btq-hosts"
    tmp_size: str = "256m"
    """Size bound of each host's private /tmp (a tmpfs: memory is used only as files fill it)."""
    _closed: bool = False

    def __post_init__(self) -> None:
        self.bridge = f"btqbr{self.tag}"
        self.gateway = f"{self.prefix}.1"
        self.logs = self.logs / f"btq-hosts-{self.tag}"
        self.logs.mkdir(parents=True, exist_ok=True)
        _OPEN.append(self)
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])

    def add_host(self, name: str, hostname: str | None = None) -> Host:
        """Create host `name` (its IP is the next free address; `hostname` defaults to btq-<name>)."""
        index = len(self.hosts) + 2
        host = Host(
            network=self,
            name=name,
            hostname=hostname or f"btq-{name}",
            ip=f"{self.prefix}.{index}",
            netns=f"btq-{self.tag}-{name}",
            veth=f"btqv{self.tag}{index}",
        )
        self.hosts[name] = host
        peer = f"btqp{self.tag}{index}"
        _run(["ip", "netns", "add", host.netns])
        _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", peer])
        _run(["ip", "link", "set", peer, "netns", host.netns])
        _run(["ip", "link", "set", host.veth, "master", self.bridge, "up"])
        inside = ["ip", "netns", "exec", host.netns, "ip"]
        _run([*inside, "link", "set", peer, "name", "eth0"])
        _run([*inside, "addr", "add", f"{host.ip}/24", "dev", "eth0"])
        _run([*inside, "link", "set", "eth0", "up"])
        _run([*inside, "link", "set", "lo", "up"])
        host.start()
        return host

    # --- the infra host -------------------------------------------------------------------------

    def start_infra(self, s3: bool = True) -> Host:
        """Host `infra`: redis-server and (unless `s3` is False) the moto S3 server on its IP, with a bucket."""
        infra = self.add_host("infra")
        infra.popen(
            [*_REDIS_ARGV, "--bind", infra.ip, "--port", str(self.redis_port)],
            os.environ,
            self.logs / "redis.log",
        )
        wait_until(self._redis_answers, 60, "redis-server on the infra host", 0.2)
        if s3:
            moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
            infra.popen([moto, "-H", infra.ip, "-p", str(self.s3_port)], os.environ, self.logs / "moto.log")
            wait_until(self._s3_answers, 90, "moto S3 server on the infra host", 0.3)
            self.s3_client().create_bucket(Bucket=self.bucket)  # type: ignore[attr-defined]
        return infra

    @property
    def infra(self) -> Host:
        return self.hosts["infra"]

    def redis_url(self, db: int = 0) -> str:
        return f"redis://{self.infra.ip}:{self.redis_port}/{db}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.infra.ip}:{self.s3_port}"

    def s3_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": "btq-test",
            "AWS_SECRET_ACCESS_KEY": "btq-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def s3_client(self) -> object:
        import boto3

        env = self.s3_env()
        return boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )

    def _redis_answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.redis_url(), socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def _s3_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.s3_url}/moto-api/", timeout=2):
                return True
        except OSError:
            return False

    # --- cleanup --------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every host's processes, delete the namespaces, veths and the bridge (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for host in self.hosts.values():
            try:
                host.kill()
            except (OSError, subprocess.SubprocessError) as exc:
                print(f"btq hosts: killing {host.name} failed: {exc}", file=sys.stderr)
            _run(["ip", "link", "del", host.veth], check=False)
            _run(["ip", "netns", "del", host.netns], check=False)
        _run(["ip", "link", "del", self.bridge], check=False)
        if self in _OPEN:
            _OPEN.remove(self)


@atexit.register
def _close_all() -> None:
    for network in list(_OPEN):
        network.close()


def worker_env(network: Network, queue: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A worker's environment on a simulated host: Redis and S3 on the infra host, no shared directory."""
    return {
        **os.environ,
        **network.s3_env(),
        "BTQ_REDIS_URL": network.redis_url(0),
        "BTQ_QUEUE": queue,
        "BTQ_ARTIFACT_DIR": f"s3://{network.bucket}/artifacts",
        "BTQ_IMPORTS": '["tests.fixture_registry"]',
        "PYTHONPATH": str(ROOT),
        "BTQ_SHARD_MIN_EXAMPLES": "2",  # small shards: the small valsets are really spread over the hosts
        "HOME": "/tmp",  # caches land in the host's private /tmp
        "XDG_CACHE_HOME": "/tmp/.cache",
        **(extra or {}),
    }


def start_worker(
    host: Host, name: str, queue: str, extra_env: Mapping[str, str] | None = None, pool: str = "prefork"
) -> subprocess.Popen[bytes]:
    """Start a worker on `host` with the same argv as the single-host fleet (tests/conftest.py)."""
    from btq.producer.fleet.worker_command import worker_argv

    argv = worker_argv(queue=queue, pool=pool, name=f"{name}@%h")
    return host.popen(argv, worker_env(host.network, queue, extra_env), host.network.logs / f"{name}.log")


def worker_ready(network: Network, name: str, proc: subprocess.Popen[bytes]) -> bool:
    """True once the worker logged `ready.`; raise if it exited."""
    log = network.logs / f"{name}.log"
    if proc.poll() is not None:
        raise AssertionError(f"worker {name} exited:\n{log.read_text()[-3000:]}")
    return "ready." in log.read_text()
