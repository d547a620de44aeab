"""The stand-in Hub's HTTP side: routing, responses as the Hub writes them, injected faults.

The routes are listed in :mod:`.standin_hub`. The server tracks its client sockets, so that
stopping it closes keep-alive connections too (``shutdown()`` alone leaves them served).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import sys
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from ..runtime.hub_client import DEFAULT_REVISION, is_commit
from .standin_repo import Fault, RepoFile, Request, Revision

HOST = "127.0.0.1"
_CHUNK = 256 * 1024


class ServedHub(Protocol):
    """What the server needs from the hub it serves (``StandinHub``)."""

    repos: dict[str, dict[str, Revision]]
    verbose: bool

    def take_fault(self, repo_id: str, path: str) -> Fault | None: ...

    def log_request(self, record: Request) -> None: ...


class HubServer(ThreadingHTTPServer):
    """One thread per connection, each connection remembered until it closes."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: ServedHub, port: int) -> None:
        self.hub = hub
        self.open_sockets: set[socket.socket] = set()
        self.handler_threads: set[threading.Thread] = set()
        self.sockets_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_one, args=(request, client_address), daemon=True
        )
        with self.sockets_lock:
            self.open_sockets.add(request)
            self.handler_threads.add(thread)
        thread.start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # a client gone mid-response, a socket closed by stop()
            pass
        finally:
            self.shutdown_request(request)
            with self.sockets_lock:
                self.open_sockets.discard(request)
                self.handler_threads.discard(threading.current_thread())

    def close_connections(self) -> None:
        """Close every open client connection (keep-alive ones would keep being served)."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            threads = list(self.handler_threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        for thread in threads:
            thread.join(timeout=2.0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer
    server_version = "StandinHub/1.0"
    timeout = 30  # an idle keep-alive connection is closed after this

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.hub.verbose:
            sys.stderr.write(f"standin-hub: {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    # -- routing ----------------------------------------------------------------------------
    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        parts = url.path.split("/")[1:]  # raw (still quoted) segments
        try:
            if len(parts) >= 4 and parts[0] == "api" and parts[1] == "models":
                self._api(parts[2:], parse_qs(url.query), head)
            elif len(parts) >= 5 and parts[2] == "resolve":
                self._resolve(f"{parts[0]}/{parts[1]}", parts[3], parts[4:], head)
            else:
                self._error(HTTPStatus.NOT_FOUND, None, "Not found", head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _api(self, parts: list[str], query: dict[str, list[str]], head: bool) -> None:
        repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
        rest = parts[2:]
        if not rest:
            rev_name = DEFAULT_REVISION
        elif len(rest) >= 2 and rest[0] in ("revision", "tree"):
            rev_name = unquote(rest[1])
        else:
            self._error(HTTPStatus.NOT_FOUND, None, "Not found", head)
            return
        revision = self._revision(repo_id, rev_name, head)
        if revision is None:
            return
        if rest and rest[0] == "tree":
            prefix = "/".join(unquote(p) for p in rest[2:]).strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
            self._json(self._tree(revision, prefix, recursive), head)
            return
        self._json(
            {
                "_id": revision.commit[:24],
                "id": repo_id,
                "modelId": repo_id,
                "sha": revision.commit,
                "private": False,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": name} for name in revision.files],
            },
            head,
        )

    @staticmethod
    def _tree(revision: Revision, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        base = f"{prefix}/" if prefix else ""
        for name, f in revision.files.items():
            if not name.startswith(base):
                continue
            dirs = name[len(base) :].split("/")[:-1]
            if recursive:
                entries.append(f.tree_entry())
                folders.update(base + "/".join(dirs[:depth]) for depth in range(1, len(dirs) + 1))
            elif dirs:
                folders.add(base + dirs[0])
            else:
                entries.append(f.tree_entry())
        for folder in sorted(folders):
            oid = hashlib.sha1(folder.encode()).hexdigest()
            entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
        return entries

    def _revision(self, repo_id: str, name: str, head: bool) -> Revision | None:
        hub = self.server.hub
        revisions = hub.repos.get(repo_id)
        if revisions is None:
            self._error(HTTPStatus.NOT_FOUND, "RepoNotFound", "Repository not found", head)
            return None
        found = revisions.get(name) or next(
            (r for r in revisions.values() if is_commit(name) and r.commit == name), None
        )
        if found is None:
            self._error(HTTPStatus.NOT_FOUND, "RevisionNotFound", "Invalid rev id: " + name, head)
        return found

    def _resolve(self, raw_repo: str, raw_rev: str, raw_path: list[str], head: bool) -> None:
        repo_id = unquote(raw_repo)
        revision = self._revision(repo_id, unquote(raw_rev), head)
        if revision is None:
            return
        path = unquote("/".join(raw_path))
        f = revision.files.get(path)
        if f is None:
            self._error(
                HTTPStatus.NOT_FOUND,
                "EntryNotFound",
                f"{path} does not exist on {revision.name}",
                head,
                {"X-Repo-Commit": revision.commit},
            )
            return
        self._send_file(revision, f, head)

    # -- responses --------------------------------------------------------------------------
    def _send_file(self, revision: Revision, f: RepoFile, head: bool) -> None:
        start, end = 0, f.size - 1
        status = HTTPStatus.OK
        range_header = self.headers.get("Range")
        if range_header and not head:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
            if match is None or int(match.group(1)) >= f.size:
                self._error(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                    None,
                    "Range not satisfiable",
                    head,
                    {"Content-Range": f"bytes */{f.size}"},
                )
                return
            start = int(match.group(1))
            end = min(int(match.group(2)), f.size - 1) if match.group(2) else f.size - 1
            status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1
        fault = None if head else self.server.hub.take_fault(revision.repo_id, f.path)
        if fault is not None and fault.status is not None:
            self._error(HTTPStatus(fault.status), None, "Injected failure", head)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{f.etag}"')
        self.send_header("X-Repo-Commit", revision.commit)
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{f.size}")
        self.end_headers()
        self._log(status, dropped=fault is not None)
        if head:
            return
        limit = length if fault is None else min(fault.drop_after, length)
        with open(f.source, "rb") as src:
            src.seek(start)
            sent = 0
            while sent < limit:
                chunk = src.read(min(_CHUNK, limit - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        if fault is not None:
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _log(self, status: int, *, dropped: bool = False) -> None:
        record = Request(self.command, self.path, int(status), self.headers.get("Range"), dropped)
        self.server.hub.log_request(record)

    def _json(
        self,
        payload: Any,
        head: bool,
        status: HTTPStatus = HTTPStatus.OK,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self._log(status)
        if not head:
            self.wfile.write(body)

    def _error(
        self,
        status: HTTPStatus,
        code: str | None,
        message: str,
        head: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        error = {} if code is None else {"X-Error-Code": code}
        error["X-Error-Message"] = message
        self._json({"error": message}, head, status, {**error, **(headers or {})})
