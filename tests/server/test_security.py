"""Authentication, authorization, XSRF and names that try to leave the home (RELIABILITY 15-17)."""

from __future__ import annotations

import json
import os
import re

import pytest
from tornado import web

from jupyter_resman.server.routes import ROUTES

VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def resman_handlers(app: web.Application) -> list[tuple[str, type[web.RequestHandler]]]:
    """Every registered (path regex, handler class) under ``/resman/``."""
    found = []

    def walk(router) -> None:
        for rule in router.rules:
            target = rule.target
            if hasattr(target, "rules"):
                walk(target)
            elif isinstance(target, type) and issubclass(target, web.RequestHandler):
                regex = getattr(rule.matcher, "regex", None)
                if regex is not None and "/resman/" in regex.pattern:
                    found.append((regex.pattern, target))

    walk(app.default_router)
    return found


def verbs_of(handler: type[web.RequestHandler]) -> list[str]:
    return [v for v in VERBS
            if getattr(handler, v.lower()) is not getattr(web.RequestHandler, v.lower())]


def concrete_path(pattern: str) -> str:
    """The part after the base URL of a path matching a route's regex."""
    path = re.sub(r"\([^)]*\)", "some-name", pattern).rstrip("$")
    return path[path.index("resman/"):]


async def test_every_resman_handler_rejects_requests_without_credentials(
    jp_serverapp, fetch_raw, session
):
    session.cache.set("kept", 1)
    session.checkpoints.save("some-name", {"step": 1})
    handlers = resman_handlers(jp_serverapp.web_app)
    # The walk found exactly the routes we register (it is not vacuous).
    assert {h for _, h in handlers} == {h for _, h in ROUTES}
    checked = 0
    for pattern, handler in handlers:
        path = concrete_path(pattern)
        for verb in verbs_of(handler):
            body = b"{}" if verb in ("POST", "PUT", "PATCH") else None
            for headers in ({}, {"Authorization": "token not-the-token"}):
                response = await fetch_raw(path, auth=False, method=verb, body=body,
                                           headers=headers, allow_nonstandard_methods=True)
                assert response.code in (401, 403), (verb, path, response.code)
                checked += 1
    assert checked >= 2 * len(ROUTES)
    # Nothing was changed by the refused requests.
    assert session.cache.get("kept") == 1
    assert "some-name" in session.checkpoints


async def test_the_same_requests_with_the_token_are_served(fetch):
    for path in ("metrics", "cache", "progress", "checkpoints"):
        response = await fetch("resman", "api", path)
        assert response.code == 200, path
        assert response.headers["Content-Type"].startswith("application/json")


async def _login_cookie(jp_fetch) -> str:
    """The login cookie a browser holds after opening the server with its token."""
    response = await jp_fetch("resman", "api", "metrics")
    cookies = [c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie")]
    login = [c for c in cookies if c.startswith("username-")]
    assert login, cookies
    return login[0]


async def _xsrf_cookie(fetch_raw) -> str:
    """The ``_xsrf`` cookie the server hands a browser with any page (here the login page)."""
    response = await fetch_raw("login", auth=False)
    cookies = [c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie")]
    xsrf = [c for c in cookies if c.startswith("_xsrf=")]
    assert xsrf, cookies
    return xsrf[0]


async def test_cookie_post_needs_xsrf_and_deletes_nothing_without_it(
    jp_fetch, fetch_raw, session, other_process
):
    session.cache.set("a", 1)
    session.cache.set("b", 2)
    login = await _login_cookie(jp_fetch)
    xsrf = await _xsrf_cookie(fetch_raw)
    token = xsrf.split("=", 1)[1]
    count = "import jupyter_resman as r; print(len(r.get_session().cache))"

    response = await fetch_raw("resman/api/cache/clear", auth=False, method="POST",
                               body=json.dumps({"all": True}), headers={"Cookie": login})
    assert response.code == 403
    assert other_process(count).strip() == "2"

    # A cookie alone is not a token: the XSRF token must come back in a header.
    response = await fetch_raw("resman/api/cache/clear", auth=False, method="POST",
                               body=json.dumps({"all": True}),
                               headers={"Cookie": f"{login}; {xsrf}"})
    assert response.code == 403
    assert other_process(count).strip() == "2"

    response = await fetch_raw("resman/api/cache/clear", auth=False, method="POST",
                               body=json.dumps({"all": True}),
                               headers={"Cookie": f"{login}; {xsrf}", "X-XSRFToken": token})
    assert response.code == 200, response.body
    assert json.loads(response.body) == {"removed": 2}
    assert other_process(count).strip() == "0"


async def test_cookie_delete_needs_xsrf(jp_fetch, fetch_raw, session):
    session.checkpoints.save("run", {"step": 1})
    login = await _login_cookie(jp_fetch)
    xsrf = await _xsrf_cookie(fetch_raw)
    response = await fetch_raw("resman/api/checkpoints/run", auth=False, method="DELETE",
                               headers={"Cookie": login})
    assert response.code == 403
    assert "run" in session.checkpoints
    response = await fetch_raw("resman/api/checkpoints/run", auth=False, method="DELETE",
                               headers={"Cookie": f"{login}; {xsrf}",
                                        "X-XSRFToken": xsrf.split("=", 1)[1]})
    assert response.code == 200
    assert "run" not in session.checkpoints


async def test_cookie_get_works_without_xsrf_and_changes_nothing(jp_fetch, fetch_raw, session):
    session.cache.set("a", 1)
    login = await _login_cookie(jp_fetch)
    response = await fetch_raw("resman/api/cache", auth=False, headers={"Cookie": login})
    assert response.code == 200
    assert json.loads(response.body)["stats"]["entries"] == 1
    # GET on the clear route is not a way around POST.
    response = await fetch_raw("resman/api/cache/clear", auth=False, headers={"Cookie": login})
    assert response.code == 405
    assert session.cache.get("a") == 1


@pytest.mark.parametrize("name", [
    "..%2F..%2Foutside", "%2Fabs%2Fpath", "..%5Cx", "..", "a%2F..%2F..%2Fb"])
async def test_checkpoint_names_never_reach_outside_the_home(fetch_raw, session, tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "v00000001.ckpt").write_bytes(b"not ours")
    before = sorted(os.listdir(tmp_path))
    response = await fetch_raw(f"resman/api/checkpoints/{name}", method="DELETE")
    assert response.code in (400, 404)
    assert "message" in json.loads(response.body)
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(outside) == ["v00000001.ckpt"]
    assert (outside / "v00000001.ckpt").read_bytes() == b"not ours"


async def test_a_checkpoint_named_like_a_path_is_deleted_inside_the_home(fetch_raw, session):
    info = session.checkpoints.save("../evil", {"x": 1})
    assert info.path.is_relative_to(session.home.root)
    response = await fetch_raw("resman/api/checkpoints/..%2Fevil", method="DELETE")
    assert response.code == 200
    assert json.loads(response.body) == {"deleted": "../evil", "versions": 1}
    assert not info.path.exists()


async def test_cache_keys_and_namespaces_are_never_paths(fetch, session, tmp_path):
    session.cache.set("../../outside", 1)  # a legal key: it lives in the index, not in a path
    before = sorted(os.listdir(tmp_path))
    response = await fetch("resman", "api", "cache", "clear", method="POST",
                           body=json.dumps({"keys": ["../../outside", "/etc/passwd"]}))
    assert json.loads(response.body) == {"removed": 1}
    for namespace in ("../x", "/abs", "..\\x", "a\x00b"):
        response = await fetch("resman", "api", "cache", "clear", method="POST",
                               body=json.dumps({"namespace": namespace}))
        assert response.code == 400
    assert sorted(os.listdir(tmp_path)) == before
