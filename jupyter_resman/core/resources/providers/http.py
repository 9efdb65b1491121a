"""An HTTP service: each resource is an ``httpx.Client`` with a base URL, headers,
a timeout and retries.

Retries cover what is safe to repeat: a connection that could not be made
(httpx's own transport retries), and an *idempotent* request (GET, HEAD,
OPTIONS, PUT, DELETE) answered 429, 502, 503 or 504 — after a short
exponential back-off, or the server's ``Retry-After`` when it is short. A
POST is never sent twice.

>>> provider = HTTPProvider("https://user:secret@api.example.org/v1", retries=2)
>>> provider.target            # credentials never appear in tables or logs
'https://api.example.org/v1'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ...errors import ConfigError
from ..protocol import BaseProvider, HealthReport, HealthStatus

__all__ = ["HTTPProvider"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: A Retry-After longer than this is not waited for: the response is returned.
MAX_RETRY_AFTER_S = 10.0


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.errors = 0
        self.by_class: dict[str, int] = {}
        self.total_s = 0.0


class _RetryTransport(httpx.BaseTransport):
    """Counts every exchange and repeats idempotent ones the server asked us to retry."""

    def __init__(self, inner: httpx.BaseTransport, counters: _Counters, retries: int,
                 backoff: float, statuses: frozenset[int]) -> None:
        self._inner = inner
        self._counters = counters
        self._retries = retries
        self._backoff = backoff
        self._statuses = statuses

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            start = time.perf_counter()
            try:
                response = self._inner.handle_request(request)
            except httpx.TransportError:
                self._count(None, time.perf_counter() - start)
                raise
            self._count(response.status_code, time.perf_counter() - start)
            delay = self._retry_delay(request, response, attempt)
            if delay is None:
                return response
            response.close()
            attempt += 1
            with self._counters.lock:
                self._counters.retries += 1
            time.sleep(delay)

    def _retry_delay(self, request: httpx.Request, response: httpx.Response,
                     attempt: int) -> float | None:
        if (attempt >= self._retries or response.status_code not in self._statuses
                or request.method not in IDEMPOTENT):
            return None
        if not isinstance(request.stream, httpx.ByteStream):
            return None  # a streamed body cannot be sent again
        delay = self._backoff * (2 ** attempt)
        after = response.headers.get("Retry-After")
        if after is not None:
            try:
                wanted = float(after)
            except ValueError:
                wanted = None  # an HTTP date: fall back to our own back-off
            if wanted is not None:
                if wanted > MAX_RETRY_AFTER_S:
                    return None
                delay = max(delay, wanted)
        return delay

    def _count(self, status: int | None, seconds: float) -> None:
        c = self._counters
        with c.lock:
            c.requests += 1
            c.total_s += seconds
            if status is None:
                c.errors += 1
            else:
                key = f"{status // 100}xx"
                c.by_class[key] = c.by_class.get(key, 0) + 1

    def close(self) -> None:
        self._inner.close()


class HTTPProvider(BaseProvider):
    """``httpx.Client`` objects for one service.

    ``timeout`` is seconds per request; ``retries`` how many times a failed
    connect or a retryable answer is tried again (``backoff`` seconds,
    doubled each time). The health check GETs ``health_path`` without
    retries: below 400 is healthy, 4xx degraded (the service answers, but not
    that path), 5xx or no answer unhealthy. ``transport`` replaces the network
    layer (tests, or an ``httpx.WSGITransport``).
    """

    kind = "http"

    def __init__(self, base_url: str, *, headers: Mapping[str, str] | None = None,
                 timeout: float = 10.0, retries: int = 2, backoff: float = 0.2,
                 retry_statuses: Iterable[int] = RETRY_STATUSES, health_path: str = "/",
                 health_timeout: float | None = None, verify: bool = True,
                 transport: httpx.BaseTransport | None = None,
                 client_options: Mapping[str, Any] | None = None) -> None:
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ConfigError(f"HTTPProvider base_url={base_url!r} is not a URL: {exc}") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"HTTPProvider base_url={base_url!r} needs http:// or https:// "
                              "and a host, e.g. http://localhost:8000/api")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"HTTPProvider retries={retries!r}: use a whole number >= 0")
        self.base_url = url
        self.target = str(url.copy_with(username=None, password=None))
        self.headers = dict(headers or {})
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.retry_statuses = frozenset(retry_statuses)
        self.health_path = health_path
        self.health_timeout = float(health_timeout) if health_timeout is not None else \
            min(self.timeout, 5.0)
        self.verify = verify
        self._transport = transport
        self._client_options = dict(client_options or {})
        self._counters = _Counters()
        self._clients = 0

    def _client(self, *, retries: int, timeout: float) -> httpx.Client:
        inner = self._transport or httpx.HTTPTransport(retries=retries, verify=self.verify)
        transport = _RetryTransport(inner, self._counters, retries, self.backoff,
                                    self.retry_statuses)
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout,
                            transport=transport, **self._client_options)

    def acquire(self) -> httpx.Client:
        client = self._client(retries=self.retries, timeout=self.timeout)
        with self._counters.lock:
            self._clients += 1
        return client

    def release(self, resource: httpx.Client) -> None:
        if self._transport is not None:
            return  # a shared transport belongs to whoever passed it in
        resource.close()

    def validate(self, resource: httpx.Client) -> bool:
        return not resource.is_closed

    def health_check(self) -> HealthReport:
        start = time.perf_counter()
        client = self._client(retries=0, timeout=self.health_timeout)
        try:
            response = client.get(self.health_path)
        except httpx.HTTPError as exc:
            return HealthReport.failed(f"no answer from {self.target}: {type(exc).__name__}: "
                                       f"{exc}", latency_s=time.perf_counter() - start)
        finally:
            if self._transport is None:
                client.close()
        latency = time.perf_counter() - start
        status = response.status_code
        details = {"status_code": status, "url": str(response.url.copy_with(username=None,
                                                                            password=None))}
        text = f"GET {self.health_path} answered {status} in {latency * 1000:.0f} ms"
        if status < 400:
            return HealthReport.ok(text, latency_s=latency, **details)
        if status < 500:
            return HealthReport(HealthStatus.DEGRADED, text, latency, details=details)
        return HealthReport.failed(text, latency_s=latency, **details)

    def metrics(self) -> dict[str, Any]:
        c = self._counters
        with c.lock:
            return {"clients_made": self._clients, "requests": c.requests, "retries": c.retries,
                    "errors": c.errors, "responses": dict(c.by_class),
                    "avg_request_s": c.total_s / c.requests if c.requests else 0.0}
