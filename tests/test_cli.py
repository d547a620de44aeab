"""The ``clipclap`` command, run as a user would: a subprocess with the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clipclap_integrations import ClipClapEmbedder

pytest.importorskip("chromadb")


def clipclap(*args: str, model: Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLIPCLAP_MODEL": str(model), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "clipclap_integrations", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def library(tmp_path: Path, media_dir: Path) -> Path:
    root = tmp_path / "library"
    (root / "photos").mkdir(parents=True)
    (root / "sounds").mkdir()
    for name in ("rgb_320x200.png", "tall_150x420.jpg", "cmyk_280x210.jpg"):
        shutil.copy(media_dir / name, root / "photos" / name)
    for name in ("tone_0p5s_48k.wav", "chirp_3p3s_48k.flac", "long_25s_16k.flac"):
        shutil.copy(media_dir / name, root / "sounds" / name)
    (root / "notes.md").write_text("A red boat on a lake. Gulls overhead.", encoding="utf-8")
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "sounds" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    return root


def test_help_lists_every_command(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = clipclap("--help", model=tiny_model_dir, cwd=tmp_path).stdout
    for command in ("download", "info", "embed", "index", "search"):
        assert command in out


def test_embed_prints_json_lines_with_the_modality(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    image = str(media_dir / "rgb_320x200.png")
    out = clipclap("embed", "a red boat", image, model=tiny_model_dir, cwd=tmp_path).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["modality"] for r in rows] == ["text", "image"]
    expected = ClipClapEmbedder(tiny_model_dir).embed(["a red boat", image])
    np.testing.assert_allclose([r["embedding"] for r in rows], expected, atol=1e-6)
    clipclap("embed", "x", "y", "--npy", "v.npy", model=tiny_model_dir, cwd=tmp_path)
    assert np.load(tmp_path / "v.npy").shape == (2, 512)


def test_info_describes_the_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = clipclap("info", model=tiny_model_dir, cwd=tmp_path).stdout
    assert "dimension: 512" in out and "text_model.onnx" in out
    assert "CPUExecutionProvider" in out


def test_index_then_search_with_a_sentence_an_image_and_a_sound(
    tiny_model_dir: Path, library: Path, tmp_path: Path
) -> None:
    done = clipclap("index", str(library), model=tiny_model_dir, cwd=tmp_path)
    assert "7 added" in done.stdout and "2 failed" in done.stdout
    assert "broken.jpg" in done.stdout and "broken.wav" in done.stdout
    assert (tmp_path / "clipclap-db").is_dir()  # the default embedded database

    photo = library / "photos" / "rgb_320x200.png"
    out = clipclap("search", str(photo), "-k", "3", "--json", model=tiny_model_dir,
                   cwd=tmp_path).stdout
    top = json.loads(out.splitlines()[0])
    assert top["source"] == str(photo.resolve()) and top["score"] == pytest.approx(1.0, abs=1e-4)

    sound = library / "sounds" / "chirp_3p3s_48k.flac"
    out = clipclap("search", str(sound), "-k", "1", "--json", "--modality", "audio",
                   model=tiny_model_dir, cwd=tmp_path).stdout
    assert json.loads(out)["source"] == str(sound.resolve())

    table = clipclap("search", "a red boat on a lake", "-k", "20", model=tiny_model_dir,
                     cwd=tmp_path).stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["rank", "score", "modality", "source"]
    assert len(lines) == 1 + 3 + 6 + 1  # header, 3 images, 6 audio records (long: 1 + 3), 1 text
    assert "10.0-20.0 s" in table  # a window of the long recording, with its times

    again = clipclap("index", str(library), model=tiny_model_dir, cwd=tmp_path)
    assert "0 added" in again.stdout and "7 unchanged" in again.stdout


def test_search_without_an_index_says_what_to_do(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = clipclap("search", "anything", "--db", str(tmp_path / "empty"), model=tiny_model_dir,
                    cwd=tmp_path, check=False)
    assert done.returncode != 0 and "clipclap index" in done.stderr
    assert not (tmp_path / "empty").exists()  # searching creates no database


def test_bad_options_are_refused_before_any_work(tiny_model_dir: Path, tmp_path: Path) -> None:
    for args, option in [
        (("index", str(tmp_path), "--window", "0"), "--window"),
        (("index", str(tmp_path), "--window", "20"), "--window"),
        (("search", "x", "-k", "0"), "-k/--top"),
        (("embed", "x", "--threads", "0"), "--threads"),
    ]:
        done = clipclap(*args, model=tiny_model_dir, cwd=tmp_path, check=False)
        assert done.returncode == 2 and option in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "clipclap-db").exists()  # no database was created on the way
    done = clipclap("download", "not-a-repo", model=tiny_model_dir, cwd=tmp_path, check=False)
    assert done.returncode == 2 and "not a Hub repo id" in done.stderr


def test_unreachable_server_and_closed_pipe_end_without_a_traceback(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    done = clipclap(
        "search", "x", "--host", "127.0.0.1", "--port", port, model=tiny_model_dir,
        cwd=tmp_path, check=False,
    )
    assert done.returncode != 0 and "cannot reach the Chroma server" in done.stderr
    assert "Traceback" not in done.stderr
    env = {**os.environ, "CLIPCLAP_MODEL": str(tiny_model_dir), "HF_HUB_OFFLINE": "1"}
    piped = subprocess.run(
        f"{sys.executable} -m clipclap_integrations embed {' '.join(['word'] * 40)} | head -c 10",
        shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert len(piped.stdout) == 10 and "Error" not in piped.stderr, piped.stderr


def test_another_model_is_refused_by_index_and_search(
    tiny_model_dir: Path, library: Path, tmp_path: Path
) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    graph = onnx.load(str(other / "text_projection.onnx"))
    for init in graph.graph.initializer:  # negated weights: another model
        init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
    onnx.save(graph, str(other / "text_projection.onnx"))

    clipclap("index", str(library / "photos"), model=tiny_model_dir, cwd=tmp_path)
    notes = tmp_path / "more"
    notes.mkdir()
    (notes / "n.txt").write_text("A note about gulls.", encoding="utf-8")
    for args in (("index", str(notes)), ("search", "gulls")):
        done = clipclap(*args, model=other, cwd=tmp_path, check=False)
        assert done.returncode != 0 and "collection 'clipclap'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    listing = clipclap("search", "gulls", "-k", "20", "--json", model=tiny_model_dir, cwd=tmp_path)
    assert all("n.txt" not in line for line in listing.stdout.splitlines())  # nothing written
