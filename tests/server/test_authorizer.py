"""Requests are authorized by the server's Authorizer on the resource ``resman``."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
from jupyter_server.auth import Authorizer
from traitlets.config import Config


class ReadOnlyResman(Authorizer):
    """Lets everyone read the resman API and no one change it; records what it was asked."""

    asked: ClassVar[list[tuple[str, str]]] = []

    def is_authorized(self, handler, user, action, resource):
        if resource == "resman":
            ReadOnlyResman.asked.append((handler.request.method, action))
            return action == "read"
        return True


@pytest.fixture
def jp_server_config(home, monkeypatch):
    monkeypatch.setenv("RESMAN_HOME", str(home))
    ReadOnlyResman.asked = []
    return Config({
        "ServerApp": {"jpserver_extensions": {"jupyter_resman": True},
                      "authorizer_class": ReadOnlyResman},
        "ResmanExtension": {"home": str(home)},
    })


async def test_the_authorizer_decides_read_and_write(fetch, session):
    session.cache.set("a", 1)
    session.checkpoints.save("run", {"step": 1})
    assert (await fetch("resman", "api", "cache")).code == 200
    assert (await fetch("resman", "api", "checkpoints")).code == 200
    response = await fetch("resman", "api", "cache", "clear", method="POST",
                           body=json.dumps({"all": True}))
    assert response.code == 403
    response = await fetch("resman", "api", "checkpoints", "run", method="DELETE")
    assert response.code == 403
    assert session.cache.get("a") == 1
    assert "run" in session.checkpoints
    assert ReadOnlyResman.asked == [("GET", "read"), ("GET", "read"),
                                    ("POST", "write"), ("DELETE", "write")]
