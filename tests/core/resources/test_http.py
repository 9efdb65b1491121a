"""The HTTP provider against a real local server (stdlib http.server in a thread)."""

from __future__ import annotations

import socket
import threading

import pytest

from jupyter_resman.core.errors import ConfigError
from jupyter_resman.core.resources import HealthStatus, HTTPProvider, PoolConfig


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_follows_what_the_server_answers(manager, http_server):
    url = http_server.url
    manager.register_provider("up", HTTPProvider(url))
    manager.register_provider("missing", HTTPProvider(url, health_path="/missing"))
    manager.register_provider("down", HTTPProvider(url, health_path="/down"))
    manager.register_provider("closed", HTTPProvider(f"http://127.0.0.1:{free_port()}",
                                                     health_timeout=2))
    reports = manager.health()
    assert reports["up"].status is HealthStatus.HEALTHY
    assert reports["up"].details["status_code"] == 200
    assert reports["missing"].status is HealthStatus.DEGRADED
    assert reports["down"].status is HealthStatus.UNHEALTHY and "500" in reports["down"].message
    assert reports["closed"].status is HealthStatus.UNHEALTHY
    assert "no answer" in reports["closed"].message
    assert http_server.hits["/down"] == 1  # health checks are never retried


def test_clients_carry_base_url_headers_and_timeout(manager, http_server):
    manager.register_provider("api", HTTPProvider(f"{http_server.url}/api/v1",
                                                  headers={"X-Token": "abc"}, timeout=7))
    with manager.use("api", owner="cell-1") as client:
        answer = client.get("/items").json()
        assert client.timeout.read == 7
    assert answer["path"] == "/api/v1/items"
    assert answer["headers"]["X-Token"] == "abc"


def test_retryable_answers_are_retried_only_when_safe(manager, http_server):
    manager.register_provider("api", HTTPProvider(http_server.url, retries=2, backoff=0.01))
    manager.register_provider("once", HTTPProvider(http_server.url, retries=1, backoff=0.01))
    with manager.use("api", owner="t") as client:
        response = client.get("/flaky-a")
        assert response.status_code == 200 and response.text == "ok after 3"
        post = client.post("/flaky-post", content=b"payload")
        assert post.status_code == 503
    assert http_server.hits["/flaky-a"] == 3
    assert http_server.hits["POST /flaky-post"] == 1  # a POST is never sent twice
    with manager.use("once", owner="t") as client:
        assert client.get("/flaky-b").status_code == 503  # out of retries: the answer stands
    assert http_server.hits["/flaky-b"] == 2
    metrics = manager.metrics("api")["api"].provider
    assert metrics["retries"] == 2 and metrics["requests"] == 4
    assert metrics["responses"] == {"5xx": 3, "2xx": 1}


def test_eight_threads_share_two_clients(manager, http_server):
    manager.register_provider("api", HTTPProvider(http_server.url),
                              PoolConfig(max_size=2, acquire_timeout=60))
    statuses, errors = [], []

    def worker(i):
        try:
            for _ in range(5):
                with manager.use("api", owner=f"worker-{i}") as client:
                    statuses.append(client.get(f"/item/{i}").status_code)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and statuses == [200] * 40
    m = manager.metrics("api")["api"]
    assert m.created <= 2 and m.provider["clients_made"] == m.created


def test_released_clients_are_closed_and_closed_ones_replaced(manager, http_server):
    provider = HTTPProvider(http_server.url)
    manager.register_provider("api", provider, PoolConfig(max_size=1))
    client = manager.acquire("api", owner="a")
    client.close()  # the user closed it by mistake
    manager.release("api", owner="a")
    fresh = manager.acquire("api", owner="a")
    assert fresh is not client and fresh.get("/").status_code == 200
    manager.release("api", owner="a", discard=True)
    assert fresh.is_closed


def test_bad_configuration_is_refused_and_secrets_hidden():
    with pytest.raises(ConfigError, match="http:// or https://"):
        HTTPProvider("ftp://example.org")
    with pytest.raises(ConfigError, match="retries"):
        HTTPProvider("http://example.org", retries=-1)
    assert HTTPProvider("https://me:pw@example.org/x").target == "https://example.org/x"
