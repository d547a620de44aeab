"""``ClipClapPredictor``: the callable class for ``Dataset.map_batches`` (one embedder per actor).

It takes either rows of ``read_media`` (records: images by path, sound windows by path and
span, text chunks by their text) or a column of the user's own items (``item`` by default:
file paths, bytes, http(s) URLs or sentences, as ``ClipClapEmbedder.embed`` takes them), and
adds ``embedding`` (float32[dim], null on error), ``modality`` and ``error`` (the reason, or
null). One bad item never fails the batch: it becomes a row with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..chroma.file_plan import VideoPlan, plan_file, plan_records
from ..embedder import ClipClapEmbedder
from ..errors import ClipClapInputError
from ..inputs.sniff import modality_of_extension
from ..media.audio import duration_windows
from ..modalities.parts import PartRunner
from ..types import Modality
from .model import ModelRef, model_ref
from .reading import VIDEO_KIND, load_audio
from .rows import output_table, record_row

VIDEO_VECTOR = "__clipclap_vector"  # a video record's vector, carried until output
Vectors = list[np.ndarray | None]
Errors = list[str | None]


def reason(exc: Exception) -> str:
    """What a failure says about the item (an input error's own reason, else its type)."""
    if isinstance(exc, ClipClapInputError):
        return exc.reason
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class ClipClapPredictor:
    """Embeds batches in a Ray actor: ``ds.map_batches(ClipClapPredictor,
    fn_constructor_kwargs={"model": M}, compute=ray.data.ActorPoolStrategy(size=N),
    num_cpus=T, batch_size=32)``.

    Args:
        model: a folder every node sees, a Hub repo id, or a ``ModelRef`` (``model_ref``
            resolves a Hub id once, on the driver, so every actor uses the same commit).
        threads: onnxruntime threads of this actor (give the actor as many CPUs).
        column: the column of the user's own items, when the rows are not ``read_media``'s.
        modality: treat every item of ``column`` as this modality (like ``embed(modality=)``).
        record_node: add a ``node_id`` column (the Ray node that embedded the row).
        options: ``ClipClapEmbedder``'s other options (providers, batch_size...).
    """

    def __init__(
        self,
        model: Any = None,
        *,
        threads: int | None = None,
        column: str = "item",
        modality: str | None = None,
        record_node: bool = False,
        **options: Any,
    ) -> None:
        ref = model if isinstance(model, ModelRef) and not options and threads is None else None
        self.ref = ref or model_ref(model, threads=threads, **options)
        self.embedder: ClipClapEmbedder = self.ref.embedder()
        self.column = column
        self.modality = Modality.parse(modality) if modality is not None else None
        self.node_id: str | None = None
        if record_node:
            import ray

            self.node_id = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: Any) -> pa.Table:
        table = as_table(batch)
        names = table.column_names
        if {"part", "source", "kind"} <= set(names):
            rows = table.to_pylist()
            if any(r["kind"] == VIDEO_KIND and r["error"] is None for r in rows):
                rows = expand_videos(self.embedder, rows)  # a video's row -> its records
                table = pa.Table.from_pylist(rows, schema=table.schema)
            vectors, errors = embed_records(self.embedder, rows)
            for i, row in enumerate(rows):
                if row.get(VIDEO_VECTOR) is not None:
                    vectors[i] = row[VIDEO_VECTOR]  # a video's record, embedded already
            modalities = [r["modality"] for r in rows]
        elif self.column in names:
            vectors, modalities, errors = embed_items(
                self.embedder, table.column(self.column).to_pylist(), self.modality
            )
        else:
            raise ValueError(
                f"ClipClapPredictor needs rows of read_media or a column {self.column!r} of "
                f"items (paths, bytes, URLs or text); the batch has {names}"
            )
        dim = self.embedder.dim
        return output_table(table, vectors, modalities, errors, dim, self.node_id)


def as_table(batch: Any) -> pa.Table:
    """A batch in any of Ray's formats (Arrow, pandas, a dict of numpy arrays) as Arrow."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, Mapping):
        return pa.table({k: pa.array(list(v)) for k, v in batch.items()})
    return pa.Table.from_pandas(batch, preserve_index=False)


def embed_items(
    embedder: ClipClapEmbedder, values: Sequence[Any], forced: Modality | None
) -> tuple[Vectors, list[str | None], Errors]:
    """The user's own items: each classified alone (a bad one is its own error), the good ones
    embedded together; if that fails, each alone."""
    n = len(values)
    vectors: Vectors = [None] * n
    modalities: list[str | None] = [None] * n
    errors: Errors = [None] * n
    items, rows = [], []
    for i, value in enumerate(values):
        try:
            if value is None:
                raise ClipClapInputError("the item is null")
            if forced is None and isinstance(value, str) and missing_file(value):
                raise ClipClapInputError(
                    f"no such file: {value!r} (pass modality='text' to embed such strings as text)"
                )
            items.append(embedder.classify([value], forced)[0])
            rows.append(i)
        except Exception as exc:
            errors[i] = reason(exc)
    try:
        got = embedder.embed_classified(items) if items else np.empty((0, embedder.dim))
        outcomes: list[np.ndarray | Exception] = list(got)
    except Exception:  # each alone, classified afresh (a fetched URL's bytes were released)
        items = [embedder.classify([values[i]], forced)[0] for i in rows]
        outcomes = [_alone(lambda it=it: embedder.embed_classified([it])[0]) for it in items]
    for i, item, outcome in zip(rows, items, outcomes, strict=True):
        modalities[i] = item.modality.value if item.modality is not None else None
        if isinstance(outcome, Exception):
            errors[i] = reason(outcome)
        else:
            vectors[i] = outcome
    return vectors, modalities, errors


def missing_file(value: str) -> bool:
    """Whether a string names a media file that does not exist (one word with an image or
    sound extension, not a URL): in a column of paths, a typo, not a sentence to embed."""
    text = value.strip()
    if not text or any(c.isspace() for c in text) or ":" in text.split("/")[0]:
        return False
    if modality_of_extension(text) is None:
        return False
    try:
        return not Path(text).expanduser().exists()
    except (OSError, ValueError):
        return False


def _alone(embed: Callable[[], np.ndarray]) -> np.ndarray | Exception:
    try:
        return embed()
    except Exception as exc:
        return exc


def embed_records(
    embedder: ClipClapEmbedder, rows: Sequence[Mapping[str, Any]]
) -> tuple[Vectors, Errors]:
    """Vectors of ``read_media`` rows, as the folder indexer makes them: images in one call
    (each alone if one is bad), text chunks in one call, each sound decoded once for all its
    rows in the batch, its windows cut as ``embed_audio_segments`` cuts them, the whole-sound
    record the normalized mean of all its windows."""
    vectors: Vectors = [None] * len(rows)
    errors: Errors = [row["error"] for row in rows]
    todo = [i for i, row in enumerate(rows) if row["error"] is None]

    def batch(idx: list[int], embed: Callable[[list[Any]], np.ndarray], what: str) -> None:
        values = [rows[i][what] for i in idx]
        try:
            got: list[np.ndarray | Exception] = list(embed(values))
        except Exception:
            got = [_alone(lambda v=v: embed([v])[0]) for v in values]
        for i, outcome in zip(idx, got, strict=True):
            if isinstance(outcome, Exception):
                errors[i] = reason(outcome)
            else:
                vectors[i] = outcome

    by_modality: dict[str, list[int]] = {}
    for i in todo:
        by_modality.setdefault(rows[i]["modality"], []).append(i)
    if by_modality.get("image"):
        batch(by_modality["image"], embedder.embed_images, "uri")
    if by_modality.get("text"):
        batch(by_modality["text"], embedder.embed_text, "document")
    sounds: dict[tuple[str, float], list[int]] = {}
    for i in by_modality.get("audio", []):
        sounds.setdefault((rows[i]["source"], rows[i]["window_s"]), []).append(i)
    for (source, window_s), idx in sounds.items():
        try:
            got = sound_vectors(embedder, source, window_s, [rows[i]["part"] for i in idx])
        except Exception as exc:
            for i in idx:
                errors[i] = reason(exc)
            continue
        for i, vector in zip(idx, got, strict=True):
            vectors[i] = vector
    return vectors, errors


def expand_videos(embedder: ClipClapEmbedder, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with each video's row replaced by its records (vectors in ``VIDEO_VECTOR``), as the
    folder indexer makes them: ``file_plan.plan_file`` decodes it, a ``PartRunner`` embeds
    its parts, ``plan_records`` names them. A video that fails keeps its row, with the
    reason."""
    out: list[dict[str, Any]] = []
    runner = PartRunner(embedder.pipelines, embedder.options.batch_size)
    for row in rows:
        if row["kind"] != VIDEO_KIND or row["error"] is not None:
            out.append(row)
            continue
        source, mime = row["source"], row["mime_type"]
        try:
            plan = plan_file(embedder, Path(source), Modality.VIDEO, mime, row["window_s"])
            if isinstance(plan, str):
                raise ClipClapInputError(plan)
            assert isinstance(plan, VideoPlan)
            [(_, vectors)] = list(runner.run([(0, plan.parts())]))
            if isinstance(vectors, Exception):
                raise vectors
        except Exception as exc:
            out.append({**row, "error": reason(exc)})
            continue
        records = plan_records(source, row["file_hash"], Modality.VIDEO, mime, plan.planned)
        kept = [v for pp, v in zip(plan.planned, vectors, strict=True) if pp.name]
        names = [pp.name for pp in plan.planned if pp.name]
        for record, name, vector in zip(records, names, kept, strict=True):
            out.append({**record_row(record, name), VIDEO_VECTOR: vector})
    return out


def sound_vectors(
    embedder: ClipClapEmbedder, source: str, window_s: float, parts: Sequence[str]
) -> list[np.ndarray]:
    """The vectors of records of one sound: ``audio`` (the whole: its only window, or the
    normalized mean of its windows) and ``window-<k>``; the file decoded once."""
    wave = load_audio(embedder, source)
    rate = embedder.folder.audio.sample_rate
    bounds = duration_windows(wave.shape[0], rate, window_s, None)
    wanted = set(range(len(bounds))) if "audio" in parts else set()
    for part in parts:
        if part.startswith("window-"):
            k = int(part.split("-", 1)[1])
            if k >= len(bounds):
                raise ClipClapInputError("the sound changed since it was read: index it again")
            wanted.add(k)
    order = sorted(wanted)
    pipeline = embedder.pipelines[Modality.AUDIO]
    run = pipeline.run_windows([wave[bounds[k][0] : bounds[k][1]] for k in order], source)  # type: ignore[attr-defined]
    window = dict(zip(order, run, strict=True))
    out = []
    for part in parts:
        if part == "audio":
            if len(bounds) == 1:
                out.append(window[0])
            else:
                whole = np.mean([window[k] for k in range(len(bounds))], axis=0)
                out.append(whole / max(float(np.linalg.norm(whole)), 1e-12))
        else:
            out.append(window[int(part.split("-", 1)[1])])
    return out
