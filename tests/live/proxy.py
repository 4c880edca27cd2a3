"""A loopback HTTP proxy in front of the live server that fails on purpose.

The live tier shares one FlexMeasures server, so outages and broken answers are
simulated here rather than by stopping or breaking that server. The proxy passes
requests through unchanged unless a fault is set for a path (a regular expression
searched in ``"METHOD /path"``); ``down()`` makes it refuse connections and reset
the open ones, which is what a client sees when the web server is stopped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
import re
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientSession, ClientTimeout, web
from multidict import CIMultiDict

LOOPBACK = "127.0.0.1"

# Headers that describe one hop (or the body's framing), never copied across.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "transfer-encoding",
        "accept-encoding",
        "date",
        "server",
    }
)
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>The upstream server is not responding.</p>"
    b"<hr><address>nginx</address></body></html>"
)


class Fault(StrEnum):
    """How the proxy answers a request that matches a fault's path."""

    NONE = "none"  # forward unchanged
    DELAY = "delay"  # forward, but answer only after ``delay`` seconds
    HANG = "hang"  # never answer (until the fault is cleared)
    TRUNCATE = "truncate"  # forward, announce the full length, send half, close
    HTML_200 = "html_200"  # an HTML page with 200 OK (a captive portal)
    HTML_502 = "html_502"  # a reverse proxy's HTML error page
    HTML_AS_JSON = "html_as_json"  # an HTML page labelled application/json
    JSON_500 = "json_500"  # FlexMeasures' own JSON for an internal error
    JSON_503 = "json_503"  # FlexMeasures' JSON for "unavailable", no Retry-After
    RESET = "reset"  # reset the connection without answering
    DRIP = "drip"  # forward, then send the answer a byte at a time
    HOLD = "hold"  # hold the request until the fault is cleared, then forward it


@dataclass(frozen=True, kw_only=True)
class _Rule:
    """A fault for the requests whose ``METHOD /path`` matches ``pattern``."""

    pattern: re.Pattern[str]
    fault: Fault


class FaultProxy:
    """An HTTP proxy on loopback to ``target``, with switchable faults per path."""

    def __init__(self, target: str, *, delay: float = 5.0, drip: float = 5.0) -> None:
        """Proxy to ``target`` (a URL) once started.

        ``delay`` is how long a DELAY answer waits; ``drip`` how long a DRIP answer
        takes from first to last byte. Both should exceed the client's timeout.
        """
        parts = urlsplit(target)
        self._target = f"{parts.scheme}://{parts.netloc}"
        self.delay = delay
        self.drip = drip
        self.port = 0
        self.hits: Counter[Fault] = Counter()
        self._rules: list[_Rule] = []
        self._release = asyncio.Event()
        self._hit = asyncio.Event()
        self._session: ClientSession | None = None
        self._runner: web.ServerRunner | None = None
        self._transports: set[asyncio.Transport] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        """Return the proxy's URL."""
        return f"http://{LOOPBACK}:{self.port}"

    def fail(self, fault: Fault, path: str = "") -> None:
        """Answer requests whose ``METHOD /path`` matches ``path`` with ``fault``."""
        self._release.clear()
        self._rules.insert(0, _Rule(pattern=re.compile(path), fault=fault))

    def clear(self) -> None:
        """Pass everything through again; let hanging answers go."""
        self._rules.clear()
        self._release.set()

    async def wait_for(self, fault: Fault) -> None:
        """Wait until a request has met ``fault``."""
        while not self.hits[fault]:
            self._hit.clear()
            await self._hit.wait()

    async def up(self) -> None:
        """Accept connections (on the same port as before, if any)."""
        if self._session is None:
            self._session = ClientSession(
                auto_decompress=False, timeout=ClientTimeout(total=60)
            )
        server = web.Server(self._handle)
        self._runner = web.ServerRunner(server, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._release.set()
        for transport in self._transports:
            transport.abort()
        # Answers to clients that gave up are still being made: stop them too.
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        """Stop for good."""
        self.clear()
        await self.down()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _fault_for(self, request: web.BaseRequest) -> Fault:
        """Return the fault of the first rule matching the request."""
        subject = f"{request.method} {request.path}"
        for rule in self._rules:
            if rule.pattern.search(subject):
                return rule.fault
        return Fault.NONE

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request according to its fault."""
        transport = request.transport
        task = asyncio.current_task()
        assert transport is not None
        assert task is not None
        self._transports.add(transport)
        self._handlers.add(task)
        try:
            fault = self._fault_for(request)
            self.hits[fault] += 1
            self._hit.set()
            return await self._answer(request, fault, transport)
        finally:
            self._transports.discard(transport)
            self._handlers.discard(task)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less once the faults are cleared."""
        try:
            async with asyncio.timeout(seconds):
                await self._release.wait()
        except TimeoutError:
            pass

    async def _answer(
        self,
        request: web.BaseRequest,
        fault: Fault,
        transport: asyncio.Transport,
    ) -> web.StreamResponse:
        """Produce the answer ``fault`` asks for."""
        if fault is Fault.RESET:
            transport.abort()
            return web.Response(status=204)
        if fault is Fault.HANG:
            await self._release.wait()
            transport.abort()
            return web.Response(status=204)
        if fault in (Fault.HTML_200, Fault.HTML_502, Fault.HTML_AS_JSON):
            return web.Response(
                status=502 if fault is Fault.HTML_502 else 200,
                body=HTML_PAGE,
                content_type="application/json"
                if fault is Fault.HTML_AS_JSON
                else "text/html",
            )
        if fault in (Fault.JSON_500, Fault.JSON_503):
            status = 500 if fault is Fault.JSON_500 else 503
            message = (
                "Internal Server Error" if status == 500 else "Service Unavailable"
            )
            return web.json_response(
                {"message": message, "status": status}, status=status
            )
        if fault is Fault.HOLD:
            await self._release.wait()
        status, headers, body = await self._forward(request)
        if fault is Fault.DELAY:
            await self._pause(self.delay)
        if fault in (Fault.NONE, Fault.DELAY, Fault.HOLD):
            return web.Response(status=status, headers=headers, body=body)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = len(body)
        try:
            await response.prepare(request)
            if fault is Fault.TRUNCATE:
                await response.write(body[: len(body) // 2])
                transport.abort()
                return response
            pause = self.drip / max(len(body), 1)
            for index in range(len(body)):
                await response.write(body[index : index + 1])
                await self._pause(pause)
        except ConnectionError:
            transport.abort()
        return response

    async def _forward(
        self, request: web.BaseRequest
    ) -> tuple[int, CIMultiDict[str], bytes]:
        """Send the request to the server; return its status, headers and body."""
        assert self._session is not None
        headers = CIMultiDict(
            (key, value)
            for key, value in request.headers.items()
            if key.lower() not in _HOP_HEADERS
        )
        async with self._session.request(
            request.method,
            f"{self._target}{request.path_qs}",
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            answer = CIMultiDict(
                (key, value)
                for key, value in upstream.headers.items()
                if key.lower() not in _HOP_HEADERS
            )
            return upstream.status, answer, body
