"""The ``clipclap`` command, run as a user would: a subprocess with the tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_run import clipclap

from clipclap_integrations import ClipClapEmbedder

pytest.importorskip("chromadb")


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


def test_info_tells_the_providers_in_use_from_the_available_ones(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import onnxruntime as ort

    out = clipclap("info", model=tiny_model_dir, cwd=tmp_path).stdout
    lines = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    # the command asks for onnxruntime's default: the CPU, whatever else this build has
    assert lines["providers in use"] == "CPUExecutionProvider"
    assert lines["providers available"] == ", ".join(ort.get_available_providers())


def test_index_then_search_with_a_sentence_an_image_and_a_sound(
    tiny_model_dir: Path, library: Path, tmp_path: Path
) -> None:
    done = clipclap("index", str(library), model=tiny_model_dir, cwd=tmp_path, expect=1)
    assert "7 added" in done.stdout and "2 failed" in done.stdout
    assert "broken.jpg" in done.stdout and "broken.wav" in done.stdout
    assert (tmp_path / "clipclap-db").is_dir()  # the default embedded database

    photo = library / "photos" / "rgb_320x200.png"
    out = clipclap(
        "search", str(photo), "-k", "3", "--json", model=tiny_model_dir, cwd=tmp_path
    ).stdout
    top = json.loads(out.splitlines()[0])
    assert top["source"] == str(photo.resolve()) and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert top["metadata"]["source"] == top["source"] and top["metadata"]["modality"] == "image"

    sound = library / "sounds" / "chirp_3p3s_48k.flac"
    out = clipclap(
        "search",
        str(sound),
        "-k",
        "1",
        "--json",
        "--modality",
        "audio",
        model=tiny_model_dir,
        cwd=tmp_path,
    ).stdout
    assert json.loads(out)["source"] == str(sound.resolve())

    table = clipclap(
        "search", "a red boat on a lake", "-k", "20", model=tiny_model_dir, cwd=tmp_path
    ).stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["rank", "score", "modality", "source"]
    assert len(lines) == 1 + 3 + 6 + 1  # header, 3 images, 6 audio records (long: 1 + 3), 1 text
    assert "10.0-20.0 s" in table  # a window of the long recording, with its times

    again = clipclap("index", str(library), model=tiny_model_dir, cwd=tmp_path, expect=1)
    assert "0 added" in again.stdout and "7 unchanged" in again.stdout


def test_search_without_an_index_says_what_to_do(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = clipclap(
        "search",
        "anything",
        "--db",
        str(tmp_path / "empty"),
        model=tiny_model_dir,
        cwd=tmp_path,
        check=False,
    )
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
        "search",
        "x",
        "--host",
        "127.0.0.1",
        "--port",
        port,
        model=tiny_model_dir,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode != 0 and "cannot reach the Chroma server" in done.stderr
    assert "Traceback" not in done.stderr
    env = {**os.environ, "CLIPCLAP_MODEL": str(tiny_model_dir), "HF_HUB_OFFLINE": "1"}
    piped = subprocess.run(
        f"{sys.executable} -m clipclap_integrations embed {' '.join(['word'] * 40)} | head -c 10",
        shell=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
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

    clipclap("index", str(library / "photos"), model=tiny_model_dir, cwd=tmp_path, expect=1)
    notes = tmp_path / "more"
    notes.mkdir()
    (notes / "n.txt").write_text("A note about gulls.", encoding="utf-8")
    for args in (("index", str(notes)), ("search", "gulls")):
        done = clipclap(*args, model=other, cwd=tmp_path, check=False)
        assert done.returncode != 0 and "collection 'clipclap'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith(f"clipclap {args[0]}: ") and "--model" in done.stderr
        assert "embedding_function=" not in done.stderr  # the CLI's flags, not Python's
    listing = clipclap("search", "gulls", "-k", "20", "--json", model=tiny_model_dir, cwd=tmp_path)
    assert all("n.txt" not in line for line in listing.stdout.splitlines())  # nothing written


def test_search_and_index_use_the_model_the_collection_was_built_with(
    tiny_model_dir: Path, library: Path, tmp_path: Path
) -> None:
    # No --model and no $CLIPCLAP_MODEL, offline with an empty cache: the default Hub model
    # cannot be had, the one recorded in the collection can.
    clipclap(
        "index",
        str(library / "photos"),
        "--model",
        str(tiny_model_dir),
        model=None,
        cwd=tmp_path,
        expect=1,
    )
    photo = library / "photos" / "rgb_320x200.png"
    out = clipclap("search", str(photo), "-k", "1", "--json", model=None, cwd=tmp_path).stdout
    top = json.loads(out)
    assert top["source"] == str(photo.resolve()) and top["score"] == pytest.approx(1.0, abs=1e-4)
    assert top["metadata"]["source"] == top["source"] and top["metadata"]["modality"] == "image"
    more = clipclap("index", str(library / "sounds"), model=None, cwd=tmp_path, expect=1)
    assert "3 added" in more.stdout and "1 failed" in more.stdout, more.stdout  # broken.wav
    # A missing collection is still said to be missing (before any model is looked for).
    done = clipclap(
        "search", "x", "--collection", "nothing-here", model=None, cwd=tmp_path, check=False
    )
    assert done.returncode != 0 and "no collection 'nothing-here'" in done.stderr


def test_search_shows_records_written_through_the_chroma_api(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    png, wav = media_dir / "rgb_320x200.png", media_dir / "tone_0p5s_48k.wav"
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import chromadb
        from clipclap_integrations.chroma import ClipClapDataLoader, ClipClapEmbeddingFunction
        client = chromadb.PersistentClient(path="api-db")
        col = client.get_or_create_collection(
            "media", embedding_function=ClipClapEmbeddingFunction({str(tiny_model_dir)!r}),
            data_loader=ClipClapDataLoader())
        col.add(ids=["circle", "tone"], uris=[{str(png)!r}, {str(wav)!r}],
                metadatas=[{{"modality": "image"}}, {{"modality": "audio"}}])
        col.add(ids=["caption"], documents=["a bird singing in a tree"],
                metadatas=[{{"modality": "text"}}])
        """),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    args = ("search", "a bird", "--db", "api-db", "--collection", "media", "-k", "3")
    rows = [
        json.loads(line)
        for line in clipclap(
            *args, "--json", model=tiny_model_dir, cwd=tmp_path
        ).stdout.splitlines()
    ]
    got = {r["modality"]: (r["source"], r["where"]) for r in rows}
    assert got == {
        "image": (str(png), "whole"),
        "audio": (str(wav), "whole"),
        "text": ("a bird singing in a tree", "whole"),
    }
    table = clipclap(*args, model=tiny_model_dir, cwd=tmp_path).stdout
    assert str(png) in table and str(wav) in table and "0.0 s" not in table


def test_add_media_and_index_share_a_collection_and_search_shows_both(
    tiny_model_dir: Path, media_dir: Path, library: Path, tmp_path: Path
) -> None:
    # add_media's records have content-hash ids and no source: a text, a file, pixels in memory.
    png = media_dir / "rgb_320x200.png"
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import json
        import chromadb, numpy as np
        from clipclap_integrations.chroma import ClipClapEmbeddingFunction, add_media
        client = chromadb.PersistentClient(path="clipclap-db")
        col = client.get_or_create_collection(
            "clipclap", embedding_function=ClipClapEmbeddingFunction({str(tiny_model_dir)!r}))
        pixels = np.full((32, 48, 3), 200, dtype=np.uint8)
        print(json.dumps(add_media(col, ["a bird singing in a tree", {str(png)!r}, pixels])))
        """),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    caption, picture, pixels = json.loads(made.stdout)
    assert pixels.startswith("image-")
    done = clipclap("index", str(library / "photos"), model=tiny_model_dir, cwd=tmp_path, expect=1)
    assert "3 added" in done.stdout and "6 records in the collection" in done.stdout

    search = ("search", "a bird", "-k", "20")
    out = clipclap(*search, "--json", model=tiny_model_dir, cwd=tmp_path).stdout
    rows = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert len(rows) == 6
    shown = {i: (rows[i]["modality"], rows[i]["source"], rows[i]["where"]) for i in rows}
    assert shown[caption] == ("text", "a bird singing in a tree", "whole")
    assert rows[caption]["text"] == "a bird singing in a tree"
    assert shown[picture] == ("image", str(png.resolve()), "whole")
    assert shown[pixels] == ("image", f"id {pixels}", "whole")  # nothing else tells what it was
    indexed = [r["source"] for i, r in rows.items() if i not in (caption, picture, pixels)]
    assert sorted(Path(s).name for s in indexed) == sorted(
        ["rgb_320x200.png", "tall_150x420.jpg", "cmyk_280x210.jpg"]
    )
    table = clipclap(*search, model=tiny_model_dir, cwd=tmp_path).stdout
    assert f"id {pixels}" in table and str(png.resolve()) in table

    # The indexer's re-runs and --prune leave records that are not a file's alone.
    again = clipclap(
        "index", str(library / "photos"), "--prune", model=tiny_model_dir, cwd=tmp_path, expect=1
    )
    assert "3 unchanged" in again.stdout and "0 removed" in again.stdout
    assert "6 records in the collection" in again.stdout


def test_a_missing_media_file_as_query_is_an_error(
    tiny_model_dir: Path, library: Path, tmp_path: Path
) -> None:
    clipclap("index", str(library / "photos"), model=tiny_model_dir, cwd=tmp_path, expect=1)
    typo = library / "sounds" / "sirne.flac"
    for query, words in [
        (str(typo), "no such file"),
        ("sirne.flac", "no such file"),
        ("./sounds/siren", "no such file"),
        (str(library / "photos"), "is a folder"),
    ]:
        done = clipclap(
            "search", query, "--modality", "image", model=tiny_model_dir, cwd=tmp_path, check=False
        )
        assert done.returncode == 2 and words in done.stderr, (query, done.stderr)
        assert "--as text" in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""
    forced = clipclap(
        "search", str(typo), "--as", "text", "--json", model=tiny_model_dir, cwd=tmp_path
    )
    assert len(forced.stdout.splitlines()) == 3  # the three photos, ranked against the text
    # Sentences are still sentences, even with a slash or a colon in them.
    for sentence in (
        "AC/DC live",
        "a note: dog.png",
        "and/or",
        "what is a .wav",
        "my vacation photo.jpg",
        "/r/aww",
    ):
        clipclap("search", sentence, model=tiny_model_dir, cwd=tmp_path)


def test_a_file_name_that_is_not_utf8_is_listed_as_failed(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "pictures"
    root.mkdir()
    picture = (media_dir / "rgb_320x200.png").read_bytes()
    with open(os.path.join(os.fsencode(root), b"caf\xe9.png"), "wb") as f:
        f.write(picture)
    (root / "boat.png").write_bytes(picture)
    done = clipclap(
        "index",
        str(root),
        model=tiny_model_dir,
        cwd=tmp_path,
        PYTHONIOENCODING="utf-8:strict",
        expect=1,
    )  # what a UTF-8 terminal does
    assert "1 added" in done.stdout and "1 failed" in done.stdout
    assert f"{root}/caf\\xe9.png: the path is not valid UTF-8" in done.stdout


class _CountingHandler(SimpleHTTPRequestHandler):
    requests: list[str] = []  # noqa: RUF012 - shared on purpose: the paths served

    def log_message(self, format: str, *args: Any) -> None:
        self.requests.append(self.path)


@pytest.mark.server
def test_embed_fetches_a_url_without_extension_once(
    tiny_model_dir: Path, media_dir: Path, tmp_path: Path
) -> None:
    served = tmp_path / "www"
    served.mkdir()
    shutil.copy(media_dir / "rgb_320x200.png", served / "picture")  # no extension
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_CountingHandler, directory=served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/picture"
        _CountingHandler.requests.clear()
        out = clipclap(
            "embed",
            url,
            "a red boat",
            model=tiny_model_dir,
            cwd=tmp_path,
            NO_PROXY="127.0.0.1",
            no_proxy="127.0.0.1",
        ).stdout
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert _CountingHandler.requests == ["/picture"]
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["input"], r["modality"]) for r in rows] == [(url, "image"), ("a red boat", "text")]
    expected = ClipClapEmbedder(tiny_model_dir).embed([media_dir / "rgb_320x200.png", "a red boat"])
    np.testing.assert_allclose([r["embedding"] for r in rows], expected, atol=1e-6)


def test_index_exits_1_when_a_file_failed_and_json_summarizes_the_run(
    tiny_model_dir: Path, library: Path, tmp_path: Path
) -> None:
    done = clipclap("index", str(library), "--json", model=tiny_model_dir, cwd=tmp_path, expect=1)
    summary = json.loads(done.stdout)
    assert len(summary["added"]) == 7 and summary["replaced"] == summary["pruned"] == []
    assert sorted(Path(f["path"]).name for f in summary["failed"]) == ["broken.jpg", "broken.wav"]
    assert all(f["reason"] for f in summary["failed"])
    (library / "photos" / "broken.jpg").unlink()
    (library / "sounds" / "broken.wav").unlink()
    again = clipclap("index", str(library), "--json", "--prune", model=tiny_model_dir, cwd=tmp_path)
    summary = json.loads(again.stdout)  # exit 0: nothing failed
    assert len(summary["unchanged"]) == 7 and summary["failed"] == []


def test_ctrl_c_during_index_prints_one_line_and_a_rerun_resumes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    import re
    import signal

    root = tmp_path / "notes"
    root.mkdir()
    files = 2000  # enough that the interrupt lands mid-run (the tiny model does ~1,500/s)
    for k in range(files):
        (root / f"note-{k:04}.txt").write_text(f"Note number {k}: a short line.", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CLIPCLAP_MODEL": str(tiny_model_dir)}
    env["CLIPCLAP_PROGRESS"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipclap_integrations", "index", str(root)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = b""
    while not re.search(rb" ([1-9]\d*)/2000 ", seen):  # the bar shows files done: interrupt now
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk, seen.decode(errors="replace")
        seen += chunk
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (seen + err).decode(errors="replace")
    lines = [ln for ln in re.split(r"[\r\n]", err.decode()) if ln.strip()]
    assert "Traceback" not in err.decode()
    last = lines[-1]
    match = re.fullmatch(
        r"clipclap index: interrupted after (\d+) files; run again to resume", last
    )
    assert match, err.decode()
    assert not any("interrupted" in ln for ln in lines[:-1])
    done_before = int(match.group(1))
    assert 0 < done_before < files

    again = clipclap("index", str(root), "--json", model=tiny_model_dir, cwd=tmp_path)
    summary = json.loads(again.stdout)
    assert len(summary["added"]) + len(summary["unchanged"]) == files
    assert len(summary["unchanged"]) >= done_before and summary["failed"] == []
    assert summary["records_in_collection"] == files  # one record per note: none twice


def test_embed_refuses_a_missing_file_unless_told_it_is_text(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    for args in (("missing.png",), ("a cat", "./photos/cat.jpg")):
        done = clipclap("embed", *args, model=tiny_model_dir, cwd=tmp_path, check=False)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        assert done.stderr.startswith("clipclap embed: no such file") and "--as text" in done.stderr
    forced = clipclap("embed", "missing.png", "--as", "text", model=tiny_model_dir, cwd=tmp_path)
    row = json.loads(forced.stdout)
    assert row["modality"] == "text" and row["input"] == "missing.png"


def test_cli_errors_carry_the_command_and_name_its_flags(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    for query in ("", "   "):
        done = clipclap("search", query, model=tiny_model_dir, cwd=tmp_path, check=False)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("clipclap search: the query is empty"), done.stderr
    cases = [
        (("search", "gulls", "--db", str(tmp_path / "none")), "clipclap search: no index at"),
        (("index", str(tmp_path), "--host", "127.0.0.1", "--port", "9"), "clipclap index: "),
        (("download", str(tiny_model_dir)), "clipclap download: "),
        (("download", "not-a-repo"), "clipclap download: "),
    ]
    for args, start in cases:
        done = clipclap(*args, model=tiny_model_dir, cwd=tmp_path, check=False)
        assert done.returncode != 0 and done.stderr.startswith(start), (args, done.stderr)
    offline = clipclap("info", model=None, cwd=tmp_path, check=False)  # nothing cached
    assert offline.returncode == 2 and offline.stderr.startswith("clipclap info: ")
    assert "--model <" in offline.stderr and "model=<" not in offline.stderr, offline.stderr
