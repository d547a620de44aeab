"""URL inputs against a local HTTP server on 127.0.0.1 that the tests start and stop.

The server binds loopback only, answers at most ``MAX_REQUESTS`` requests, never holds a
request for more than ``HOLD_S`` seconds, and on teardown wakes every handler and shuts down
every connection it accepted (keep-alive ones included).
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from inputs_media import audio_bytes, image_bytes, rgb_array

from clipclap_integrations import (
    Audio,
    ClipClapEmbedder,
    ClipClapInputError,
    Image,
    Modality,
)
from clipclap_integrations.inputs import remote
from clipclap_integrations.inputs.remote import fetch

pytestmark = pytest.mark.server

MAX_REQUESTS = 400
HOLD_S = 15.0  # the longest any handler stalls or streams
PNG = image_bytes("PNG")
PPM = image_bytes("PPM")  # an image format nothing sniffs: only Content-Type can tell
WAV = audio_bytes("WAV")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive capable, so teardown must close connections
    timeout = HOLD_S  # socket timeout for idle keep-alive reads
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str | None = None, **headers: str):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        if "Content_Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _hold(self, seconds: float = HOLD_S) -> None:
        self.server.stopping.wait(seconds)

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.requests += 1
            srv.hits[self.path] += 1
            over = srv.requests > MAX_REQUESTS
        if over:
            return self._send(503, b"too many requests", "text/plain")
        path = self.path
        if path.startswith("http://"):  # asked as a proxy: serve the path of the absolute URL
            srv.proxied.append(path)
            path = "/" + path.split("/", 3)[3]
        if path.startswith("/slow/"):  # /slow/<seconds>/<rest>
            _, _, delay, rest = path.split("/", 3)
            self._hold(float(delay))
            path = "/" + rest
        routes = {
            "/img.png": (PNG, "image/png"),
            "/pic": (PNG, "image/png"),
            "/sound": (WAV, "audio/wav"),
            "/ppm": (PPM, "image/x-portable-pixmap"),
            "/ppm-octet": (PPM, "application/octet-stream"),
            "/wrong-type": (PNG, "audio/wav"),
            "/lies.png": (WAV, "image/png"),
            "/page": (b"<html><body>hello</body></html>", "text/html; charset=utf-8"),
        }
        if path in routes or path.startswith("/img-"):
            body, ctype = routes.get(path, (PNG, "image/png"))
            return self._send(200, body, ctype)
        if path == "/empty":
            return self._send(200, b"", "image/png")
        if path == "/missing":
            return self._send(404, b"not here", "text/plain")
        if path == "/error":
            return self._send(500, b"oops", "text/plain")
        if path.startswith("/r/"):  # /r/<hops>/<target>: a chain of redirects
            _, _, hops, target = path.split("/", 3)
            location = f"/r/{int(hops) - 1}/{target}" if int(hops) > 1 else "/" + target
            return self._send(302, Location=location)
        if path.startswith("/to/"):  # /to/<absolute URL>: one redirect, to anywhere
            return self._send(302, Location=path[len("/to/") :])
        if path == "/loop":
            return self._send(302, Location="/loop")
        if path == "/to-file":
            return self._send(302, Location="file:///etc/passwd")
        if path == "/to-ftp":
            return self._send(301, Location="ftp://127.0.0.1/x.png")
        if path == "/stall":  # accept, then never answer
            return self._hold()
        if path == "/stall-body":  # headers, a little body, then nothing
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG[:50])
            self.wfile.flush()
            return self._hold()
        if path == "/drip":  # a byte at a time, each well within the socket timeout
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            deadline = time.monotonic() + HOLD_S
            try:
                for byte in PNG * 1000:
                    if self.server.stopping.is_set() or time.monotonic() > deadline:
                        break
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
            self.close_connection = True
            return None
        if path == "/forever":  # streams without end (no Content-Length)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            chunk, sent, deadline = b"\0" * 65536, 0, time.monotonic() + HOLD_S
            try:
                while not self.server.stopping.is_set() and time.monotonic() < deadline:
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if sent > 1 << 30:
                        break
            except OSError:
                pass
            self.close_connection = True
            return None
        if path == "/huge":  # declares a terabyte
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(PNG[:100])
            self.close_connection = True
            return self._hold(2.0)
        if path == "/short":  # declares more than it sends, then closes
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(PNG[:100])
            self.close_connection = True
            return None
        return self._send(404, b"no route", "text/plain")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.hits: Counter[str] = Counter()
        self.proxied: list[str] = []
        self.sockets: list[socket.socket] = []
        super().__init__((host, 0), _Handler)

    def get_request(self):  # type: ignore[no-untyped-def]
        conn, addr = super().get_request()
        with self.lock:
            self.sockets.append(conn)
        return conn, addr

    def close_all(self) -> None:
        self.stopping.set()
        self.shutdown()
        with self.lock:
            sockets = list(self.sockets)
        for conn in sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.server_close()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.server_address[0]}:{self.server_address[1]}{path}"


@contextlib.contextmanager
def _serving(host: str = "127.0.0.1") -> Iterator[_Server]:
    srv = _Server(host)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.close_all()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert srv.requests <= MAX_REQUESTS


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    with _serving() as srv:
        yield srv


# 127.0.0.2 is loopback too (all of 127/8 is), so a server there stands in for a PUBLIC
# host in the tests below, which count it as public; 127.0.0.1 stays what it is.
STAND_IN_PUBLIC = "127.0.0.2"


@pytest.fixture(scope="module")
def public_server() -> Iterator[_Server]:
    with _serving(STAND_IN_PUBLIC) as srv:
        yield srv


@pytest.fixture
def stand_in_public(monkeypatch: pytest.MonkeyPatch) -> None:
    real = remote.non_public_kind
    monkeypatch.setattr(
        remote, "non_public_kind", lambda ip: None if str(ip) == STAND_IN_PUBLIC else real(ip)
    )


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Names in the returned dict resolve to their next list of addresses, one list a call."""
    answers: dict[str, list[list[str]]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in answers:
            return real(host, port, *args, **kwargs)
        addresses = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir, remote_timeout=1.0, max_remote_bytes=1 << 20)


@pytest.fixture(scope="module")
def png_vector(embedder: ClipClapEmbedder) -> np.ndarray:
    return embedder.embed([PNG])[0]


def test_url_with_extension(embedder, server, png_vector) -> None:
    url = server.url("/img.png")
    assert embedder.detect(url) is Modality.IMAGE
    np.testing.assert_allclose(embedder.embed([url])[0], png_vector, atol=1e-6)
    part = {"type": "image_url", "image_url": {"url": url}}
    np.testing.assert_allclose(embedder.embed([part])[0], png_vector, atol=1e-6)


def test_extensionless_urls_by_content(embedder, server, png_vector) -> None:
    assert embedder.detect(server.url("/pic")) is Modality.IMAGE
    assert embedder.detect(server.url("/sound")) is Modality.AUDIO
    vectors = embedder.embed([server.url("/pic"), server.url("/sound")])
    np.testing.assert_allclose(vectors[0], png_vector, atol=1e-6)
    np.testing.assert_allclose(vectors[1], embedder.embed([WAV])[0], atol=1e-6)


def test_content_type_alone_decides_when_content_says_nothing(embedder, server) -> None:
    url = server.url("/ppm")  # no extension, no magic we sniff: image/x-portable-pixmap
    assert embedder.detect(url) is Modality.IMAGE
    np.testing.assert_allclose(
        embedder.embed([url])[0], embedder.embed([rgb_array()])[0], atol=1e-6
    )
    with pytest.raises(ClipClapInputError, match="application/octet-stream content"):
        embedder.detect(server.url("/ppm-octet"))
    with pytest.raises(ClipClapInputError, match="text/html content"):
        embedder.embed(["fine", server.url("/page")])


def test_content_beats_a_wrong_content_type(embedder, server) -> None:
    assert embedder.detect(server.url("/wrong-type")) is Modality.IMAGE


def test_extension_that_lies(embedder, server) -> None:
    url = server.url("/lies.png")
    assert embedder.detect(url) is Modality.IMAGE  # by extension, without fetching
    with pytest.raises(ClipClapInputError, match=r"input 0 .*extension says image.*audio/wav"):
        embedder.embed([url])
    assert embedder.embed([Audio(url)]).shape == (1, embedder.dim)  # stated: decoded as audio


def test_wrapper_states_the_modality_of_a_url(embedder, server) -> None:
    with pytest.raises(ClipClapInputError, match="not a recognizable image"):
        embedder.embed([Image(server.url("/sound"))])


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing", "HTTP 404"),
        ("/error", "HTTP 500"),
        ("/empty", "no content"),
        ("/short", "cut short"),
        ("/loop", "redirects too many times"),
        ("/r/9/img.png", "redirects too many times"),
        ("/to-file", "redirects to a file: URL"),
        ("/to-ftp", "redirects to a ftp: URL"),
        ("/r/2/to-file", "redirects to a file: URL"),
    ],
)
def test_bad_urls(embedder, server, path: str, message: str) -> None:
    url = server.url(path)
    with pytest.raises(ClipClapInputError, match=message) as info:
        embedder.embed(["a cat", url])
    assert info.value.index == 1 and "127.0.0.1" in info.value.item_description


def test_redirect_chain_is_followed(embedder, server, png_vector) -> None:
    np.testing.assert_allclose(embedder.embed([server.url("/r/4/pic")])[0], png_vector, atol=1e-6)


@pytest.mark.parametrize("path", ["/stall", "/stall-body", "/drip"])
def test_timeout_is_a_total_deadline(embedder, server, path: str) -> None:
    start = time.monotonic()
    with pytest.raises(ClipClapInputError, match=r"within 1 s \(remote_timeout\)"):
        embedder.embed([server.url(path)])
    assert time.monotonic() - start < 2.5


def test_endless_response_stops_at_the_size_limit(embedder, server) -> None:
    start = time.monotonic()
    with pytest.raises(ClipClapInputError, match="more than the limit of 1,048,576 bytes"):
        embedder.embed([server.url("/forever")])
    assert time.monotonic() - start < 2.5


def test_declared_length_over_the_limit_is_refused_unread(embedder, server) -> None:
    start = time.monotonic()
    with pytest.raises(ClipClapInputError, match="serves 1,000,000,000,000 bytes, over the limit"):
        embedder.embed([server.url("/huge")])
    assert time.monotonic() - start < 1.0


def test_unreachable(embedder) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ClipClapInputError, match="unreachable"):
        embedder.embed([f"http://127.0.0.1:{port}/x.png"])


def test_many_urls_are_fetched_concurrently(tiny_model_dir, server) -> None:
    e = ClipClapEmbedder(tiny_model_dir, remote_timeout=5.0)
    delay, n = 0.5, 8
    urls = [server.url(f"/slow/{delay}/img-{i}.png") for i in range(n)]
    start = time.monotonic()
    vectors = e.embed(urls)
    elapsed = time.monotonic() - start
    assert elapsed < n * delay / 2, f"{elapsed:.2f} s for {n} URLs of {delay} s each"
    assert np.allclose(vectors, vectors[0], atol=1e-6)


def test_each_distinct_url_is_fetched_once(embedder, server) -> None:
    url = server.url("/img-once.png")
    before = server.hits["/img-once.png"]
    vectors = embedder.embed([url, "a cat", url, url])
    assert server.hits["/img-once.png"] - before == 1
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_one_bad_url_fails_the_whole_call(embedder, server) -> None:
    with pytest.raises(ClipClapInputError) as info:
        embedder.embed([server.url("/img.png"), "text", server.url("/missing")])
    assert info.value.index == 2


def test_fetch_refuses_other_schemes() -> None:
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x", "http://"):
        with pytest.raises(ClipClapInputError):
            fetch(url, timeout=1.0, max_bytes=100)


# -- allow_private_urls=False: only public addresses, checked where the connection goes -------
@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.10", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud instance metadata
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT (shared address space)
        ("240.0.0.1", "private"),  # reserved (Python counts 240/4 as private too)
        ("64:ff9b::127.0.0.1", "loopback"),  # NAT64: the IPv4 address it carries decides
        ("64:ff9b::8.8.8.8", None),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("fec0::1", "private"),  # site-local (deprecated)
        ("93.184.215.14", None),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    import ipaddress

    assert remote.non_public_kind(ipaddress.ip_address(address)) == kind


def test_private_urls_are_refused_unrequested(tiny_model_dir, server) -> None:
    closed = ClipClapEmbedder(tiny_model_dir, remote_timeout=2.0, allow_private_urls=False)
    url = server.url("/img-private.png")
    with pytest.raises(
        ClipClapInputError, match=r"loopback address.*allow_private_urls=False"
    ) as info:
        closed.embed(["a cat", url])
    assert info.value.index == 1 and info.value.item_description == repr(url)
    assert server.hits["/img-private.png"] == 0  # refused before any request was sent
    with pytest.raises(ClipClapInputError, match="loopback address"):
        closed.embed([server.url("/img-private.png", host="localhost")])
    assert server.hits["/img-private.png"] == 0


def test_public_urls_are_fetched(
    tiny_model_dir, public_server, stand_in_public, png_vector
) -> None:
    closed = ClipClapEmbedder(tiny_model_dir, remote_timeout=2.0, allow_private_urls=False)
    np.testing.assert_allclose(
        closed.embed([public_server.url("/r/2/pic")])[0], png_vector, atol=1e-6
    )


def test_a_redirect_to_a_private_address_is_refused(
    tiny_model_dir, server, public_server, stand_in_public
) -> None:
    closed = ClipClapEmbedder(tiny_model_dir, remote_timeout=2.0, allow_private_urls=False)
    inside = server.url("/img-inside.png")
    with pytest.raises(ClipClapInputError, match=r"127\.0\.0\.1 is a loopback address"):
        closed.embed([public_server.url("/to/" + inside)])
    assert public_server.hits["/to/" + inside] == 1 and server.hits["/img-inside.png"] == 0
    opened = ClipClapEmbedder(tiny_model_dir, remote_timeout=2.0)  # the default follows it
    opened.embed([public_server.url("/to/" + inside)])
    assert server.hits["/img-inside.png"] == 1


def test_dns_rebinding_cannot_pass_the_check(
    tiny_model_dir, public_server, stand_in_public, fake_dns, png_vector
) -> None:
    # A rebinding name: public at the first lookup, loopback at every later one.
    fake_dns["rebind.test"] = [[STAND_IN_PUBLIC], ["127.0.0.1"]]
    closed = ClipClapEmbedder(tiny_model_dir, remote_timeout=2.0, allow_private_urls=False)
    url = public_server.url("/img-rebind.png", host="rebind.test")
    np.testing.assert_allclose(closed.embed([url])[0], png_vector, atol=1e-6)
    assert public_server.hits["/img-rebind.png"] == 1  # connected to the address it checked
    with pytest.raises(ClipClapInputError, match=r"rebind\.test \(127\.0\.0\.1\) is a loopback"):
        closed.embed([url.replace(".png", "-again.png")])  # the next lookup says loopback


def test_a_name_with_any_private_address_is_refused(tiny_model_dir, fake_dns) -> None:
    fake_dns["mixed.test"] = [["93.184.215.14", "10.0.0.7"]]
    closed = ClipClapEmbedder(tiny_model_dir, remote_timeout=2.0, allow_private_urls=False)
    with pytest.raises(ClipClapInputError, match=r"mixed\.test \(10\.0\.0\.7\) is a private"):
        closed.embed(["http://mixed.test/x.png"])


def test_through_a_proxy_the_target_is_checked(
    tiny_model_dir, server, stand_in_public, fake_dns, monkeypatch, png_vector
) -> None:
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", server.url(""))  # the loopback test server is the proxy
    fake_dns["media.test"] = [[STAND_IN_PUBLIC]]
    closed = ClipClapEmbedder(tiny_model_dir, remote_timeout=2.0, allow_private_urls=False)
    before = len(server.proxied)
    np.testing.assert_allclose(
        closed.embed(["http://media.test/img-proxied.png"])[0], png_vector, atol=1e-6
    )
    assert server.proxied[before:] == ["http://media.test/img-proxied.png"]
    with pytest.raises(ClipClapInputError, match=r"10\.0\.0\.1 is a private address"):
        closed.embed(["http://10.0.0.1/img-internal.png"])
    assert len(server.proxied) == before + 1  # the proxy was never asked for it


def test_long_url_lists_are_fetched_a_group_at_a_time(
    tiny_model_dir, server, png_vector, monkeypatch
) -> None:
    from clipclap_integrations import embedder as core

    held: list[int] = []
    real = core.resolve_remote

    def spy(items, indices, options):  # type: ignore[no-untyped-def]
        held.append(len(items))
        return real(items, indices, options)

    monkeypatch.setattr(core, "URLS_PER_FETCH", 2)
    monkeypatch.setattr(core, "resolve_remote", spy)
    e = ClipClapEmbedder(tiny_model_dir, remote_timeout=5.0)
    urls = [server.url(f"/img-group-{i}.png") for i in range(5)]
    vectors = e.embed([urls[0], "a caption", *urls[1:]])
    assert held == [2, 2, 1]  # never more than two downloads held at once
    np.testing.assert_allclose(vectors[[0, 2, 3, 4, 5]], np.tile(png_vector, (5, 1)), atol=1e-6)
    np.testing.assert_allclose(vectors[1], e.embed_text(["a caption"])[0], atol=1e-6)
    with pytest.raises(ClipClapInputError) as info:  # positions count from the whole call
        e.embed_images([*urls, server.url("/missing")])
    assert info.value.index == 5
