"""The HTTP routes (Starlette): each turns a request into a call of the data plane
(:mod:`scoring_core.server.dataplane`) and its answer or error into a response.

Scoring runs on a bounded pool of threads (a ``ThreadPoolExecutor`` of its own), so the
event loop keeps answering health checks and other requests while a large batch scores.
A small infer request of a chain that cannot be scored on the loop goes to that chain's
own single thread instead: under many concurrent single-row requests, one thread per
chain measured faster than the pool (fewer threads taking turns on the GIL) and far
faster than ``anyio.to_thread`` (its limiter and worker hand-off cost more than scoring a
row). The engine is safe to call from many threads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

import scoring_core
import scoring_core.metrics
from scoring_core.server.errors import (
    INTERNAL_ERROR_TEXT,
    ProtocolError,
    UnauthorizedError,
    status_of,
)
from scoring_core.server.http_metrics import HttpMetrics, families_of_registry, merged_text
from scoring_core.server.inline import (
    INFER_ROUTES,
    InlineGate,
    header_length_of,
    infer_target,
    too_large,
)
from scoring_core.server.repository import Repository
from scoring_core.server.workers import ControlServer, ask_peers

__all__ = ["ADMIN_TOKEN_VARIABLE", "ScoringApp", "Settings", "build_app"]

logger = logging.getLogger("scoring_core.server")

ADMIN_TOKEN_VARIABLE = "SCORING_ADMIN_TOKEN"
SCORING_THREADS = max(2, os.cpu_count() or 1)
#: infer bodies up to this size (a few rows) are scored on the event loop itself
INLINE_MAX_BYTES = int(os.environ.get("SCORING_SERVE_INLINE_BYTES", 8192))
_PEER_METRICS_TIMEOUT_S = 10.0
_PEER_RELOAD_TIMEOUT_S = 300.0
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Settings:
    """What a worker serves and how (picklable: the supervisor hands it to each worker)."""

    configs: list[str]
    max_body_bytes: int = 16 * 2**20
    admin_token: str | None = None
    state_dir: str | None = None  # set with --workers N > 1: the control sockets live there
    extra: dict[str, Any] = field(default_factory=dict)


_JSON_TYPE = (b"content-type", b"application/json")
_BINARY_TYPE = (b"content-type", b"application/octet-stream")


class ScoringApp:
    """The ASGI app of one worker: infer POSTs are answered by :meth:`_Server.asgi_infer`,
    everything else (and the lifespan) by the Starlette app."""

    def __init__(self, server: _Server, app: Starlette) -> None:
        self.server = server
        self.starlette = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            target = infer_target(scope["path"])
            if target is not None:
                await self.server.asgi_infer(scope, receive, send, *target)
                return
        await self.starlette(scope, receive, send)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"connection": "close"} if status == 413 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


class _Server:
    """The state one worker's routes share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.repository = Repository(settings.configs)
        self.registry = CollectorRegistry()
        self.http = HttpMetrics(self.registry)
        self.pool: ThreadPoolExecutor | None = None
        self._lanes: dict[str, ThreadPoolExecutor] = {}  # model name -> its small-request thread
        self._gates: dict[str, InlineGate] = {}  # model name -> on the loop or its thread
        self.state_dir = Path(settings.state_dir) if settings.state_dir else None
        self.control: ControlServer | None = None
        self.on_build_failed: Callable[[], None] = lambda: None
        self._builder: threading.Thread | None = None

    # -- lifetime ------------------------------------------------------------------------

    def start(self) -> None:
        self.pool = ThreadPoolExecutor(SCORING_THREADS, thread_name_prefix="scoring-serve")
        self._builder = threading.Thread(target=self._build, name="scoring-serve-build")
        self._builder.start()

    def _build(self) -> None:
        self.repository.build()
        if self.repository.error is not None:
            self.on_build_failed()
            return
        for model in self.repository.models.values():
            model.register_metrics(self.registry)  # a chain, or an experiment's
        if self.state_dir is not None:
            self.control = ControlServer(self.state_dir, self._control)
        logger.info("serving %s", ", ".join(self.repository.models))

    def stop(self) -> None:
        """Close every engine once, after the build (if still running) is done."""
        if self.control is not None:
            self.control.close()
        if self._builder is not None:
            self._builder.join()
        for executor in [*self._lanes.values(), *([self.pool] if self.pool else [])]:
            executor.shutdown(wait=True)
        self.repository.close()

    def _control(self, request: dict[str, Any]) -> Any:
        """What another worker asks of this one (see :mod:`scoring_core.server.workers`)."""
        if request["op"] == "metrics":
            return families_of_registry(self.registry)
        if request["op"] == "reload":
            return self.repository.reload(request["model"])
        raise ValueError(f"unknown control request {request['op']!r}")

    # -- helpers -------------------------------------------------------------------------

    async def in_thread(
        self, function: Callable[..., Any], *args: Any, executor: ThreadPoolExecutor | None = None
    ) -> Any:
        """``function(*args)`` on the pool (or ``executor``); a cancelled request still
        waits for its call to end, as the engine may not be closed under it."""
        future = asyncio.get_running_loop().run_in_executor(
            executor or self.pool, functools.partial(function, *args)
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await future
            raise

    def lane(self, model: Any) -> ThreadPoolExecutor:
        """The one thread that scores ``model``'s small requests when not on the loop."""
        lane = self._lanes.get(model.name)
        if lane is None:  # only the event loop's thread gets here
            lane = ThreadPoolExecutor(1, thread_name_prefix="scoring-lane")
            self._lanes[model.name] = lane
        return lane

    def gate(self, model: Any) -> InlineGate:
        gate = self._gates.get(model.name)
        if gate is None:
            gate = self._gates[model.name] = InlineGate(model.name, model.inline_allowed)
        return gate

    async def body(self, request: Request) -> bytes:
        """The body, refused with 413 past the limit before it is all read."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise ProtocolError("Content-Length is not a number") from None
            if length > limit:
                raise too_large(limit)
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def admin(self, request: Request) -> None:
        token = self.settings.admin_token or ""
        given = request.headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode(), token.encode()
        ):
            raise UnauthorizedError("this admin route needs `Authorization: Bearer <token>`")

    # -- routes --------------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        if self.repository.ready:
            return JSONResponse({"ready": True})
        return JSONResponse(
            {"ready": False, "error": self.repository.not_ready_reason()}, status_code=503
        )

    async def server_metadata(self, request: Request) -> Response:
        extensions = ["binary_tensor_data"]
        if self.settings.admin_token:
            extensions.append("model_repository")
        return JSONResponse(
            {"name": "scoring-core", "version": scoring_core.__version__, "extensions": extensions}
        )

    def _model(self, request: Request) -> Any:
        params = request.path_params
        return self.repository.get(params["name"], params.get("version"))

    async def model_metadata(self, request: Request) -> Response:
        model = self._model(request)
        return JSONResponse(await self.in_thread(model.metadata))

    async def model_ready(self, request: Request) -> Response:
        model = self._model(request)
        if model.ready:
            return JSONResponse({"name": model.name, "ready": True})
        return JSONResponse(
            {"name": model.name, "ready": False, "error": f"no step of {model.name!r} can score"},
            status_code=503,
        )

    async def infer(self, request: Request) -> Response:
        """The Starlette form of infer (POSTs are answered by :meth:`asgi_infer` first)."""
        model = self._model(request)
        body = await self.body(request)
        header_length = header_length_of(request.headers.get("inference-header-content-length"))
        data, json_length = await self.score(model, body, header_length)
        if json_length is None:
            return Response(data, media_type="application/json")
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"inference-header-content-length": str(json_length)},
        )

    async def asgi_infer(
        self, scope: Scope, receive: Receive, send: Send, name: str, version: str | None
    ) -> None:
        """``POST /v2/models/{name}[/versions/{v}]/infer`` in plain ASGI: what the
        Starlette route does (:meth:`infer`), without building its request and response
        objects and routing (measured: a third of the server's time per single-row
        request went there)."""
        started = time.perf_counter()
        template = INFER_ROUTES[version is not None]
        try:
            model = self.repository.get(name, version)
            declared = header = None
            for key, value in scope["headers"]:
                if key == b"content-length":
                    declared = value
                elif key == b"inference-header-content-length":
                    header = value
            body = await self.raw_body(receive, declared)
            if body is None:  # the client went away: nobody to answer
                return
            data, json_length = await self.score(model, body, header_length_of(header))
        except Exception as exc:
            response = self.error_response(exc)
            status, headers, data = response.status_code, response.raw_headers, bytes(response.body)
        else:
            status = 200
            if json_length is None:
                headers = [_JSON_TYPE, (b"content-length", str(len(data)).encode())]
            else:
                headers = [
                    _BINARY_TYPE,
                    (b"content-length", str(len(data)).encode()),
                    (b"inference-header-content-length", str(json_length).encode()),
                ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        self.http.observe(template, "POST", status, time.perf_counter() - started)

    async def raw_body(self, receive: Receive, declared: bytes | None) -> bytes | None:
        """The body from ASGI messages, refused with 413 past the limit before it is all
        read; None when the client disconnected first."""
        limit = self.settings.max_body_bytes
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise ProtocolError("Content-Length is not a number") from None
            if length > limit:
                raise too_large(limit)
        message = await receive()
        if message["type"] != "http.request":
            return None
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise too_large(limit)
            return body
        chunks = [body]
        size = len(body)
        while True:
            if size > limit:
                raise too_large(limit)
            if not message.get("more_body", False):
                return b"".join(chunks)
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)

    async def score(
        self, model: Any, body: bytes, header_length: int | None
    ) -> tuple[bytes, int | None]:
        """Score an infer body on the loop, the model's own thread or the pool (see the
        module's doc); the answer's body and the binary header's length (or None)."""
        if len(body) > INLINE_MAX_BYTES:
            data, json_length = await self.in_thread(model.infer, body, header_length)
        else:
            gate = self.gate(model)
            if gate.inline:
                started = time.perf_counter()
                try:
                    data, json_length = model.infer(body, header_length)
                finally:
                    gate.timed_inline(time.perf_counter() - started)
            else:
                data, json_length = await self.in_thread(
                    gate.timed_call, model.infer, body, header_length, executor=self.lane(model)
                )
        return data, json_length

    async def ping(self, request: Request) -> Response:
        if self.repository.ready:
            return JSONResponse({"status": "ok"})
        return _error(503, self.repository.not_ready_reason())

    async def invocations(self, request: Request) -> Response:
        model = self.repository.first()
        body = await self.body(request)
        content_type = request.headers.get("content-type", "")
        data = await self.in_thread(model.invocations, body, content_type)
        return Response(data, media_type="application/json")

    async def metrics(self, request: Request) -> Response:
        if self.state_dir is None:
            text = await self.in_thread(generate_latest, self.registry)
        else:
            text = await self.in_thread(self._server_metrics)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    def _server_metrics(self) -> bytes:
        assert self.state_dir is not None
        mine = families_of_registry(self.registry)
        others = ask_peers(self.state_dir, {"op": "metrics"}, _PEER_METRICS_TIMEOUT_S)
        return merged_text([mine, *others])

    async def load(self, request: Request) -> Response:
        self.admin(request)
        model = self._model(request)
        outcomes = [await self.in_thread(self.repository.reload, model.name)]
        self._gates.pop(model.name, None)  # a new model is given the loop again
        if self.state_dir is not None:
            outcomes.extend(
                await self.in_thread(
                    ask_peers,
                    self.state_dir,
                    {"op": "reload", "model": model.name},
                    _PEER_RELOAD_TIMEOUT_S,
                )
            )
        steps: dict[str, str] = {}
        for outcome in outcomes:  # a step that failed in any worker shows that failure
            for step, text in outcome.items():
                if steps.get(step, "reloaded") == "reloaded":
                    steps[step] = text
        answer = {"name": model.name, "steps": steps, "workers": len(outcomes)}
        failed = {step: text for step, text in steps.items() if text != "reloaded"}
        if not failed:
            return JSONResponse({**answer, "reloaded": True})
        why = "; ".join(f"{step}: {text}" for step, text in failed.items())
        return _error(409, f"reload of {model.name!r} failed, the old model serves on: {why}",
                      **answer, reloaded=False)  # fmt: skip

    # -- errors and metrics, around every route -------------------------------------------

    def route(self, template: str, handler: Handler, methods: list[str]) -> Route:
        observe = self.http.observe

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except Exception as exc:
                response = self.error_response(exc)
            observe(template, request.method, response.status_code, time.perf_counter() - started)
            return response

        return Route(template, endpoint, methods=methods)

    def error_response(self, exc: Exception) -> Response:
        status = status_of(exc)
        if status == 500:
            logger.error("unexpected error answering a request", exc_info=exc)
            return _error(500, INTERNAL_ERROR_TEXT)
        return _error(status, str(exc))


def build_app(settings: Settings) -> ScoringApp:
    """The app of one worker; ``app.state.server.on_build_failed`` is called (from a
    thread) when the chains cannot be built."""
    server = _Server(settings)
    routes = [  # infer first: the router tries the routes in this order on every request
        server.route("/v2/models/{name}/infer", server.infer, ["POST"]),
        server.route("/v2/models/{name}/versions/{version}/infer", server.infer, ["POST"]),
        server.route("/v2/health/live", server.live, ["GET"]),
        server.route("/v2/health/ready", server.ready, ["GET"]),
        server.route("/v2", server.server_metadata, ["GET"]),
        server.route("/v2/models/{name}", server.model_metadata, ["GET"]),
        server.route("/v2/models/{name}/versions/{version}", server.model_metadata, ["GET"]),
        server.route("/v2/models/{name}/ready", server.model_ready, ["GET"]),
        server.route("/v2/models/{name}/versions/{version}/ready", server.model_ready, ["GET"]),
        server.route("/ping", server.ping, ["GET"]),
        server.route("/invocations", server.invocations, ["POST"]),
        server.route("/metrics", server.metrics, ["GET"]),
    ]
    if settings.admin_token:
        routes.append(server.route("/v2/repository/models/{name}/load", server.load, ["POST"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server.start()
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(server.stop)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error(404, f"no route {request.url.path!r}; docs/serving.md lists them")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path!r}")
        return _error(exc.status_code, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> Response:
        return server.error_response(exc)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: unexpected},
    )
    app.state.server = server
    return ScoringApp(server, app)
