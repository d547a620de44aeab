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

Standard library only (besides this package). Command line (prints the URL, serves until
interrupted)::

    python -m clipclap_integrations.testing.standin_hub --repo antflydb/clipclap=DIR \\
        [--revision v2=DIR2] [--port 8765] [--drop text_model.onnx.data:100000:1]

then ``HF_ENDPOINT=http://127.0.0.1:8765`` in the client's environment.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..runtime.hub_client import DEFAULT_REVISION
from .standin_repo import Fault, Request, Revision, commit_id, scan_files
from .standin_server import HOST, HubServer


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
        self._server: HubServer | None = None
        self._thread: threading.Thread | None = None

    # -- content ----------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        revision: str = DEFAULT_REVISION,
        exclude: Iterable[str] = (),
        extra: Mapping[str, str | Path] | None = None,
    ) -> str:
        """Serve ``folder`` as ``repo_id`` at branch/tag ``revision``; return its commit id."""
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
            raise ValueError(f"not a repo id: {repo_id!r}")
        files = scan_files(folder, exclude=exclude, extra=extra)
        rev = Revision(repo_id, revision, commit_id(repo_id, files), files)
        with self._lock:
            self.repos.setdefault(repo_id, {})[revision] = rev
        return rev.commit

    def commit(self, repo_id: str, revision: str = DEFAULT_REVISION) -> str:
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

    def take_fault(self, repo_id: str, path: str) -> Fault | None:
        """The fault a GET of ``path`` in ``repo_id`` triggers now, if any (counted)."""
        with self._lock:
            for fault in self.faults:
                if fault.applies(repo_id, path):
                    fault.triggered += 1
                    return fault
        return None

    # -- request log ------------------------------------------------------------------------
    def log_request(self, record: Request) -> None:
        """Add a request the server answered (or dropped) to ``requests``."""
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

    def start(self) -> StandinHub:
        """Listen on 127.0.0.1 (``port`` 0: a free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = HubServer(self, self.port)
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
