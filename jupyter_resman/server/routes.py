"""The REST handlers (``docs/rest-api.md``): thin translations between HTTP and the core.

Every verb is ``@tornado.web.authenticated`` and ``@authorized`` on the
``resman`` resource (read for GET, write for POST and DELETE); jupyter_server
enforces XSRF on cookie-authenticated POST and DELETE. Each handler gathers
what only the server knows (its kernels), hands plain data to a
:mod:`jupyter_resman.core.reports` function running in the extension's
thread pool, and writes the JSON it returns. :func:`http_error` is the one
place where exceptions become HTTP statuses.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ..core import reports
from ..core.errors import IntegrityError, ResmanError
from .extension import ResmanExtension
from .kernels import running_kernels

__all__ = ["AUTH_RESOURCE", "SETTINGS_KEY", "http_error", "setup_route_handlers"]

log = logging.getLogger("jupyter_resman.server")

#: The resource name handed to the server's Authorizer.
AUTH_RESOURCE = "resman"
#: Where the extension's state lives in the tornado application's settings.
SETTINGS_KEY = "jupyter_resman"


def http_error(exc: BaseException) -> web.HTTPError:
    """The HTTP error a failure of the core becomes (``{"message": ...}`` in the body).

    Bad input (a ``ResmanError`` that is a ``ValueError``/``TypeError``) is
    400, an unknown name (a ``KeyError``) 404; anything else — a full disk, a
    damaged store, a bug — is 500 with a message, logged with its traceback.
    """
    if isinstance(exc, web.HTTPError):
        return exc
    if isinstance(exc, ResmanError) and not isinstance(exc, IntegrityError):
        # IntegrityError is a ValueError about stored bytes, not about the request.
        if isinstance(exc, (ValueError, TypeError)):
            return web.HTTPError(400, _escape(str(exc)))
        if isinstance(exc, KeyError):
            return web.HTTPError(404, _escape(str(exc)))
    if isinstance(exc, ResmanError):
        log.error("jupyter_resman request failed: %s", exc, exc_info=exc)
        return web.HTTPError(500, _escape(str(exc)))
    log.error("jupyter_resman request failed unexpectedly", exc_info=exc)
    return web.HTTPError(500, _escape(f"internal error in jupyter_resman ({type(exc).__name__}: "
                                      f"{exc}); the server log has the details"))


def _escape(message: str) -> str:
    # HTTPError formats log_message with %-args; a message is text, never a template.
    return message.replace("%", "%%")


def _json_of(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    return json.dumps(fn(*args, **kwargs), allow_nan=False)


class ResmanHandler(APIHandler):
    """Base of the jupyter_resman handlers: authorization resource, pool, errors."""

    auth_resource = AUTH_RESOURCE

    @property
    def extension(self) -> ResmanExtension:
        return self.settings[SETTINGS_KEY]

    async def respond(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Write ``fn(*args, **kwargs)`` as JSON; both run in the extension's pool.

        Serializing there too keeps a large answer (many kernels' samples) off
        the event loop. Failures become HTTP errors through :func:`http_error`.
        """
        try:
            text = await self.extension.run(_json_of, fn, *args, **kwargs)
        except Exception as exc:
            raise http_error(exc) from exc
        self.set_header("Content-Type", "application/json")
        self.finish(text)

    async def kernels(self) -> list[reports.KernelInfo]:
        return await running_kernels(self.kernel_manager, self.session_manager)


class MetricsHandler(ResmanHandler):
    def compute_etag(self) -> None:
        # Usage changes on every request: hashing each answer for an ETag buys nothing.
        return None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        ext = self.extension
        since = self.get_query_argument("since", None)
        kernels = await self.kernels()
        # ext.sampler is read in the pool too: building it reads cgroup files.
        await self.respond(lambda: reports.metrics_report(
            ext.session, kernels, ext.sampler, since=since,
            warning_threshold=ext.warning_threshold))


class CacheHandler(ResmanHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        since = self.get_query_argument("since", None)
        await self.respond(lambda: reports.cache_report(self.extension.session, since))


class CacheClearHandler(ResmanHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self._json_body()
        await self.respond(lambda: reports.clear_cache(self.extension.session, body))

    def _json_body(self) -> Any:
        if not self.request.body.strip():
            raise web.HTTPError(400, "empty body; send a JSON object such as "
                                     "{\"namespace\": \"emb\"} or {\"all\": true}")
        try:
            return json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise web.HTTPError(400, _escape(f"the body is not valid JSON ({exc})")) from None


class ProgressHandler(ResmanHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        kernels = await self.kernels()
        await self.respond(lambda: reports.progress_report(self.extension.session, kernels))


class CheckpointsHandler(ResmanHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.respond(lambda: reports.checkpoints_report(self.extension.session))


class CheckpointHandler(ResmanHandler):
    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.respond(lambda: reports.delete_checkpoint(self.extension.session, name))


class RegistryHandler(ResmanHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        # Only the parameters the report knows: a browser's cache-busting "?1712..." is ignored.
        params = {name: self.get_query_argument(name, None) for name in reports.REGISTRY_PARAMS}
        await self.respond(lambda: reports.registry_report(self.extension.session, params))


class RegistryItemHandler(ResmanHandler):
    @web.authenticated
    @authorized
    async def get(self, resource_id: str) -> None:
        await self.respond(
            lambda: reports.registry_item_report(self.extension.session, resource_id))


class ResourcesHandler(ResmanHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        kernels = await self.kernels()
        await self.respond(lambda: reports.resources_report(self.extension.session, kernels))


#: ``(path under {base_url}resman/api/, handler)``; names and ids in paths are URL-decoded.
#: Every route is read-only except cache/clear and checkpoint DELETE: the registry and the
#: resource providers are changed only from kernels.
ROUTES: list[tuple[str, type[ResmanHandler]]] = [
    ("metrics", MetricsHandler),
    ("cache", CacheHandler),
    ("cache/clear", CacheClearHandler),
    ("progress", ProgressHandler),
    ("checkpoints", CheckpointsHandler),
    ("checkpoints/(.+)", CheckpointHandler),
    ("registry", RegistryHandler),
    ("registry/(.+)", RegistryItemHandler),
    ("resources", ResourcesHandler),
]


def setup_route_handlers(web_app: Any, extension: ResmanExtension) -> None:
    """Register every route on the server's tornado application."""
    web_app.settings[SETTINGS_KEY] = extension
    base = url_path_join(web_app.settings["base_url"], "resman", "api")
    web_app.add_handlers(".*$", [(url_path_join(base, path) + "$", handler)
                                 for path, handler in ROUTES])
