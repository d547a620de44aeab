"""The ``clipclap`` commands that use a Chroma collection (``index``, ``search``), and what the
other commands share with them: the model options, the messages in the command's terms."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ClipClapError
from .inputs.files import TEXT_EXTENSIONS
from .inputs.sniff import modality_of_extension
from .inputs.walk import walk
from .runtime.hub_client import MODEL_ENV
from .runtime.model import CLAP_WINDOW_S
from .types import Modality

DEFAULT_DB = "clipclap-db"
DEFAULT_COLLECTION = "clipclap"
MODEL_OPTIONS = {"revision": str, "cache_dir": str, "threads": int}  # the embedder's, as flags


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in MODEL_OPTIONS}


def make_embedder(args: argparse.Namespace) -> Any:
    from .embedder import ClipClapEmbedder

    return ClipClapEmbedder(args.model, **model_options(args))


# The core's errors name its Python arguments; the command has flags for them.
_FLAG_NAMES = "|".join(MODEL_OPTIONS)
CLI_TERMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"Re-open the collection without embedding_function= \(its stored\s+"
            r"configuration is used\)"
        ),
        "Run without --model and $CLIPCLAP_MODEL (the model and options stored with the "
        "collection are used)",
    ),
    (re.compile(r"\bpass model=<"), "pass --model <"),
    (re.compile(rf"\b({_FLAG_NAMES})=(?=[^\s.,;)])"), "--\\1 "),  # revision='v2'
    (re.compile(rf"\b({_FLAG_NAMES})=(?=[\s.,;)]|$)"), "--\\1"),  # "as revision=."
)


def in_cli_terms(message: str) -> str:
    """``message`` with the Python arguments it names (``model=``, ``revision=``,
    ``embedding_function=``...) told as the command's flags."""
    for pattern, replacement in CLI_TERMS:
        message = pattern.sub(replacement, message)
    return message.replace("--cache_dir", "--cache-dir")


def fail(args: argparse.Namespace, message: str) -> SystemExit:
    """The error that ends a command: its message after ``clipclap <command>:``."""
    return SystemExit(f"clipclap {args.command}: {in_cli_terms(message)}")


def db_path(args: argparse.Namespace) -> Path:
    """The folder of the embedded database (--db, else $CLIPCLAP_DB, else ./clipclap-db)."""
    return Path(args.db or os.environ.get("CLIPCLAP_DB", DEFAULT_DB)).expanduser()


def chroma_client(args: argparse.Namespace, *, create: bool) -> Any:
    try:
        import chromadb
    except ImportError:
        raise fail(
            args, 'index and search need Chroma: pip install "clipclap-integrations[chroma]"'
        ) from None

    if args.host:
        try:
            client = chromadb.HttpClient(host=args.host, port=args.port)
        except Exception as exc:  # chromadb checks the server on connect
            raise fail(
                args, f"cannot reach the Chroma server at {args.host}:{args.port} ({exc})"
            ) from None
    else:
        path = db_path(args)
        if not create and not path.is_dir():  # do not leave an empty database behind
            raise fail(args, f"no index at {path}: run clipclap index first (or pass --db)")
        client = chromadb.PersistentClient(path=str(path))
    return client


def _no_collection(args: argparse.Namespace, exc: Exception) -> SystemExit:
    return fail(args, f"no collection {args.collection!r} there ({exc}); run clipclap index first")


def _stored_model_config(
    client: Any, args: argparse.Namespace, *, create: bool
) -> dict[str, Any] | None:
    """The embedding-function config stored with the collection (its model, the revision
    that made its vectors, its options), or None when it stores none or (with ``create``)
    does not exist yet."""
    from .chroma.compat import stored_config

    try:
        existing = client.get_collection(args.collection, embedding_function=None)
    except Exception as exc:  # chromadb raises NotFoundError / ValueError by version
        if create:
            return None
        raise _no_collection(args, exc) from None
    try:
        return stored_config(existing)
    except ValueError as exc:  # another embedding function
        raise fail(args, str(exc)) from None


def model_known(args: argparse.Namespace) -> bool:
    """Whether the model to use is known before the database is opened: named by --model or
    $CLIPCLAP_MODEL, or the default one because there is no database yet (so no collection
    whose stored configuration names one)."""
    if args.model is not None or os.environ.get(MODEL_ENV):
        return True
    return not args.host and not db_path(args).exists()


def open_collection(
    args: argparse.Namespace, *, create: bool, embedder: Any = None
) -> tuple[Any, Any]:
    """The embedder and the collection. Without --model or $CLIPCLAP_MODEL the model is the
    one recorded in an existing collection, as Chroma's get_collection would rebuild it.
    ``embedder``: the one ``make_embedder`` made already (only when ``model_known``)."""
    from .chroma.embedding_function import ClipClapEmbeddingFunction

    client = chroma_client(args, create=create)
    stored = None
    if embedder is None and args.model is None and not os.environ.get(MODEL_ENV):
        stored = _stored_model_config(client, args, create=create)
    if stored is not None:
        config = dict(stored)
        config.update({k: v for k, v in model_options(args).items() if v is not None})
        try:
            ef = ClipClapEmbeddingFunction.build_from_config(config)
            embedder = ef.embedder
        except ValueError as exc:  # an invalid stored config, or changed model files
            raise fail(args, str(exc)) from None
        except ClipClapError as exc:
            raise ClipClapError(
                f"{exc} (the model collection {args.collection!r} was built with; "
                "pass --model to use another copy of it)"
            ) from None
    else:
        embedder = embedder or make_embedder(args)
        ef = ClipClapEmbeddingFunction(embedder.folder.source, **model_options(args))
    return embedder, _collection(client, args, ef, create=create)


def _collection(client: Any, args: argparse.Namespace, ef: Any, *, create: bool) -> Any:
    if create:
        collection = client.get_or_create_collection(args.collection, embedding_function=ef)
    else:
        try:
            collection = client.get_collection(args.collection, embedding_function=ef)
        except Exception as exc:  # chromadb raises NotFoundError / ValueError by version
            raise _no_collection(args, exc) from None
    # index and search write and query vectors themselves: Chroma never calls the function,
    # so its check against the stored model (another model, changed files) is made here.
    try:
        ef.check_collection(collection)
    except ValueError as exc:  # ModelChangedError is one
        raise fail(args, str(exc)) from None
    return collection


def progress_bar(total: int, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(
        total=total,
        desc=desc,
        unit="file",
        file=sys.stderr,
        disable=not sys.stderr.isatty() and os.environ.get("CLIPCLAP_PROGRESS") != "1",
    )


EXIT_FAILED = 1  # the run finished, but some files could not be indexed (or the database left)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class WarmUp:
    """The model's onnxruntime sessions made in a background thread while the command does
    other work (imports Chroma, opens the collection, looks at the files): the folders are
    walked, then the modalities their files' names suggest are prepared, in the order the
    files come. Nothing here is needed: a problem is left for the run to meet and report."""

    def __init__(self, embedder: Any, paths: Sequence[str]) -> None:
        self.entries: list[Path] | None = None  # the walk, when it succeeded
        self._walked = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(embedder, list(paths)), name="clipclap-warm-up", daemon=True
        )
        self._thread.start()

    def _run(self, embedder: Any, paths: list[str]) -> None:
        try:
            try:
                self.entries = list(walk(paths))
            finally:
                self._walked.set()
            for modality in dict.fromkeys(filter(None, map(guessed_modality, self.entries))):
                if self._stop.is_set():
                    return
                embedder.prepare([modality])
        except Exception:  # the run itself meets (and reports) any problem
            pass

    def count(self) -> int | None:
        """How many entries the walk found (None if it failed)."""
        self._walked.wait()
        return None if self.entries is None else len(self.entries)

    def join(self) -> None:
        """Wait until every session it set out to make is made."""
        self._thread.join()

    def stop(self) -> None:
        """Make no more sessions; wait for the one being made (never left half-built at exit)."""
        self._stop.set()
        self._thread.join()


def guessed_modality(path: Path) -> Modality | None:
    """The modality a file's name suggests (its content decides when it is indexed)."""
    if path.suffix.lower() in TEXT_EXTENSIONS:
        return Modality.TEXT
    return modality_of_extension(path.name)


def cmd_index(args: argparse.Namespace) -> int:
    # The model's sessions are made while Chroma is imported and the collection opened (and
    # the first files read), when the model is known before the collection is read.
    local = args.engine != "ray"
    if local and (args.address or args.actors):
        raise fail(args, "--address and --actors are for --engine ray")
    early = make_embedder(args) if local and model_known(args) else None
    warm = [] if early is None else [WarmUp(early, args.paths)]
    try:
        return run_index(args, early, warm)
    finally:
        for w in warm:
            w.stop()


def run_index(args: argparse.Namespace, early: Any, warm: list[WarmUp]) -> int:
    """``clipclap index`` once ``early`` (the embedder, when made before the collection was
    read) and its ``warm``-up are under way; a warm-up started here is added to ``warm``."""
    from .chroma.indexer import DatabaseGoneError, FolderIndexer

    e, collection = open_collection(args, create=True, embedder=early)
    if args.engine == "ray":
        return index_report(args, collection, index_on_ray(args, e, collection))
    if not warm:  # the model came from the collection
        warm.append(WarmUp(e, args.paths))
    total = warm[0].count()
    if total is None:  # the walk failed: the run's own walk says why
        total = sum(1 for _ in walk(args.paths))
    bar = progress_bar(total, "indexing")
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if bar is not None:
            bar.update(n)

    indexer = FolderIndexer(
        collection,
        e,
        progress=progress,
        frame_every_s=args.frame_every,
        **({} if args.window is None else {"window_s": args.window}),
    )
    try:
        report = indexer.index(args.paths, prune=args.prune)
    except (DatabaseGoneError, KeyboardInterrupt) as exc:
        if bar is not None:
            bar.close()
        stopped = isinstance(exc, KeyboardInterrupt)  # each file's records are whole, or redone
        why = f"interrupted after {done} files; run again to resume" if stopped else str(exc)
        print(f"clipclap index: {in_cli_terms(why)}", file=sys.stderr)
        return EXIT_INTERRUPTED if stopped else EXIT_FAILED
    if bar is not None:
        bar.close()
    return index_report(args, collection, report)


def index_report(args: argparse.Namespace, collection: Any, report: Any) -> int:
    """Print what an index run did; the exit code."""
    count = collection.count()
    summary = {"collection": args.collection, **report.as_dict(), "records_in_collection": count}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.collection}: {report.summary()}; {count} records in the collection")
        for line in report.listing():
            print(line)
    return EXIT_FAILED if report.failed else 0


def index_on_ray(args: argparse.Namespace, embedder: Any, collection: Any) -> Any:
    """``clipclap index --engine ray``: the same records, made on a Ray cluster."""
    try:
        import ray

        from .ray.folder import index_folder
        from .ray.model import model_ref
    except ImportError as exc:
        raise fail(args, str(exc)) from None
    import logging

    import ray.data

    address = args.address or os.environ.get("RAY_ADDRESS") or None
    started = not ray.is_initialized()
    quiet = not sys.stderr.isatty()  # logs and progress bars for a person only
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ray.data.DataContext.get_current().enable_progress_bars = False
    if started:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING if quiet else logging.INFO,
        )
    try:
        return index_folder(
            collection,
            args.paths,
            model_ref(embedder, frame_every_s=args.frame_every),
            window_s=CLAP_WINDOW_S if args.window is None else args.window,
            actors=args.actors or 1,
            threads=args.threads or 1,
            prune=args.prune,
        )
    finally:
        if started:
            ray.shutdown()


def path_problem(query: str) -> str | None:
    """Why an input that looks like a path to a media file cannot be one (missing, a folder),
    or None. Embedding or searching such a string as text would quietly use a typo."""
    from .inputs.sniff import modality_of_extension

    q = query.strip()
    if not q or "\n" in q or "\0" in q or len(q) > 4096 or ":" in q.split("/")[0]:
        return None  # a sentence, or a URL / data: URI / file: URL (checked when embedded)
    try:
        path = Path(q).expanduser()
        in_a_folder = "/" in q and path.parent.is_dir()
        if any(c.isspace() for c in q):  # a sentence, unless it names a file in a real folder
            looks_like_path = in_a_folder and modality_of_extension(q) is not None
        else:  # one word: a media file name, a relative path, or a path into a real folder
            looks_like_path = (
                modality_of_extension(q) is not None
                or q.startswith(("./", "../", "~/"))
                or (q.startswith("/") and in_a_folder)  # not "/r/aww"
            )
        if not looks_like_path:
            return None
        if path.is_dir():
            return f"{q!r} is a folder, not an image or sound file"
        if path.exists():
            return None
    except (OSError, RuntimeError, ValueError):  # unknown ~user, bad encoding
        if any(c.isspace() for c in q):
            return None
    return f"no such file: {q!r}"


def cmd_search(args: argparse.Namespace) -> int:
    from .chroma.records import read_record

    if not args.query.strip():
        print(
            "clipclap search: the query is empty: give a sentence, a file or a URL", file=sys.stderr
        )
        return 2
    if args.query_as is None:
        problem = path_problem(args.query)
        if problem:
            print(
                f"clipclap search: {problem} (to search for this text itself, pass --as text)",
                file=sys.stderr,
            )
            return 2
    e, collection = open_collection(args, create=False)
    vector = e.embed([args.query], modality=args.query_as)[0]
    where = {"modality": args.modality} if args.modality else None
    got = collection.query(
        query_embeddings=[vector],
        n_results=args.top,
        where=where,
        include=["metadatas", "distances", "documents", "uris"],
    )
    ids = got["ids"][0]
    uris = (got.get("uris") or [None])[0] or [None] * len(ids)
    rows = []
    for rank, (rid, meta, dist, doc, uri) in enumerate(
        zip(ids, got["metadatas"][0], got["distances"][0], got["documents"][0], uris, strict=True),
        1,
    ):
        record = read_record(rid, meta, doc, uri)  # whichever writer wrote it
        rows.append(
            {
                "rank": rank,
                "score": round(1.0 - float(dist), 4),
                "modality": record.modality or "?",
                "source": record.origin,
                "where": record.where,
                "text": record.document,
                "track": record.track,
                "start_s": record.start_s,
                "end_s": record.end_s,
                "id": rid,
                "metadata": meta or {},
            }
        )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("no results")
        return 0
    labels = [result_label(r) for r in rows]
    width = max(len(label) for label, _ in labels)
    print(f"{'rank':>4}  {'score':>7}  {'modality':<8}  {'source':<{width}}  where")
    for r, (label, where) in zip(rows, labels, strict=True):
        print(f"{r['rank']:>4}  {r['score']:>7.4f}  {r['modality']:<8}  {label:<{width}}  {where}")
    return 0


def result_label(row: dict[str, Any]) -> tuple[str, str]:
    """The source column and the where column of a result: a video's moment shows as
    ``path  mm:ss-mm:ss`` (its track in the where column), a whole video as its path."""
    if row["modality"] != "video":
        return row["source"], row["where"]
    if row["track"] is None:
        return row["source"], "whole video"
    return f"{row['source']}  {row['where']}", row["track"]
