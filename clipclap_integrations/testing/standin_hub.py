"""A stand-in for the Hugging Face Hub that serves local folders as model repos, on 127.0.0.1.

It answers the part of the Hub API that ``huggingface_hub.snapshot_download`` uses (checked
against huggingface_hub 2.4):

* ``GET /api/models/{repo}[/revision/{rev}]``: repo info, whose ``sha`` is the commit;
* ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=...``: the file listing, with an
  ``lfs`` object for large files;
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``, ``ETag``
  (git blob sha1, or the sha256 for LFS files, as the Hub does), ``Content-Length`` and
  ``Range`` support (206);
* errors as 404s with ``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``.

It never sends Xet headers (they would switch the client to the Xet protocol). Faults can be
injected per file, to test interrupted transfers: the server sends the headers and the first
``drop_after`` bytes of the body, then closes the connection. Every request is logged in
``StandinHub.requests``. ``stop()`` also closes open keep-alive connections, so a stopped hub
is really unreachable.

Standard library only. Command line (prints the URL, serves until interrupted)::

    python -m clipclap_integrations.testing.standin_hub --repo antflydb/clipclap=DIR \\
        [--revision v2=DIR2] [--port 8765] [--drop text_model.onnx.data:100000:1]

then ``HF_ENDPOINT=http://127.0.0.1:8765`` in the client's environment.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

HOST = "127.0.0.1"
DEFAULT_BRANCH = "main"
# Served as LFS files (ETag = sha256), like the Hub's default .gitattributes does.
LFS_SUFFIXES = (".onnx", ".data", ".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".npy", ".npz")
LFS_MIN_SIZE = 10 * 1024 * 1024
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class RepoFile:
    """One file of a served revision."""

    path: str  # posix path inside the repo
    source: Path  # where its bytes are read from
    size: int
    blob_id: str  # git blob sha1 of the content (of the pointer file, for LFS files)
    sha256: str
    lfs: bool

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.blob_id,
            "size": self.size,
            "path": self.path,
        }
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": 134}
        return entry


@dataclass(frozen=True)
class Revision:
    """A named revision (branch or tag) of a repo and the commit it points to."""

    repo_id: str
    name: str
    commit: str
    files: Mapping[str, RepoFile]


@dataclass
class Fault:
    """Make GETs of ``path`` fail: cut after ``drop_after`` body bytes, or answer ``status``.

    ``times`` is how many GETs fail (None: all of them). ``repo_id`` limits it to one repo.
    """

    path: str
    drop_after: int = 0
    times: int | None = 1
    repo_id: str | None = None
    status: int | None = None  # e.g. 500: an error response instead of a cut transfer
    triggered: int = 0

    def applies(self, repo_id: str, path: str) -> bool:
        if path != self.path or (self.repo_id is not None and repo_id != self.repo_id):
            return False
        return self.times is None or self.triggered < self.times


@dataclass(frozen=True)
class Request:
    """One request the hub answered (or dropped)."""

    method: str
    path: str  # the raw request target, query included
    status: int
    range: str | None = None
    dropped: bool = False
    time: float = field(default_factory=time.time)


def _hash_file(path: Path) -> tuple[str, str]:
    """(git blob sha1, sha256) of a file's content."""
    size = path.stat().st_size
    sha1 = hashlib.sha1(f"blob {size}\0".encode())
    sha256 = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return sha1.hexdigest(), sha256.hexdigest()


def _lfs_pointer_blob_id(sha256: str, size: int) -> str:
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    data = pointer.encode()
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def scan_files(
    folder: str | Path,
    *,
    exclude: Iterable[str] = (),
    extra: Mapping[str, str | Path] | None = None,
) -> dict[str, RepoFile]:
    """Describe every file under ``folder`` (minus ``exclude``, plus ``extra`` path->source)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {root}")
    skip = set(exclude)
    sources: dict[str, Path] = {
        p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()
    }
    for name, source in (extra or {}).items():
        sources[name] = Path(source)
    files: dict[str, RepoFile] = {}
    for name, source in sorted(sources.items()):
        if name in skip:
            continue
        size = source.stat().st_size
        blob_id, sha256 = _hash_file(source)
        lfs = name.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE
        if lfs:
            blob_id = _lfs_pointer_blob_id(sha256, size)
        files[name] = RepoFile(name, source, size, blob_id, sha256, lfs)
    return files


def _commit_id(repo_id: str, files: Mapping[str, RepoFile]) -> str:
    """A deterministic 40-hex commit id for a repo's file set (same content, same commit)."""
    digest = hashlib.sha1(repo_id.encode())
    for name, f in sorted(files.items()):
        digest.update(f"\0{name}\0{f.blob_id}".encode())
    return digest.hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, hub: StandinHub, port: int) -> None:
        self.hub = hub
        self.open_sockets: set[socket.socket] = set()
        self.handler_threads: set[threading.Thread] = set()
        self.sockets_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        thread = threading.Thread(
            target=self._serve_one, args=(request, client_address), daemon=True
        )
        with self.sockets_lock:
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
    server: _Server
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
            rev_name = DEFAULT_BRANCH
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
            (r for r in revisions.values() if _COMMIT.match(name) and r.commit == name), None
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
        fault = None if head else self.server.hub._take_fault(revision.repo_id, f.path)
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
        self.server.hub._log(self, status, dropped=fault is not None)
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

    def _json(self, payload: Any, head: bool) -> None:
        body = json.dumps(payload).encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.server.hub._log(self, HTTPStatus.OK)
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
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if code is not None:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.server.hub._log(self, status)
        if not head:
            self.wfile.write(body)


class StandinHub:
    """A local Hub stand-in on 127.0.0.1: ``with StandinHub() as hub: hub.add_repo(...)``.

    Set ``HF_ENDPOINT=hub.url`` in the environment of the process that downloads (the
    ``huggingface_hub`` package reads it when it is imported).
    """

    def __init__(self, port: int = 0, *, verbose: bool = False) -> None:
        self.port = port
        self.verbose = verbose
        self.repos: dict[str, dict[str, Revision]] = {}
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- content ----------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        revision: str = DEFAULT_BRANCH,
        exclude: Iterable[str] = (),
        extra: Mapping[str, str | Path] | None = None,
    ) -> str:
        """Serve ``folder`` as ``repo_id`` at branch/tag ``revision``; return its commit id."""
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
            raise ValueError(f"not a repo id: {repo_id!r}")
        files = scan_files(folder, exclude=exclude, extra=extra)
        rev = Revision(repo_id, revision, _commit_id(repo_id, files), files)
        with self._lock:
            self.repos.setdefault(repo_id, {})[revision] = rev
        return rev.commit

    def commit(self, repo_id: str, revision: str = DEFAULT_BRANCH) -> str:
        """The commit id ``revision`` of ``repo_id`` points to."""
        return self.repos[repo_id][revision].commit

    def add_fault(
        self,
        path: str,
        drop_after: int = 0,
        *,
        times: int | None = 1,
        repo_id: str | None = None,
        status: int | None = None,
    ) -> Fault:
        """Make GETs of ``path`` fail ``times`` times (None: always).

        The transfer is cut after ``drop_after`` body bytes, or with ``status`` the answer is
        that HTTP error instead.
        """
        fault = Fault(path, drop_after, times, repo_id, status)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, repo_id: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.applies(repo_id, path):
                    fault.triggered += 1
                    return fault
        return None

    # -- request log ------------------------------------------------------------------------
    def _log(self, handler: _Handler, status: int, *, dropped: bool = False) -> None:
        record = Request(
            handler.command, handler.path, int(status), handler.headers.get("Range"), dropped
        )
        with self._lock:
            self.requests.append(record)

    def requests_since(self, mark: int) -> list[Request]:
        """Requests logged after ``len(hub.requests)`` was ``mark``."""
        with self._lock:
            return list(self.requests[mark:])

    def file_gets(self, path: str, since: int = 0) -> list[Request]:
        """GET requests of one repo file (any repo, any revision) after ``since``."""
        tail = "/" + path
        return [
            r
            for r in self.requests_since(since)
            if r.method == "GET" and "/resolve/" in r.path and urlsplit(r.path).path.endswith(tail)
        ]

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in hub is not running")
        return f"http://{HOST}:{self._server.server_address[1]}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> StandinHub:
        """Listen on 127.0.0.1 (``port`` 0: a free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server(self, self.port)
        self.port = self._server.server_address[1]  # a restart reuses the same port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="standin-hub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection; returns within a few seconds."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> StandinHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- command line -----------------------------------------------------------------------------
def _parse_pair(text: str, what: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{what} must look like NAME=DIR, got {text!r}")
    return name, value


class _Ordered(argparse.Action):
    """Keeps --repo and --revision in command-line order (a --revision belongs to the last repo)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        items = list(getattr(namespace, "content", None) or [])
        items.append((self.dest, values))
        namespace.content = items


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clipclap_integrations.testing.standin_hub",
        description="Serve local model folders as Hugging Face Hub repos on 127.0.0.1 "
        "(for tests and offline benchmarks). Point HF_ENDPOINT at the printed URL.",
    )
    parser.add_argument(
        "--repo",
        dest="repo",
        action=_Ordered,
        metavar="REPO_ID=DIR",
        help="serve DIR as REPO_ID at branch main (repeatable)",
    )
    parser.add_argument(
        "--revision",
        dest="revision",
        action=_Ordered,
        metavar="NAME=DIR",
        help="also serve DIR as branch/tag NAME of the preceding --repo (repeatable)",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="PATH:BYTES[:TIMES]",
        help="drop GETs of repo file PATH after BYTES body bytes, TIMES times (default 1; "
        "0: always)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in hub until SIGINT/SIGTERM; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    content: list[tuple[str, str]] = getattr(args, "content", None) or []
    if not content or content[0][0] != "repo":
        parser.error("give at least one --repo REPO_ID=DIR (before any --revision)")
    hub = StandinHub(args.port, verbose=args.verbose)
    current = ""
    try:
        for kind, text in content:
            name, folder = _parse_pair(text, f"--{kind}")
            if kind == "repo":
                current = name
                hub.add_repo(name, folder)
            else:
                hub.add_repo(current, folder, revision=name)
        for spec in args.drop:
            path, _, rest = spec.partition(":")
            count, _, times = rest.partition(":")
            n_times = int(times) if times else 1
            hub.add_fault(path, int(count), times=n_times or None)
    except (ValueError, FileNotFoundError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    hub.start()
    print(f"stand-in hub serving at {hub.url}", flush=True)
    for repo_id, revisions in hub.repos.items():
        for rev in revisions.values():
            print(f"  {repo_id}@{rev.name} = {rev.commit} ({len(rev.files)} files)", flush=True)
    print(f"use: HF_ENDPOINT={hub.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
