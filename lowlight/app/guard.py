"""The app answers its own page only: requests from other web pages, or under another name, are refused.

A local server is reachable from every page the person's browser opens. Two doors:

- **Cross-origin requests.** A ``fetch(..., {method: "POST", body, headers: {"Content-Type":
  "text/plain"}})`` from any website is a "simple" request: the browser sends it without
  asking (no CORS preflight), only hiding the answer. So the app refuses any request whose
  ``Origin`` is not its own address (403), and, where a browser sends no Origin, a
  ``Sec-Fetch-Site`` other than same-origin on anything but a read.
- **DNS rebinding.** A website can point its own name at 127.0.0.1 after the page loads; the
  browser then treats the app as that website's own origin. The ``Host`` header still says the
  website's name, so a Host that is not the address the app listens on is refused (421).

Clients that are not browsers (curl, scripts) send no Origin and an honest Host, and pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["own_hosts", "refusal", "OwnPageOnly"]

_READS = {"GET", "HEAD"}


def _host_forms(host: str, port: int) -> set[str]:
    """The Host header values that name ``host:port`` (the port may be left out when it is 80)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # a dual-stack socket reports 127.0.0.1 as ::ffff:127.0.0.1
            return _host_forms(str(ip.ipv4_mapped), port)
        host = f"[{ip.compressed}]"
    host = host.lower()
    return {f"{host}:{port}"} | ({host} if port == 80 else set())


def _is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def own_hosts(server: tuple[str, int] | None, names: Iterable[str] = ()) -> set[str]:
    """The Host values that mean this app: the address the connection reached (the listening
    socket's own), ``localhost`` when that is a loopback address, and ``names`` (``--host`` given
    as a name) at that port."""
    if not server:
        return set()
    host, port = server[0], int(server[1])
    forms = _host_forms(host, port)
    for name in (*names, *(["localhost"] if _is_loopback(host) else [])):
        forms |= _host_forms(name, port)
    return forms


def refusal(method: str, headers: dict[str, str], hosts: set[str]) -> tuple[int, str] | None:
    """(status, one-line message) for a request the app must not answer, or None.

    ``headers``: lower-case names; ``hosts``: :func:`own_hosts`."""
    host = headers.get("host", "").strip().lower()
    if host not in hosts:
        shown = host[:80] or "(none)"
        return 421, (f"Host {shown!r} is not this app's address ({sorted(hosts)[0] if hosts else '?'}); "
                     "open the app at the address `lowlight app` printed (a web page that renames itself to "
                     "reach a local app is refused)")
    origin = headers.get("origin")
    if origin is not None and origin.strip().lower() not in {f"http://{h}" for h in hosts}:
        return 403, (f"requests from the web page {origin[:80]!r} are refused; only the app's own page "
                     f"(http://{host}/) may use it")
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if origin is None and method not in _READS and fetch_site not in ("", "same-origin", "none"):
        return 403, f"a {fetch_site} request is refused; only the app's own page (http://{host}/) may use it"
    return None


class OwnPageOnly:
    """ASGI middleware: :func:`refusal` before any endpoint runs, answered as the API's JSON errors."""

    def __init__(self, app, names: Iterable[str] = ()):
        self.app = app
        self.names = tuple(names)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {}
        for key, value in scope.get("headers", []):
            name = key.decode("latin-1").lower()
            if name in ("host", "origin", "sec-fetch-site"):
                if name in headers:  # two Host or Origin headers: which one a proxy reads is anyone's guess
                    headers[name] = "\x00duplicate"
                else:
                    headers[name] = value.decode("latin-1")
        refused = refusal(scope.get("method", "GET"), headers, own_hosts(scope.get("server"), self.names))
        if refused is None:
            return await self.app(scope, receive, send)
        from fastapi.responses import JSONResponse

        status, message = refused
        await JSONResponse({"error": message}, status_code=status)(scope, receive, send)
