"""Refusing requests a browser was tricked into sending: a foreign `Host` (DNS rebinding), a cross-site POST.

Without a token the dashboard relies on listening on loopback only. That alone does not stop a web page
on another site: it can point a name it controls at 127.0.0.1 (DNS rebinding) and read the API, or send
a form POST (`text/plain`, no preflight) to cancel a job. So every request must name this dashboard in
its `Host` header (the bound address, loopback names when bound to loopback, or
`BTQ_DASHBOARD_ALLOWED_HOSTS`), and a state-changing request must come from this dashboard's own pages
(`Origin` or `Sec-Fetch-Site`) or carry the token in its `Authorization` header.
"""

import secrets
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
"""Liveness and readiness: answered to any Host and without the token (an orchestrator's probe sends
neither), and they tell nothing but up/ready."""
ANY_HOST_PATHS = PROBE_PATHS | {"/metrics"}
"""Answered to any Host: a scraper names the target by its address (a pod IP); `/metrics` holds no job
data (no job ids as labels) and still needs the token when one is set."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})  # "none": typed in the address bar, a bookmark


def is_loopback(host: str) -> bool:
    """True for the loopback names a dashboard may serve without a token: 127.0.0.1, localhost, ::1.

    Other 127.x addresses are loopback too, yet they are how one machine's services are told apart
    (and what a container publishes); they count as beyond loopback, as any other address does.
    """
    return host.strip("[]").lower() in LOOPBACK_NAMES


def is_wildcard(host: str) -> bool:
    """True for the bind-everywhere addresses (0.0.0.0, ::, empty)."""
    return host.strip("[]") in {"", "0.0.0.0", "::"}


def split_host(value: str) -> tuple[str, int | None]:
    """Return (lower-case name without brackets, port or None) of a `Host` header value."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8750
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name, port = value, ""
    return name, int(port) if port.isdigit() else None


class RequestGuard:
    """ASGI middleware: 421 for a foreign `Host`, 403 for a cross-site state-changing request."""

    def __init__(
        self, app: ASGIApp, bind_host: str, port: int, allowed_hosts: Iterable[str], token: str | None
    ) -> None:
        self.app = app
        self.port = port
        self.token = token
        names = {split_host(h)[0] for h in allowed_hosts}
        self.any_host = "*" in names
        self.allowed = names - {"*"}
        self.bound = split_host(bind_host)[0]
        if not is_wildcard(bind_host):
            self.allowed.add(self.bound)
        if is_loopback(bind_host) or is_wildcard(bind_host):
            self.allowed |= LOOPBACK_NAMES

    def host_allowed(self, header: str | None) -> bool:
        """True when the `Host` header names this dashboard."""
        if self.any_host:
            return True
        if not header:
            return False
        name, port = split_host(header)
        if name in self.allowed and not (name in LOOPBACK_NAMES or name == self.bound):
            return True  # an allowlisted name: a proxy in front may use any port
        return name in self.allowed and (port is None or self.port in (0, port))

    def same_origin(self, request: Request) -> bool:
        """True when a state-changing request comes from this dashboard's own pages (or carries the token)."""
        header = request.headers.get("authorization", "")
        if self.token and header.lower().startswith("bearer "):
            # A header (unlike the cookie) is never added by a browser on its own: the caller knows the token.
            return secrets.compare_digest(header[7:].strip().encode(), self.token.encode())
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site.lower() not in _SAME_SITE_FETCH:
            return False
        origin = request.headers.get("origin")
        if origin is not None:
            return origin.lower() in {
                f"http://{request.headers.get('host', '').lower()}",
                f"https://{request.headers.get('host', '').lower()}",
            }
        # Neither header: not a browser (curl, a script); a browser always sends Origin on a cross-site POST.
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests naming this dashboard on; refuse the others."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        any_host = scope["path"] in ANY_HOST_PATHS and request.method in _SAFE_METHODS
        if not any_host and not self.host_allowed(request.headers.get("host")):
            refusal = JSONResponse(
                {"error": "host: this dashboard does not answer to that name (see BTQ_DASHBOARD_ALLOWED_HOSTS)"},
                status_code=421,
            )
            await refusal(scope, receive, send)
            return
        if request.method not in _SAFE_METHODS and not self.same_origin(request):
            refusal = JSONResponse(
                {"error": "origin: cross-site request refused (send it from the dashboard, or with the token)"},
                status_code=403,
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)
