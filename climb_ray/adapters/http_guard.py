"""What every request to the predictor's HTTP app passes first, as plain ASGI (no Ray, no routes):
the Host check on a loopback bind, the bearer token, JSON bodies, the page's caching, and hot paths
answered past the app's routing. The token and hosts come from api_models.TOKEN, set per replica."""

import hashlib
import hmac

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, RedirectResponse, Response

from climb_ray import api_models

PUBLIC = {"/", "/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}  # open without the token; the
PUBLIC_PREFIXES = ("/static/", "/static-offline-docs/")  # page's files too; every other path needs it


def is_loopback(host: str) -> bool:
    """A loopback name or address (localhost, 127.0.0.0/8, ::1)."""
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def route_path(scope: dict) -> str:
    """The path the app routes on: without Serve's route_prefix or an ingress root_path, which
    the request's path carries."""
    path, root = scope.get("path", ""), (scope.get("root_path") or "").rstrip("/")
    return path[len(root):] or "/" if root and (path == root or path.startswith(root + "/")) else path


def host_name(header: str) -> str:
    """The name of a Host header, without its port ('[::1]:8000' -> '[::1]')."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def refusal(scope: dict, public: bool) -> Response | None:
    """The answer to a request the guard stops, or None to let it through."""
    root, method = (scope.get("root_path") or "").rstrip("/"), scope.get("method", "GET")
    if root and scope.get("path") == root and method == "GET":  # /climb -> /climb/: the page's relative
        return RedirectResponse(root + "/", status_code=307)  # links then stay under the prefix
    headers = Headers(scope=scope)
    name = host_name(headers.get("host", "")).lower()
    if api_models.TOKEN.get("loopback") and name and not is_loopback(name) and name not in api_models.TOKEN["hosts"]:
        return JSONResponse({"detail": f"Host {headers.get('host', '')!r} is not a loopback name; this server "
                                       "listens on loopback only (serve.allowed_hosts lists other names, e.g. a "
                                       "reverse proxy's)"}, status_code=421)
    expected = api_models.TOKEN["sha256"]
    if expected and not public:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        given = hashlib.sha256(token.strip().encode()).hexdigest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
            return JSONResponse({"detail": "missing or wrong bearer token (send Authorization: Bearer <token>)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
    if method in ("POST", "PUT", "PATCH"):
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            return JSONResponse({"detail": f"Content-Type {kind or '(none)'!r}: send application/json"},
                                status_code=415)
    return None


class Guard:
    """Before anything else: on a loopback bind, a Host header that is not a loopback name is refused
    (a DNS-rebinding page in a browser); then every path but the public ones needs the token when the
    server has one; request bodies must be JSON. The page's files get Cache-Control: no-cache. Plain
    ASGI: Starlette's @app.middleware("http") cost ~2.5 ms a request here (docs/benchmarks.md)."""

    def __init__(self, asgi, fast: dict | None = None):
        self.asgi = asgi
        self.fast = fast or {}  # (method, path) -> an ASGI handler answering past the app's routing

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.asgi(scope, receive, send)
        path = route_path(scope)
        public = path in PUBLIC or path.startswith(PUBLIC_PREFIXES)
        refused = refusal(scope, public)
        if refused is not None:
            return await refused(scope, receive, send)
        fast = self.fast.get((scope.get("method"), path))
        if fast is not None:
            return await fast(scope, receive, send)
        if not public:
            return await self.asgi(scope, receive, send)

        async def revalidated(message):  # the page: revalidated, so an upgrade is seen at once
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("Cache-Control", "no-cache")
            await send(message)
        await self.asgi(scope, receive, revalidated)
