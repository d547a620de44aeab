"""Parts and the parts runner: vectors equal the embedder's own paths, batches are shared across
owners, parts are consumed lazily, and a bad owner fails alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clipclap_integrations import ClipClapEmbedder
from clipclap_integrations.chroma.file_plan import plan_file, plan_records
from clipclap_integrations.errors import ClipClapInputError, NonFiniteVectorError
from clipclap_integrations.media.chunking import chunk_text
from clipclap_integrations.modalities.parts import Part, PartRunner
from clipclap_integrations.runtime.encoders import checked
from clipclap_integrations.types import Modality

STORY = (
    "The harbour woke before dawn. Fishing boats slid out past the breakwater, their engines "
    "coughing in the cold. Gulls followed them, screaming for scraps! "
) * 4

IMAGES = ["rgb_320x200.png", "tall_150x420.jpg", "cmyk_280x210.jpg", "gray_L_300x180.png"]
SOUNDS = ["long_25s_16k.flac", "tone_0p5s_48k.wav", "chord_2p5s_44k1.flac"]


@pytest.fixture
def embedder(tiny_model_dir: Path) -> ClipClapEmbedder:
    return ClipClapEmbedder(tiny_model_dir, batch_size=3)


class Counting:
    """Wraps ``encoders.project``: counts runs and rows per modality."""

    def __init__(self, embedder: ClipClapEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = embedder.encoders.project
        self.runs: list[tuple[Modality, int]] = []
        monkeypatch.setattr(embedder.encoders, "project", self)

    def __call__(self, modality: Modality, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self.runs.append((modality, next(iter(feeds.values())).shape[0]))
        return self.real(modality, feeds)


def test_planned_files_give_the_embedders_vectors_in_shared_batches(
    embedder: ClipClapEmbedder, media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = tmp_path / "story.txt"
    story.write_text(STORY, encoding="utf-8")
    files = [(media_dir / n, Modality.IMAGE) for n in IMAGES]
    files += [(media_dir / n, Modality.AUDIO) for n in SOUNDS] + [(story, Modality.TEXT)]
    files.insert(3, (story, Modality.TEXT))  # text between the media, twice
    # References first, through the embedder's own paths. The audio encoder's last bits
    # depend on what else is in its batch (~5e-8), so the short sounds' reference runs them
    # as the runner batches them (together, after the long one's three windows); images and
    # text are batch-invariant.
    pair = embedder.embed_audio([media_dir / n for n in SOUNDS[1:]])
    refs = []
    for path, modality in files:
        if modality is Modality.IMAGE:
            refs.append(embedder.embed_images([path]))
        elif modality is Modality.AUDIO:
            seg = embedder.embed_audio_segments(path, window_s=10.0)
            if len(seg) == 1:
                alone = seg.vectors
                refs.append(pair[SOUNDS[1:].index(path.name)][None])
                np.testing.assert_allclose(refs[-1], alone, atol=1e-6)
            else:
                whole = seg.vectors.mean(axis=0)
                whole = whole / max(float(np.linalg.norm(whole)), 1e-12)
                refs.append(np.concatenate([whole[None], seg.vectors]))
        else:
            chunks = chunk_text(STORY, embedder.text_preprocessor.count_tokens)
            assert len(chunks) > 1
            refs.append(embedder.embed_text([c.text for c in chunks]))

    counting = Counting(embedder, monkeypatch)
    plans = [plan_file(embedder, path, m, None, 10.0) for path, m in files]
    assert not any(isinstance(p, str) for p in plans)
    runner = PartRunner(embedder.pipelines, batch_size=3)
    got = list(runner.run((k, [pp.part for pp in plan]) for k, plan in enumerate(plans)))
    assert [k for k, _ in got] == list(range(len(files)))  # in input order
    for (_, vectors), ref in zip(got, refs, strict=True):
        assert isinstance(vectors, np.ndarray)
        np.testing.assert_array_equal(vectors, ref)  # bit for bit
    # Images of four files: two runs of 3 + 1, not four; sounds' 5 windows: two runs.
    images = [n for m, n in counting.runs if m is Modality.IMAGE]
    sounds = [n for m, n in counting.runs if m is Modality.AUDIO]
    assert images == [3, 1] and sounds == [3, 2]
    # records: ids and metadata of each part, the document of each chunk
    records = plan_records(str(story), "ab" * 32, Modality.TEXT, None, plans[3])
    assert [r.document for r in records] == [pp.document for pp in plans[3]]
    assert all(r.embedding is None and r.file and r.file.parts == len(records) for r in records)


def test_a_long_generator_is_consumed_as_it_goes(
    embedder: ClipClapEmbedder, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = embedder.preprocess_images([media_dir / "rgb_320x200.png"])[0]
    reference = embedder.embed_images([media_dir / "rgb_320x200.png"])[0]
    counting = Counting(embedder, monkeypatch)
    pulled = [0]
    held: list[int] = []

    def frames() -> Iterator[Part]:
        for _ in range(1000):
            embedded = sum(n for _, n in counting.runs)
            held.append(pulled[0] - embedded)  # rows taken and not yet through the model
            pulled[0] += 1
            yield Part(Modality.IMAGE, row)

    runner = PartRunner(embedder.pipelines, batch_size=8)
    [(key, vectors)] = list(runner.run([("video", frames())]))
    assert key == "video" and isinstance(vectors, np.ndarray) and vectors.shape[0] == 1000
    assert max(held) <= 8  # never more than one batch of rows waiting
    assert len(counting.runs) == 125
    np.testing.assert_array_equal(vectors, np.broadcast_to(reference, vectors.shape))


def test_a_bad_owner_fails_alone(
    embedder: ClipClapEmbedder, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = embedder.preprocess_images([media_dir / "rgb_320x200.png"])[0]
    reference = embedder.embed_images([media_dir / "rgb_320x200.png"])[0]
    poison = np.full_like(row, 0.25)  # the model "gives NaN" for this row
    real = embedder.encoders.project

    def project(modality: Modality, feeds: dict[str, np.ndarray]) -> np.ndarray:
        batch = next(iter(feeds.values()))
        out = real(modality, feeds).copy()
        out[[bool((r == 0.25).all()) for r in batch]] = np.nan
        return checked(out)

    monkeypatch.setattr(embedder.encoders, "project", project)

    def breaks() -> Iterator[Part]:
        yield Part(Modality.IMAGE, row)
        raise OSError("the disk went away")

    owners = [
        ("a", [Part(Modality.IMAGE, row)]),
        ("gone", ClipClapInputError("cannot be read")),
        ("breaks", breaks()),
        ("nan", [Part(Modality.IMAGE, row), Part(Modality.IMAGE, poison)]),
        ("text", [Part(Modality.TEXT, "a red boat"), Part(Modality.IMAGE, row)]),
        ("b", [Part(Modality.IMAGE, row), Part(Modality.IMAGE, None, mean_of=(0,))]),
    ]
    got = dict(PartRunner(embedder.pipelines, batch_size=2).run(owners))
    assert list(got) == ["a", "gone", "breaks", "nan", "text", "b"]
    assert str(got["gone"]).endswith("cannot be read")
    assert isinstance(got["breaks"], ClipClapInputError) and "disk went away" in str(got["breaks"])
    assert isinstance(got["nan"], NonFiniteVectorError)
    np.testing.assert_array_equal(got["a"], reference[None])
    np.testing.assert_array_equal(got["text"][0], embedder.embed_text(["a red boat"])[0])
    np.testing.assert_array_equal(got["text"][1], reference)
    np.testing.assert_array_equal(got["b"][0], reference)
    np.testing.assert_allclose(got["b"][1], reference, atol=1e-6)  # the mean of one


def test_a_bad_plan_is_a_reason(embedder: ClipClapEmbedder, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert isinstance(plan_file(embedder, broken, Modality.IMAGE, None, 10.0), str)
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    assert plan_file(embedder, empty, Modality.TEXT, None, 10.0) == "the text file is empty"
    with pytest.raises(ValueError, match="window_s"):
        plan_file(embedder, broken, Modality.AUDIO, None, 99.0)


def test_a_plan_without_rows_has_the_same_records_and_makes_no_features(
    embedder: ClipClapEmbedder, media_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_sound = media_dir / "long_25s_16k.flac"
    full = plan_file(embedder, long_sound, Modality.AUDIO, None, 10.0)
    assert not isinstance(full, str) and all(
        p.part.row is not None for p in full if not p.part.mean_of
    )

    def no_features(*_: object, **__: object) -> None:
        raise AssertionError("features made for a plan without rows")

    monkeypatch.setattr(type(embedder.audio_preprocessor), "__call__", no_features)
    bare = plan_file(embedder, long_sound, Modality.AUDIO, None, 10.0, prepare=False)
    assert not isinstance(bare, str) and all(p.part.row is None for p in bare)
    records = [
        plan_records(str(long_sound), "cd" * 32, Modality.AUDIO, None, p) for p in (full, bare)
    ]
    assert records[0] == records[1]  # ids, spans, origins: the same records
    assert len(records[0]) == 1 + 3  # the whole sound and its three windows
    # a picture is not even decoded: a broken one is planned, to fail where it is embedded
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert isinstance(plan_file(embedder, broken, Modality.IMAGE, None, 10.0), str)
    [only] = plan_file(embedder, broken, Modality.IMAGE, None, 10.0, prepare=False)
    assert only.part.row is None
