"""The ``clipclap`` command: download the model, embed things, index folders, search them."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ClipClapError
from .runtime.model import CLAP_WINDOW_S

DEFAULT_DB = "clipclap-db"
DEFAULT_COLLECTION = "clipclap"
MODEL_OPTIONS = {"revision": str, "cache_dir": str, "threads": int}  # the embedder's, as flags

EPILOG = """examples:
  clipclap download                      fetch antflydb/clipclap into the Hugging Face cache
  clipclap index ~/Pictures ~/Sounds     embed every image, sound and text file into ./clipclap-db
  clipclap search "a dog barking"        the nearest images, sounds and texts to a sentence
  clipclap search bark.wav -k 5 --modality image
  clipclap embed "a cat" cat.jpg > vectors.jsonl

model: --model takes a local folder or a Hub repo id (default $CLIPCLAP_MODEL or
antflydb/clipclap; for index and search of an existing collection, the model it was built
with); set HF_HUB_OFFLINE=1 to use the cache only."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _window_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= CLAP_WINDOW_S:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most {CLAP_WINDOW_S:g} s, got {text}"
        )
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="model folder or Hub repo id (default: $CLIPCLAP_MODEL, else the model of an "
        "existing collection for index and search, else antflydb/clipclap)",
    )
    for name, parse in MODEL_OPTIONS.items():
        _option_flag(p, name, parse)


def _option_flag(p: argparse.ArgumentParser, name: str, parse: Any) -> None:
    """A flag for one of the embedder's options: its help and its check are the option's."""
    from .options import option_info

    info = option_info(name)

    def value(text: str) -> Any:
        try:
            got = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a valid {parse.__name__}: {text!r}") from None
        problem = info.problem(name, got)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return got

    p.add_argument("--" + name.replace("_", "-"), type=value, default=None, help=info.help)


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=None,
        help=f"Chroma folder for an embedded database (default: $CLIPCLAP_DB, else ./{DEFAULT_DB})",
    )
    p.add_argument("--host", default=None, help="Chroma server host (instead of --db)")
    p.add_argument("--port", type=int, default=8000, help="Chroma server port (default 8000)")
    p.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name (default: {DEFAULT_COLLECTION})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipclap",
        description="CLIPCLAP embeddings: text, images and audio in one vector space.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("download", help="fetch a model from the Hub into the cache")
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="Hub repo id (default: $CLIPCLAP_MODEL if it is a repo id, else antflydb/clipclap)",
    )
    for name, parse in (("revision", str), ("cache_dir", str)):
        _option_flag(p, name, parse)
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="trust the cached files (default: check each against its hash, ~1 s per GB)",
    )

    p = sub.add_parser(
        "info",
        help="where the model is, its files, dimension, and the providers in use and available",
    )
    _model_args(p)

    p = sub.add_parser("embed", help="embed inputs; print JSON lines (or save --npy)")
    p.add_argument("inputs", nargs="+", help="sentences, file paths or URLs")
    p.add_argument(
        "--as",
        "--modality",
        dest="modality",
        choices=["text", "image", "audio"],
        default=None,
        help="treat every input as this modality (--as text: a path-like string as text)",
    )
    p.add_argument("--npy", default=None, help="write the vectors to this .npy file instead")
    _model_args(p)

    p = sub.add_parser("index", help="embed every image, sound and text file into Chroma")
    p.add_argument("paths", nargs="+", help="files or folders (walked recursively)")
    p.add_argument(
        "--prune",
        action="store_true",
        help="remove records of files that no longer exist under PATHS",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: added, replaced, unchanged, pruned, failed (with reasons)",
    )
    p.add_argument(
        "--window",
        type=_window_seconds,
        default=None,
        help=f"seconds per indexed window of long audio, at most {CLAP_WINDOW_S:g} (default "
        f"{CLAP_WINDOW_S:g})",
    )
    _db_args(p)
    _model_args(p)

    p = sub.add_parser("search", help="search an index with a sentence, an image or a sound")
    p.add_argument("query", help="a sentence, or an image/audio file or URL")
    p.add_argument(
        "-k", "--top", type=_positive_int, default=10, help="results to show (default 10)"
    )
    p.add_argument(
        "--modality",
        choices=["text", "image", "audio"],
        default=None,
        help="only return records of this modality",
    )
    p.add_argument(
        "--as",
        dest="query_as",
        choices=["text", "image", "audio"],
        default=None,
        help="treat the query as this modality",
    )
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    _db_args(p)
    _model_args(p)
    return parser


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in MODEL_OPTIONS}


def _embedder(args: argparse.Namespace) -> Any:
    from .embedder import ClipClapEmbedder

    return ClipClapEmbedder(args.model, **_model_options(args))


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


def _fail(args: argparse.Namespace, message: str) -> SystemExit:
    """The error that ends a command: its message after ``clipclap <command>:``."""
    return SystemExit(f"clipclap {args.command}: {in_cli_terms(message)}")


def _client(args: argparse.Namespace, *, create: bool) -> Any:
    try:
        import chromadb
    except ImportError:
        raise _fail(
            args, 'index and search need Chroma: pip install "clipclap-integrations[chroma]"'
        ) from None

    if args.host:
        try:
            client = chromadb.HttpClient(host=args.host, port=args.port)
        except Exception as exc:  # chromadb checks the server on connect
            raise _fail(
                args, f"cannot reach the Chroma server at {args.host}:{args.port} ({exc})"
            ) from None
    else:
        path = Path(args.db or os.environ.get("CLIPCLAP_DB", DEFAULT_DB)).expanduser()
        if not create and not path.is_dir():  # do not leave an empty database behind
            raise _fail(args, f"no index at {path}: run clipclap index first (or pass --db)")
        client = chromadb.PersistentClient(path=str(path))
    return client


def _no_collection(args: argparse.Namespace, exc: Exception) -> SystemExit:
    return _fail(args, f"no collection {args.collection!r} there ({exc}); run clipclap index first")


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
        raise _fail(args, str(exc)) from None


def _open(args: argparse.Namespace, *, create: bool) -> tuple[Any, Any]:
    """The embedder and the collection. Without --model or $CLIPCLAP_MODEL the model is the
    one recorded in an existing collection, as Chroma's get_collection would rebuild it."""
    from .chroma.embedding_function import ClipClapEmbeddingFunction
    from .runtime.hub_client import MODEL_ENV

    client = _client(args, create=create)
    stored = None
    if args.model is None and not os.environ.get(MODEL_ENV):
        stored = _stored_model_config(client, args, create=create)
    if stored is not None:
        config = dict(stored)
        config.update({k: v for k, v in _model_options(args).items() if v is not None})
        try:
            ef = ClipClapEmbeddingFunction.build_from_config(config)
            embedder = ef.embedder
        except ValueError as exc:  # an invalid stored config, or changed model files
            raise _fail(args, str(exc)) from None
        except ClipClapError as exc:
            raise ClipClapError(
                f"{exc} (the model collection {args.collection!r} was built with; "
                "pass --model to use another copy of it)"
            ) from None
    else:
        embedder = _embedder(args)
        ef = ClipClapEmbeddingFunction(embedder.folder.source, **_model_options(args))
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
        raise _fail(args, str(exc)) from None
    return collection


def _progress(total: int, desc: str) -> Any:
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


def cmd_download(args: argparse.Namespace) -> int:
    from .runtime.hub import download_model, is_repo_id

    model = args.model  # None: $CLIPCLAP_MODEL if that is a repo id, else antflydb/clipclap
    if model and Path(model).expanduser().is_dir():
        print(
            f"clipclap download: {model} is a local folder, not a Hub repo id: nothing to download",
            file=sys.stderr,
        )
        return 2
    if model and not is_repo_id(model):
        print(
            f"clipclap download: {model!r} is not a Hub repo id (owner/name), nor a local folder",
            file=sys.stderr,
        )
        return 2
    result = download_model(
        model,
        revision=args.revision,
        cache_dir=args.cache_dir,
        force_download=args.force,
        verify=args.verify,
    )
    if result.offline_reason:
        print(f"note: {result.offline_reason}; used the cached copy", file=sys.stderr)
    print(f"{result.repo_id}@{result.revision} = commit {result.commit}")
    print(f"folder: {result.folder}")
    for f in result.files:
        print(f"  {f.size:>14,}  {f.path}")
    state = "downloaded" if result.downloaded else "already in the cache"
    if result.verified and not result.downloaded:
        state += ", every file checked against its hash"
    print(f"  {result.total_size:>14,}  total ({state})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    e = _embedder(args)
    # what this embedder's sessions run on (its smallest graph is loaded to ask onnxruntime)
    in_use = e.encoders.providers_in_use()
    folder = e.model_path
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    print(f"model:     {e.folder.source}")
    print(f"folder:    {folder}")
    print(f"revision:  {e.model_revision or '(local folder)'}")
    print(f"dimension: {e.dim}")
    print(f"providers in use:    {', '.join(in_use)}")
    print(f"providers available: {', '.join(ort.get_available_providers())}")
    print("files:")
    for p in files:
        print(f"  {p.stat().st_size:>14,}  {p.name}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    if args.modality is None:
        for raw in args.inputs:
            problem = _path_problem(raw)
            if problem:
                print(
                    f"clipclap embed: {problem} (to embed this text itself, pass --as text)",
                    file=sys.stderr,
                )
                return 2
    e = _embedder(args)
    # Classified once, so the modality printed is the one embedded (a URL whose content must
    # tell is fetched once, when embedded, and its item then knows).
    items = e.classify(list(args.inputs), args.modality)
    vectors = e.embed_classified(items)
    if args.npy:
        np.save(args.npy, vectors)
        print(
            f"wrote {vectors.shape[0]} x {vectors.shape[1]} vectors to {args.npy}", file=sys.stderr
        )
        return 0
    for raw, item, vector in zip(args.inputs, items, vectors, strict=True):
        print(
            json.dumps(
                {
                    "input": raw,
                    "modality": item.modality.value if item.modality else "?",
                    "embedding": [round(float(v), 7) for v in vector],
                }
            )
        )
    return 0


EXIT_FAILED = 1  # the run finished, but some files could not be indexed (or the database left)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def cmd_index(args: argparse.Namespace) -> int:
    from .chroma.indexer import DatabaseGoneError, FolderIndexer, walk

    e, collection = _open(args, create=True)
    total = sum(1 for _ in walk(args.paths))
    bar = _progress(total, "indexing")
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
    count = collection.count()
    summary = {"collection": args.collection, **report.as_dict(), "records_in_collection": count}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.collection}: {report.summary()}; {count} records in the collection")
        for line in report.listing():
            print(line)
    return EXIT_FAILED if report.failed else 0


def _path_problem(query: str) -> str | None:
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
        problem = _path_problem(args.query)
        if problem:
            print(
                f"clipclap search: {problem} (to search for this text itself, pass --as text)",
                file=sys.stderr,
            )
            return 2
    e, collection = _open(args, create=False)
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
    width = max(len(r["source"]) for r in rows)
    print(f"{'rank':>4}  {'score':>7}  {'modality':<8}  {'source':<{width}}  where")
    for r in rows:
        print(
            f"{r['rank']:>4}  {r['score']:>7.4f}  {r['modality']:<8}  {r['source']:<{width}}  "
            f"{r['where']}"
        )
    return 0


COMMANDS = {
    "download": cmd_download,
    "info": cmd_info,
    "embed": cmd_embed,
    "index": cmd_index,
    "search": cmd_search,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 1
    except KeyboardInterrupt:  # before index's own count of files done, or another command
        print(f"clipclap {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClipClapError as exc:
        print(f"clipclap {args.command}: {in_cli_terms(str(exc))}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"clipclap {args.command}: {in_cli_terms(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
