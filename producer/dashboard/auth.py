"""Optional bearer token: when set, every request must carry it (header, cookie, or `?token=` once)."""

import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from btq.producer.dashboard.guard import PROBE_PATHS

COOKIE = "btq_dashboard_token"


def presented_token(request: Request) -> str | None:
    """Return the token a request carries: `Authorization: Bearer`, the cookie, or `?token=`."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE) or request.query_params.get("token")


class TokenAuth:
    """ASGI middleware refusing (401) requests without the token; a `?token=` visit sets a cookie.

    The cookie lets the browser's EventSource (which cannot send headers) and the cancel button
    authenticate; it is HttpOnly and SameSite=Strict so another site cannot make the browser cancel.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass authenticated requests on; answer the others with 401."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if scope["path"] in PROBE_PATHS:  # up/ready only: a kubelet or load balancer probe has no token
            await self.app(scope, receive, send)
            return
        given = presented_token(request)
        if given is None or not secrets.compare_digest(given.encode(), self.token.encode()):
            response: Response = JSONResponse(
                {"error": "unauthorized: send the dashboard token (Authorization: Bearer ...)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        if request.query_params.get("token") and request.cookies.get(COOKIE) != self.token:

            async def send_with_cookie(message: dict[str, object]) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))  # type: ignore[call-overload]
                    cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                    headers.append((b"set-cookie", cookie.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            await self.app(scope, receive, send_with_cookie)  # type: ignore[arg-type]
            return
        await self.app(scope, receive, send)
