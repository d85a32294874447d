"""The dspy engine of local LMs: each request goes to the llama.cpp server of its model.

Why an engine and not `lm.kwargs["api_base"]` (what dspy's sglang `LocalProvider` does): the server's
address is per worker process (a free port), but an LM's kwargs are saved in the program state and
rebuilt on another worker, where `btq.worker.core.lm_binding` refuses a saved `api_base` (an endpoint is never
taken from a payload). A fine-tuned copy would also inherit the base model's address. The engine keeps
the address out of the LM: it resolves `request.model` (base or fine-tune) to a server when the request
is made, starting it if `launch` has not. The LM's saved state holds only the model name and this
engine's (constant) state, so every worker rebuilds the same LM.
"""

import dataclasses
import functools
import importlib
import importlib.metadata
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dspy.lm15 import OpenAIChatCompat, OpenAIChatLM, Request, Response

from btq.worker.core import interrupt
from btq.worker.lm.local.models import BASE_MODELS
from btq.worker.lm.local.server import STRUCTURED

if TYPE_CHECKING:
    from btq.worker.lm.local.provider import LlamaCppProvider

ENGINE_STATE = {"backend": "llama.cpp"}
"""Equal on every worker, so saved LM states compare equal to the job LM's (see btq.worker.core.lm_binding)."""


@functools.cache
def engine_state() -> dict[str, Any]:
    """Return `ENGINE_STATE` plus the installed version of each base model's weights package.

    The versions make the LM-call cache key (which hashes the job LM's state) change when the weights do:
    a base model's name stays the same across releases of the package that ships it. Fine-tunes are
    content-addressed, so their names already change with their data and parent.
    """
    weights: dict[str, str] = {}
    for base in BASE_MODELS.values():
        try:
            weights[base.distribution] = importlib.metadata.version(base.distribution)
        except importlib.metadata.PackageNotFoundError:
            weights[base.distribution] = "not installed"
    return {**ENGINE_STATE, "weights": weights}


# llama-cpp-python reads `max_tokens` (it ignores OpenAI's newer `max_completion_tokens`) and takes the
# system prompt as a `system` message.
_COMPAT = OpenAIChatCompat(max_tokens_field="max_tokens", instruction_role="system")


def _transports() -> Any:
    # Imported by name: dspy's vendored lm15 ships py.typed, and a static import of it makes mypy
    # type-check all of (untyped) dspy through it.
    return importlib.import_module("dspy._vendor.lm15.transports")


class LlamaCppEngine:
    """A dspy custom engine (`complete(Request) -> Response`) over the provider's llama.cpp servers."""

    supports_function_calling = False
    supports_reasoning = False
    # The server enforces `{"type": "json_object"}` with a grammar, but not a JSON schema: JSONAdapter
    # then asks for json_object, which the 135M model cannot break.
    supports_response_schema = False
    supported_params = frozenset({"temperature", "max_tokens", "top_p", "stop", "seed", "response_format"})

    def __init__(self, provider: "LlamaCppProvider") -> None:
        self.provider = provider
        self._clients: dict[str, OpenAIChatLM] = {}
        self._lock = threading.Lock()

    def _route(self, request: Request) -> tuple[OpenAIChatLM, Request]:
        # Structured requests (JSONAdapter, often ChatAdapter's fallback) go to a server of their own, so
        # neither prompt format evicts the other's evaluated prefix. Each is answered by the same model and settings.
        split = self.provider.pool.settings.structured_server
        slot = STRUCTURED if split and request.config.response_format is not None else ""
        server = self.provider.server_for(request.model, slot)
        with self._lock:
            client = self._clients.get(server.base_url)
            if client is None:
                # trust_env=False: loopback traffic must not go through an http_proxy from the environment.
                transport = _transports().StdlibTransport(
                    read_timeout=self.provider.pool.settings.request_timeout_s, trust_env=False
                )
                client = OpenAIChatLM(api_key="local", base_url=server.base_url, compat=_COMPAT, transport=transport)
                self._clients[server.base_url] = client
        return client, dataclasses.replace(request, model=server.served.alias)

    def complete(self, request: Request) -> Response:
        """Send `request` to its model's server (started if needed) and return the response."""
        interrupt.raise_if_cancelled()  # a cancelled job's optimizer stops at its next LM call
        client, routed = self._route(request)
        response = client.complete(routed)
        # History and cost tracking name the LM's model, not the server's alias.
        return dataclasses.replace(response, model=request.model)

    def stream(self, request: Request) -> Iterator[Any]:
        """Stream `request` from its model's server."""
        client, routed = self._route(request)
        return iter(client.stream(routed))

    def close(self) -> None:
        """Drop HTTP clients (servers belong to the provider's pool and outlive the engine)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def dump_state(self) -> dict[str, Any]:
        """Return the engine's saved state: the same on every worker with the same weights installed."""
        state = engine_state()
        return {**state, "weights": dict(state["weights"])}  # a copy: the cached state stays as it was

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> "LlamaCppEngine":
        """Rebuild an engine with a default provider (this process's pool, artifact store from env)."""
        from btq.worker.lm.local.provider import LlamaCppProvider

        return cls(LlamaCppProvider())
