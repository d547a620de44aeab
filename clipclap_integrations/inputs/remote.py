"""Fetching http(s) URLs with a timeout, a size cap and no scheme other than http(s).

``fetch`` bounds a download three ways: every socket operation times out after ``timeout``
seconds, a watchdog shuts the connection down once ``timeout`` seconds have passed in all
(so a server that drips one byte at a time, or stalls mid-header, cannot hold a call for
longer), and no more than ``max_bytes`` bytes are read (a declared ``Content-Length`` over the
limit is refused before the body is read). Redirects are followed only to http(s) URLs, at
most ``MAX_REDIRECTS`` times. Every failure is a ``ClipClapInputError``.

With ``public_only`` only public internet addresses are contacted: a host that resolves to a
loopback, private, link-local (cloud metadata), shared, multicast or reserved address is
refused, on the first request and on every redirect. The address checked is the address
connected to (one resolution per connection), so DNS rebinding cannot slip past the check.
Through a proxy (``http_proxy``/``https_proxy``) the proxy itself is trusted and the target's
name is checked by resolving it here; the proxy resolves it again on its own.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..errors import ClipClapInputError

USER_AGENT = "clipclap-integrations (+https://pypi.org/project/clipclap-integrations/)"
MAX_REDIRECTS = 5
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None


class _Watchdog:
    """Shuts down every socket of one download when its time is up."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout, self.expire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        self._shutdown(sock)

    def late(self) -> bool:
        """Whether the time is up (the timer may not have fired yet)."""
        return self.expired or time.monotonic() >= self.deadline

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def non_public_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """What kind of non-public address ``ip`` is ("loopback", "private", ...), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:  # judged by the IPv4 address it carries
            return non_public_kind(embedded)
        if ip in _SITE_LOCAL:
            return "private"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for kind, hit in checks:
        if hit:
            return kind
    return None if ip.is_global else "non-public"


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed on some networks


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def _public_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for ``host``, refused whole if any address it gives is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ClipClapInputError(f"the URL is unreachable ({exc})") from None
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone
        kind = non_public_kind(ipaddress.ip_address(address))
        if kind is not None:
            shown = host if host == address else f"{host} ({address})"
            raise ClipClapInputError(
                f"the URL's host {shown} is a {kind} address; only public addresses are "
                "fetched (allow_private_urls=False)"
            )
    return infos


def _connect_public(
    address: tuple[str, int], timeout: Any = None, source_address: Any = None, **_: Any
) -> socket.socket:
    """``socket.create_connection`` that connects only to addresses it has checked itself."""
    host, port = address
    last: OSError | None = None
    for family, kind, proto, _name, sockaddr in _public_addresses(host, port):
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None and timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            last = exc
            sock.close()
    raise last or OSError(f"no address for {host}")


class _Tracked:
    """Mixed into an HTTP(S) connection: its socket is handed to the watchdog on connect; with
    ``public_only`` it connects only to public addresses."""

    sock: socket.socket

    def __init__(
        self, *args: Any, watchdog: _Watchdog, public_only: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog
        if public_only:
            self._create_connection = _connect_public

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watchdog.track(self.sock)


class _TrackedHTTPConnection(_Tracked, http.client.HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, http.client.HTTPSConnection):
    pass


def _pin_public(req: urllib.request.Request, public_only: bool) -> bool:
    """Whether the connection for ``req`` must pin public addresses itself.

    Through a proxy the connection goes to the proxy (trusted); the target is checked here.
    """
    if not public_only:
        return False
    tunnel = getattr(req, "_tunnel_host", None)  # https through a proxy (CONNECT)
    if tunnel or req.has_proxy():  # has_proxy: http through a proxy
        target = urllib.parse.urlsplit(req.full_url)
        _public_addresses(target.hostname or "", target.port or 0)
        return False
    return True


class _Handler:
    """Mixed into urllib's HTTP(S) handler: opens tracked connections (see ``_pin_public``)."""

    def __init__(self, watchdog: _Watchdog, public_only: bool) -> None:
        super().__init__()
        self._watchdog = watchdog
        self._public_only = public_only

    def _open_with(
        self, tracked: type[_Tracked], req: urllib.request.Request, **kwargs: Any
    ) -> http.client.HTTPResponse:
        pin = _pin_public(req, self._public_only)

        def connection(host: str, **kw: Any) -> _Tracked:
            return tracked(host, watchdog=self._watchdog, public_only=pin, **kw)

        return self.do_open(connection, req, **kwargs)  # type: ignore[attr-defined]


class _HTTPHandler(_Handler, urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self._open_with(_TrackedHTTPConnection, req)


class _HTTPSHandler(_Handler, urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self._open_with(_TrackedHTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    @staticmethod
    def _refuse(fp: Any, newurl: str) -> None:
        try:
            scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        except ValueError:
            scheme = "malformed"
        if scheme not in ("http", "https"):
            fp.close()
            raise ClipClapInputError(
                f"the URL redirects to a {scheme}: URL; only http and https are followed"
            )

    def http_error_302(self, req, fp, code, msg, headers):  # type: ignore[no-untyped-def]
        target = headers.get("location") or headers.get("uri")
        if target:  # checked before urllib's own check, for one clear message
            self._refuse(fp, urllib.parse.urljoin(req.full_url, target))
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        self._refuse(fp, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(watchdog: _Watchdog, public_only: bool) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),  # honours http_proxy / https_proxy / no_proxy
        _HTTPHandler(watchdog, public_only),
        _HTTPSHandler(watchdog, public_only),
        _HttpOnlyRedirects(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.UnknownHandler(),
    ):
        opener.add_handler(handler)
    return opener


def fetch(url: str, *, timeout: float, max_bytes: int, public_only: bool = False) -> Fetched:
    """Download ``url`` whole, within the bounds the module's docstring describes."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ClipClapInputError(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ClipClapInputError(f"only http and https URLs are fetched, not {scheme}:")
    if not host:
        raise ClipClapInputError("not a valid URL (no host)")
    request = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    )
    with _Watchdog(timeout) as watchdog:
        try:
            return _download(_opener(watchdog, public_only), request, max_bytes, watchdog)
        except ClipClapInputError:
            raise
        except Exception as exc:
            if watchdog.late():
                raise ClipClapInputError(_too_slow(timeout)) from None
            raise ClipClapInputError(_describe_failure(exc, timeout)) from None


def _download(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    max_bytes: int,
    watchdog: _Watchdog,
) -> Fetched:
    with opener.open(request, timeout=watchdog.timeout) as response:
        length = response.headers.get("Content-Length", "").strip()
        declared = int(length) if length.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise ClipClapInputError(
                f"the URL serves {declared:,} bytes, over the limit of {max_bytes:,} "
                "(max_remote_bytes)"
            )
        chunks: list[bytes] = []
        total = 0
        while True:
            if watchdog.late():
                raise ClipClapInputError(_too_slow(watchdog.timeout))
            chunk = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise ClipClapInputError(
                    f"the URL serves more than the limit of {max_bytes:,} bytes (max_remote_bytes)"
                )
            chunks.append(chunk)
        if watchdog.expired:  # the watchdog's shutdown reads as a clean end of stream
            raise ClipClapInputError(_too_slow(watchdog.timeout))
        if declared is not None and total < declared:
            raise ClipClapInputError(
                f"the download was cut short ({total:,} of {declared:,} bytes)"
            )
        return Fetched(b"".join(chunks), response.headers.get("Content-Type"))


def _too_slow(timeout: float) -> str:
    return f"the URL did not deliver its content within {timeout:g} s (remote_timeout)"


def _describe_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        with contextlib.suppress(Exception):
            exc.close()
        if "infinite loop" in str(exc.msg):
            return "the URL redirects too many times (or in a loop)"
        return f"the URL answered HTTP {exc.code} {exc.reason}".rstrip()
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout) or "timed out" in str(reason):
            return _too_slow(timeout)
        return f"the URL is unreachable ({reason})"
    if isinstance(exc, TimeoutError | socket.timeout):
        return _too_slow(timeout)
    if isinstance(exc, http.client.IncompleteRead):
        return "the download was cut short"
    return f"the download failed ({type(exc).__name__}: {exc})"
