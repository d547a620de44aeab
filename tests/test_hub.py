"""Model acquisition from a Hub: download, cache, offline, revisions, broken repos, dropped links.

The Hub is the stand-in of ``clipclap_integrations.testing.standin_hub`` on 127.0.0.1,
serving a tiny synthetic CLIPCLAP whose text encoder keeps its weights in
``text_model.onnx.data``. huggingface_hub reads ``HF_ENDPOINT``/``HF_HOME``/``HF_HUB_OFFLINE``
when it is imported, so the code under test runs in child processes (``_run``), each with its
own environment; the stand-in logs every request, so the tests also check what went over the
wire. Building the models needs the ``synthetic`` extra (torch).
"""

from __future__ import annotations

import filecmp
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clipclap_integrations import ClipClapEmbedder, ModelFolderError
from clipclap_integrations.runtime.hub import DownloadResult, ModelFile, is_repo_id, resolve_model
from clipclap_integrations.runtime.model import load_model_folder
from clipclap_integrations.testing.standin_hub import StandinHub

REPO = "antflydb/clipclap"
ALT = "antflydb/clipclap-alt"  # serves the v2 weights at main
BROKEN = "antflydb/broken"  # lacks tokenizer.json and text_model.onnx.data
BIG = "antflydb/clipclap-big"  # the model plus a 12 MiB file in a subfolder
BIG_FILE = "extra/big.bin"
INVALID = "antflydb/clipclap-invalid"  # complete, but its preprocessor_config.json is not JSON
DATA = "text_model.onnx.data"
TEXT = "a dog barking in the rain"
MIB = 1024 * 1024
CHILD_TIMEOUT = 120.0


# -- fixtures -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Models:
    main: Path  # seed 0, text weights external
    v2: Path  # seed 1, text weights external
    big_file: Path  # 12 MiB of random bytes


@pytest.fixture(scope="session")
def hub_models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Two synthetic models (different weights) with external text weights, built once."""
    pytest.importorskip("torch")
    from clipclap_integrations.testing.builder import build_model

    root = tmp_path_factory.mktemp("hub-models")
    main = build_model(root / "main", "tiny", seed=0, external_data=["text_model"])
    v2 = build_model(root / "v2", "tiny", seed=1, external_data=["text_model"])
    big = root / "big.bin"
    big.write_bytes(np.random.default_rng(0).bytes(12 * MIB))
    return Models(main, v2, big)


@pytest.fixture(scope="session")
def vectors(hub_models: Models) -> dict[str, np.ndarray]:
    """The text vector of each model, computed from its local folder in this process."""
    return {
        name: ClipClapEmbedder(str(folder)).embed_text([TEXT])[0]
        for name, folder in (("main", hub_models.main), ("v2", hub_models.v2))
    }


@pytest.fixture(scope="module")
def hub(hub_models: Models, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHub]:
    """The stand-in Hub serving every test repo; stopped after the module."""
    import shutil

    invalid = tmp_path_factory.mktemp("invalid") / "model"
    shutil.copytree(hub_models.main, invalid)
    (invalid / "preprocessor_config.json").write_text("{not json", encoding="utf-8")
    standin = StandinHub()
    standin.add_repo(INVALID, invalid)
    standin.add_repo(REPO, hub_models.main)
    standin.add_repo(REPO, hub_models.v2, revision="v2")
    standin.add_repo(ALT, hub_models.v2)
    standin.add_repo(BROKEN, hub_models.main, exclude=("tokenizer.json", DATA))
    standin.add_repo(BIG, hub_models.main, extra={BIG_FILE: hub_models.big_file})
    with standin:
        yield standin


@pytest.fixture(autouse=True)
def _no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "hub" in request.fixturenames:
        request.getfixturevalue("hub").clear_faults()


@pytest.fixture(scope="module")
def warm_home(hub: StandinHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF_HOME whose cache already holds antflydb/clipclap@main (tests only read it)."""
    home = tmp_path_factory.mktemp("warm-home")
    run = _run(hub, home, [{"model": REPO}])
    assert "error" not in run.results[0], run.results[0]
    return home


# -- child processes ----------------------------------------------------------------------------
CHILD = r"""
import json, sys, warnings
results = []
for step in json.loads(sys.argv[1]):
    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if step.get("download"):
                from clipclap_integrations.runtime.hub import download_model
                r = download_model(step.get("model"), **step.get("kwargs", {}))
                out.update(folder=str(r.folder), commit=r.commit, downloaded=r.downloaded,
                           offline_reason=r.offline_reason,
                           files={f.path: f.size for f in r.files})
            else:
                from clipclap_integrations import ClipClapEmbedder
                e = ClipClapEmbedder(step.get("model"), **step.get("kwargs", {}))
                out.update(folder=str(e.model_path), commit=e.model_revision)
                if step.get("embed", True):
                    out["vector"] = e.embed_text([step.get("text", "")])[0].tolist()
        except Exception as exc:
            out.update(error=type(exc).__name__, message=str(exc),
                       bases=[c.__name__ for c in type(exc).__mro__])
    out["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    results.append(out)
print("RESULTS " + json.dumps(results))
"""


@dataclass(frozen=True)
class ChildRun:
    results: list[dict[str, Any]]
    stderr: str
    requests: list[str]  # "METHOD path" of the repo requests the hub saw meanwhile
    any_requests: int  # every request the hub saw meanwhile (huggingface_hub sends others too)
    seconds: float


def _repo_requests(hub: StandinHub, mark: int) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in hub.requests_since(mark)
        if r.path.startswith("/api/models/") or "/resolve/" in r.path
    ]


def _run(
    hub: StandinHub | None,
    home: Path,
    steps: Sequence[Mapping[str, Any]],
    *,
    env: Mapping[str, str] | None = None,
    endpoint: str | None = None,
) -> ChildRun:
    """Run ``steps`` (embedder constructions or download_model calls) in a fresh interpreter."""
    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING", "CLIPCLAP_", "TRANSFORMERS_"))
    }
    child_env.update(
        HF_HOME=str(home),
        HF_ENDPOINT=endpoint or (hub.url if hub is not None else "http://127.0.0.1:9"),
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    child_env.update(env or {})
    steps = [{"text": TEXT, **step} for step in steps]
    mark = len(hub.requests) if hub is not None else 0
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(steps)],
        env=child_env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    seconds = time.monotonic() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, f"child failed ({proc.returncode}):\n{proc.stderr}"
    requests = _repo_requests(hub, mark) if hub is not None else []
    any_requests = len(hub.requests_since(mark)) if hub is not None else 0
    results = json.loads(lines[-1][len("RESULTS ") :])
    return ChildRun(results, proc.stderr, requests, any_requests, seconds)


def _ok(result: Mapping[str, Any]) -> Mapping[str, Any]:
    assert "error" not in result, f"{result.get('error')}: {result.get('message')}"
    return result


def _vector(result: Mapping[str, Any]) -> np.ndarray:
    return np.asarray(_ok(result)["vector"], dtype=np.float32)


def _storage(home: Path, repo: str = REPO) -> Path:
    return home / "hub" / ("models--" + repo.replace("/", "--"))


def _partials(home: Path) -> list[Path]:
    return sorted((home / "hub").rglob("*.incomplete"))


def _same_files(snapshot: Path, source: Path, names: Sequence[str]) -> list[str]:
    """Names whose bytes differ between the snapshot and the source folder."""
    return [n for n in names if not filecmp.cmp(snapshot / n, source / n, shallow=False)]


def _source_files(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- the stand-in itself ------------------------------------------------------------------------
@pytest.mark.server
def test_standin_serves_the_hub_protocol(hub: StandinHub, hub_models: Models) -> None:
    """Repo info, recursive tree with LFS data, HEAD headers, Range and the 404 error codes."""
    host, port = hub.url.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def get(method: str, path: str, headers: Mapping[str, str] | None = None) -> Any:
        conn.request(method, path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response, response.read()

    commit = hub.commit(REPO)
    response, body = get("GET", f"/api/models/{REPO}/revision/main")
    assert response.status == 200 and json.loads(body)["sha"] == commit
    response, body = get("GET", f"/api/models/{REPO}/revision/{commit}")
    assert json.loads(body)["sha"] == commit  # a commit is a revision too
    response, body = get("GET", f"/api/models/{BIG}/tree/main?recursive=True&expand=False")
    tree = {e["path"]: e for e in json.loads(body)}
    assert tree["extra"]["type"] == "directory"
    assert tree[BIG_FILE]["size"] == 12 * MIB
    sha256 = hashlib.sha256((hub_models.main / DATA).read_bytes()).hexdigest()
    assert tree[DATA]["lfs"]["oid"] == sha256
    assert "lfs" not in tree["tokenizer.json"]
    response, body = get("GET", f"/api/models/{BIG}/tree/main")
    assert BIG_FILE not in {e["path"] for e in json.loads(body)}  # not recursive

    response, body = get("HEAD", f"/{REPO}/resolve/main/{DATA}")
    size = (hub_models.main / DATA).stat().st_size
    assert response.status == 200 and body == b""
    assert response.getheader("X-Repo-Commit") == commit
    assert response.getheader("Content-Length") == str(size)
    assert response.getheader("ETag") == f'"{tree[DATA]["lfs"]["oid"]}"'
    assert not any(k.lower().startswith("x-xet") for k in response.headers)
    response, body = get("GET", f"/{REPO}/resolve/{commit}/{DATA}", {"Range": "bytes=100-"})
    assert response.status == 206
    assert response.getheader("Content-Range") == f"bytes 100-{size - 1}/{size}"
    assert body == (hub_models.main / DATA).read_bytes()[100:]

    for path, code in [
        ("/api/models/nobody/nothing/revision/main", "RepoNotFound"),
        (f"/api/models/{REPO}/revision/nope", "RevisionNotFound"),
        (f"/{REPO}/resolve/main/nope.json", "EntryNotFound"),
    ]:
        response, _ = get("GET", path)
        assert (response.status, response.getheader("X-Error-Code")) == (404, code), path
    conn.close()


@pytest.mark.server
def test_standin_stop_closes_keep_alive_connections(hub_models: Models) -> None:
    """After stop() an open keep-alive connection is dead and new ones are refused."""
    standin = StandinHub().start()
    standin.add_repo(REPO, hub_models.main)
    port = int(standin.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", f"/api/models/{REPO}/revision/main")
    assert conn.getresponse().read()
    start = time.monotonic()
    standin.stop()
    assert time.monotonic() - start < 5
    with pytest.raises((OSError, http.client.HTTPException)):
        conn.request("GET", f"/api/models/{REPO}/revision/main")
        conn.getresponse().read()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).connect()


@pytest.mark.server
def test_standin_command_line(hub_models: Models) -> None:
    """``python -m ...standin_hub --repo R=DIR --revision NAME=DIR --port 0`` serves both."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clipclap_integrations.testing.standin_hub",
            "--repo",
            f"{REPO}={hub_models.main}",
            "--revision",
            f"v2={hub_models.v2}",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer = threading.Timer(60, proc.kill)  # bound the test even if the server hangs
    killer.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "serving at http://127.0.0.1:" in first, first + proc.stderr.read()
        url = first.split()[-1]
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/api/models/{REPO}/revision/v2")
        response = conn.getresponse()
        assert response.status == 200
        assert len(json.loads(response.read())["sha"]) == 40
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        killer.cancel()
    assert code == 0


# -- acquisition --------------------------------------------------------------------------------
@pytest.mark.server
def test_first_download(
    hub: StandinHub, hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Every file (external weights too) lands in the cache once; vectors match the folder."""
    run = _run(hub, tmp_path, [{"model": REPO}, {"download": True, "model": REPO}])
    embedded, downloaded = run.results
    commit = hub.commit(REPO)
    assert embedded["commit"] == commit
    snapshot = _storage(tmp_path) / "snapshots" / commit
    assert Path(embedded["folder"]) == snapshot.resolve()
    np.testing.assert_array_equal(_vector(embedded), vectors["main"])

    source = _source_files(hub_models.main)
    assert DATA in source
    assert _ok(downloaded)["files"] == source  # what `clipclap download` reports
    assert downloaded["commit"] == commit and downloaded["downloaded"] is False
    assert _same_files(snapshot, hub_models.main, list(source)) == []
    # the same model wherever it lives: the snapshot (weights named by their SHA-256 in the
    # cache, not read again) and the folder it was uploaded from
    assert load_model_folder(snapshot).digest == load_model_folder(hub_models.main).digest
    assert load_model_folder(snapshot).digest != load_model_folder(hub_models.v2).digest
    assert _partials(tmp_path) == []
    assert "Fetching" in run.stderr  # huggingface_hub's progress bar
    gets = [r for r in run.requests if r.startswith("GET ") and "/resolve/" in r]
    assert sorted(r.rsplit("/", 1)[1] for r in gets) == sorted(source)  # each file once
    assert (_storage(tmp_path) / "refs" / "main").read_text() == commit


@pytest.mark.server
def test_damaged_cached_file_is_downloaded_again(
    hub: StandinHub, hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """huggingface_hub trusts its cache; a truncated file is noticed and fetched again."""
    _ok(_run(hub, tmp_path, [{"model": REPO, "embed": False}]).results[0])
    snapshot = _storage(tmp_path) / "snapshots" / hub.commit(REPO)
    blob = (snapshot / "text_model.onnx").resolve()
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 2])

    offline = _run(hub, tmp_path, [{"model": REPO}], env={"HF_HUB_OFFLINE": "1"})
    assert offline.results[0]["error"] == "ModelFolderError"  # nothing to repair it with
    assert "text_model.onnx" in offline.results[0]["message"]

    run = _run(hub, tmp_path, [{"model": REPO}])
    np.testing.assert_array_equal(_vector(run.results[0]), vectors["main"])
    assert "are damaged" in run.stderr and "downloading them again" in run.stderr
    gets = [r.rsplit("/", 1)[1] for r in run.requests if r.startswith("GET ") and "/resolve/" in r]
    assert gets == ["text_model.onnx"]  # only the damaged file is fetched again
    assert _same_files(snapshot, hub_models.main, ["text_model.onnx"]) == []


def _cli_download(
    hub: StandinHub, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``clipclap download ARGS`` in a child process using ``home`` and the stand-in Hub."""
    extra = env or {}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING", "CLIPCLAP_", "TRANSFORMERS_"))
    }
    env.update(HF_HOME=str(home), HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return subprocess.run(
        [sys.executable, "-m", "clipclap_integrations", "download", *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )


@pytest.mark.server
def test_truncated_external_weights_in_the_cache(
    hub: StandinHub, hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """A cut-short ``text_model.onnx.data`` blob: offline, a ModelFolderError naming it and
    `clipclap download` (not --force: only the damaged file needs fetching); online,
    `clipclap download` fetches it again (only it)."""
    _ok(_run(hub, tmp_path, [{"download": True, "model": REPO}]).results[0])
    snapshot = _storage(tmp_path) / "snapshots" / hub.commit(REPO)
    need = (hub_models.main / DATA).stat().st_size
    with open((snapshot / DATA).resolve(), "r+b") as f:
        f.truncate(1_000_000)

    offline = _run(
        hub,
        tmp_path,
        [{"model": REPO}, {"download": True, "model": REPO}],
        env={"HF_HUB_OFFLINE": "1"},
    )
    for result in offline.results:
        assert result["error"] == "ModelFolderError", result
        message = result["message"]
        assert f"{DATA} is 1000000 bytes, but the weights text_model.onnx keeps there need " in (
            message
        )
        assert f"the cached file {DATA} is damaged" in message
        assert f"run `clipclap download {REPO}` with network access" in message
    assert offline.any_requests == 0

    mark = len(hub.requests)
    cli = _cli_download(hub, tmp_path, REPO)
    assert cli.returncode == 0, cli.stderr
    assert "(downloaded)" in cli.stdout and "already in the cache" not in cli.stdout
    assert f"{need:,}  {DATA}" in cli.stdout
    assert "are damaged (their content does not match their hash)" in cli.stderr
    gets = [r.rsplit("/", 1)[1] for r in _repo_requests(hub, mark) if r.startswith("GET /ant")]
    assert gets == [DATA]
    assert _same_files(snapshot, hub_models.main, [DATA]) == []
    np.testing.assert_array_equal(
        _vector(_run(hub, tmp_path, [{"model": REPO}]).results[0]), vectors["main"]
    )


@pytest.mark.server
def test_download_verifies_cached_files(
    hub: StandinHub, hub_models: Models, tmp_path: Path
) -> None:
    """A cached file damaged without changing its size passes validation, but the download
    command checks hashes: offline it names the file, online it fetches it again."""
    _ok(_run(hub, tmp_path, [{"download": True, "model": REPO}]).results[0])
    snapshot = _storage(tmp_path) / "snapshots" / hub.commit(REPO)
    with open((snapshot / DATA).resolve(), "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0xFF]))

    unchecked = _run(
        hub, tmp_path, [{"download": True, "model": REPO}], env={"HF_HUB_OFFLINE": "1"}
    ).results[0]
    assert "error" not in unchecked, unchecked  # the API trusts the cache unless asked
    offline = _run(
        hub,
        tmp_path,
        [{"download": True, "model": REPO, "kwargs": {"verify": True}}],
        env={"HF_HUB_OFFLINE": "1"},
    ).results[0]
    assert offline["error"] == "ModelFolderError", offline
    assert f"the cached file {DATA} is damaged" in offline["message"]
    assert f"run `clipclap download {REPO}` with network access" in offline["message"]
    no_check = _cli_download(hub, tmp_path, REPO, "--no-verify", env={"HF_HUB_OFFLINE": "1"})
    assert no_check.returncode == 0 and "checked against its hash" not in no_check.stdout

    mark = len(hub.requests)
    cli = _cli_download(hub, tmp_path, REPO)
    assert cli.returncode == 0, cli.stderr
    assert "(downloaded)" in cli.stdout
    gets = [r.rsplit("/", 1)[1] for r in _repo_requests(hub, mark) if r.startswith("GET /ant")]
    assert gets == [DATA]
    assert _same_files(snapshot, hub_models.main, [DATA]) == []
    again = _cli_download(hub, tmp_path, REPO)
    assert "already in the cache, every file checked against its hash" in again.stdout


@pytest.mark.server
def test_a_commit_broken_on_the_hub_is_not_downloaded_again_and_again(
    hub: StandinHub, tmp_path: Path
) -> None:
    first = _run(hub, tmp_path, [{"model": INVALID}])
    assert first.results[0]["error"] == "ModelFolderError", first.results[0]
    assert "preprocessor_config.json" in first.results[0]["message"]
    again = _run(hub, tmp_path, [{"model": INVALID}])
    assert again.results[0]["error"] == "ModelFolderError"
    assert [r for r in again.requests if r.startswith("GET ") and "/resolve/" in r] == []
    assert "damaged" not in again.stderr  # it is the commit, not the cache


@pytest.mark.server
def test_one_hub_request_per_process_when_cached(hub: StandinHub, warm_home: Path) -> None:
    """Three embedders in one process: one revision lookup, no file request, no progress bar."""
    run = _run(
        hub,
        warm_home,
        [{"model": REPO}, {"model": None, "embed": False}, {"model": REPO, "embed": False}],
    )
    assert {_ok(r)["commit"] for r in run.results} == {hub.commit(REPO)}
    assert run.requests == [f"GET /api/models/{REPO}/revision/main"]
    assert "Fetching" not in run.stderr
    assert all(r["warnings"] == [] for r in run.results)


@pytest.mark.server
def test_cached_copy_used_when_hub_is_down(
    hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Cache filled, then the Hub goes away (no offline flag): the cache serves, with a warning."""
    standin = StandinHub()
    commit = standin.add_repo(REPO, hub_models.main)
    with standin:
        _ok(_run(standin, tmp_path, [{"model": REPO}]).results[0])
        endpoint = standin.url
    run = _run(None, tmp_path, [{"model": REPO}, {"download": True}], endpoint=endpoint)
    embedded, downloaded = run.results
    assert embedded["commit"] == commit
    np.testing.assert_array_equal(_vector(embedded), vectors["main"])
    assert any(
        "HubUnreachableWarning" in w and "could not be reached" in w and commit in w
        for w in embedded["warnings"]
    ), embedded["warnings"]
    # the download command finds the cache too, and says why the Hub was not used
    assert _ok(downloaded)["commit"] == commit and downloaded["downloaded"] is False
    assert "could not be reached" in downloaded["offline_reason"]
    assert run.seconds < 60


@pytest.mark.server
def test_older_cached_copy_used_when_an_update_fails(
    hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """main moved to new weights whose download fails: the cached older main serves, warned."""
    standin = StandinHub()
    old = standin.add_repo(REPO, hub_models.main)
    with standin:
        _ok(_run(standin, tmp_path, [{"model": REPO, "embed": False}]).results[0])
        new = standin.add_repo(REPO, hub_models.v2)  # the Hub's main now points elsewhere
        standin.add_fault(DATA, status=500, times=None)
        result = _run(standin, tmp_path, [{"model": REPO}]).results[0]
    assert new != old and result["commit"] == old
    np.testing.assert_array_equal(_vector(result), vectors["main"])
    assert any(
        f"downloading {REPO} (commit {new}) failed" in w and f"(commit {old})" in w
        for w in result["warnings"]
    ), result["warnings"]
    assert (_storage(tmp_path) / "refs" / "main").read_text() == old
    assert _partials(tmp_path) == []


@pytest.mark.server
@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "local_files_only"])
def test_offline_with_cache(
    hub: StandinHub, warm_home: Path, vectors: dict[str, np.ndarray], how: str
) -> None:
    """Offline with the model cached: works, and sends no request at all."""
    env = {"HF_HUB_OFFLINE": "1"} if how == "HF_HUB_OFFLINE" else {}
    kwargs = {"local_files_only": True} if how == "local_files_only" else {}
    run = _run(hub, warm_home, [{"model": REPO, "kwargs": kwargs}], env=env)
    assert run.results[0]["commit"] == hub.commit(REPO)
    np.testing.assert_array_equal(_vector(run.results[0]), vectors["main"])
    assert run.any_requests == 0


@pytest.mark.server
@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "local_files_only"])
def test_offline_without_cache(hub: StandinHub, tmp_path: Path, how: str) -> None:
    """Offline with an empty cache: one clear error naming `clipclap download` and model=."""
    env = {"HF_HUB_OFFLINE": "1"} if how == "HF_HUB_OFFLINE" else {}
    kwargs = {"local_files_only": True} if how == "local_files_only" else {}
    steps = [{"model": REPO, "kwargs": kwargs}, {"download": True, "model": REPO, "kwargs": kwargs}]
    run = _run(hub, tmp_path, steps, env=env)
    for result in run.results:
        assert result["error"] == "ModelNotAvailableError"
        assert "ClipClapError" in result["bases"]
        message = result["message"]
        assert f"`clipclap download {REPO}`" in message
        assert "model=<a local CLIPCLAP model folder>" in message
        assert (how + ("=1" if how == "HF_HUB_OFFLINE" else "=True")) in message
        assert str(tmp_path / "hub") in message
    assert run.any_requests == 0


@pytest.mark.server
def test_pinned_revisions(
    hub: StandinHub, hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """A branch and a commit hash each give their own weights and report their commit."""
    v2 = hub.commit(REPO, "v2")
    main = _run(hub, tmp_path, [{"model": REPO}]).results[0]
    assert main["commit"] == hub.commit(REPO) != v2
    np.testing.assert_array_equal(_vector(main), vectors["main"])
    pinned = _run(hub, tmp_path, [{"model": REPO, "kwargs": {"revision": r}} for r in ("v2", v2)])
    by_name, by_commit = pinned.results
    assert by_name["commit"] == by_commit["commit"] == v2
    np.testing.assert_array_equal(_vector(by_name), vectors["v2"])
    np.testing.assert_array_equal(_vector(by_commit), vectors["v2"])
    assert not np.allclose(vectors["main"], vectors["v2"], atol=1e-3)
    # one lookup for v2, none for the (immutable) commit hash; and only the files whose bytes
    # differ from main's were fetched: the cache shares identical blobs between revisions
    assert [r for r in pinned.requests if "/revision/" in r] == [
        f"GET /api/models/{REPO}/revision/v2"
    ]
    fetched = [r.rsplit("/", 1)[1] for r in pinned.requests if r.startswith("GET /antflydb/")]
    changed = _same_files(hub_models.main, hub_models.v2, list(_source_files(hub_models.v2)))
    assert sorted(fetched) == sorted(changed) and DATA in changed
    # both revisions are now usable offline, by name and by commit
    offline = _run(
        hub,
        tmp_path,
        [{"model": REPO, "kwargs": {"revision": r}} for r in ("main", "v2", v2)],
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert [_ok(r)["commit"] for r in offline.results] == [hub.commit(REPO), v2, v2]
    assert offline.any_requests == 0


@pytest.mark.server
def test_two_revisions_in_one_process(
    hub: StandinHub, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """main then v2 in one process: v2 must not reuse main's text session.

    Their ``text_model.onnx`` is the same blob in the cache (only ``.onnx.data`` differs), so
    a session cache keyed by the symlink target would mix the two revisions up.
    """
    run = _run(hub, tmp_path, [{"model": REPO}, {"model": REPO, "kwargs": {"revision": "v2"}}])
    main, v2 = run.results
    np.testing.assert_array_equal(_vector(main), vectors["main"])
    np.testing.assert_array_equal(_vector(v2), vectors["v2"])


@pytest.mark.server
def test_broken_repo_and_unknown_names(hub: StandinHub, tmp_path: Path) -> None:
    """A repo without required files, an unknown revision and an unknown repo: clear errors."""
    run = _run(
        hub,
        tmp_path,
        [
            {"model": BROKEN},
            {"download": True, "model": BROKEN},
            {"model": REPO, "kwargs": {"revision": "no-such-branch"}},
            {"model": "antflydb/no-such-model"},
        ],
    )
    broken, broken_download, bad_revision, bad_repo = run.results
    for result in (broken, broken_download):
        assert result["error"] == "ModelFolderError", result
        assert BROKEN in result["message"] and hub.commit(BROKEN) in result["message"]
        assert "missing file tokenizer.json" in result["message"]
        assert f"keeps its weights in {DATA}, which is missing" in result["message"]
    assert bad_revision["error"] == "ModelNotAvailableError"
    assert "no revision 'no-such-branch'" in bad_revision["message"]
    assert bad_repo["error"] == "ModelNotAvailableError"
    assert "has no repo antflydb/no-such-model" in bad_repo["message"]
    assert "clipclap download antflydb/no-such-model" in bad_repo["message"]


@pytest.mark.server
def test_dropped_connection_retried_in_the_same_run(
    hub: StandinHub, hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The first GET of the external weights is cut mid-file; huggingface_hub retries it."""
    hub.add_fault(DATA, drop_after=1_000_000, times=1, repo_id=REPO)
    mark = len(hub.requests)
    run = _run(hub, tmp_path, [{"model": REPO}])
    np.testing.assert_array_equal(_vector(run.results[0]), vectors["main"])
    gets = hub.file_gets(DATA, since=mark)
    assert [g.dropped for g in gets] == [True, False]
    assert "Trying to resume download" in run.stderr
    snapshot = _storage(tmp_path) / "snapshots" / hub.commit(REPO)
    assert _same_files(snapshot, hub_models.main, [DATA]) == []
    assert _partials(tmp_path) == []


@pytest.mark.server
def test_large_file_resumes_with_range(hub: StandinHub, hub_models: Models, tmp_path: Path) -> None:
    """A 12 MiB file cut after 11 MiB resumes from its first whole 10 MiB with a Range request."""
    hub.add_fault(BIG_FILE, drop_after=11 * MIB, times=1, repo_id=BIG)
    mark = len(hub.requests)
    run = _run(hub, tmp_path, [{"download": True, "model": BIG, "kwargs": {"progress": False}}])
    assert _ok(run.results[0])["files"][BIG_FILE] == 12 * MIB
    assert "Fetching" not in run.stderr  # progress=False
    gets = hub.file_gets(BIG_FILE, since=mark)
    assert [(g.dropped, g.range) for g in gets] == [(True, None), (False, f"bytes={10 * MIB}-")]
    got = _storage(tmp_path, BIG) / "snapshots" / hub.commit(BIG) / BIG_FILE
    assert filecmp.cmp(got, hub_models.big_file, shallow=False)
    assert _partials(tmp_path) == []


@pytest.mark.server
def test_failed_download_then_fresh_run(
    hub: StandinHub, hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Every attempt at the weights is cut: a clear error, no partial file; a new run finishes.

    The second run fetches only what the first did not complete, and removes partial files
    that a killed process left behind (older than an hour) but not a live download's.
    """
    hub.add_fault(DATA, drop_after=500_000, times=None, repo_id=REPO)
    failed = _run(hub, tmp_path, [{"model": REPO}]).results[0]
    assert failed["error"] == "ModelNotAvailableError", failed
    assert f"downloading {REPO} (commit {hub.commit(REPO)}) failed" in failed["message"]
    assert f"clipclap download {REPO}" in failed["message"]
    snapshot = _storage(tmp_path) / "snapshots" / hub.commit(REPO)
    source = _source_files(hub_models.main)
    missing = sorted(n for n in source if not (snapshot / n).exists())
    assert DATA in missing
    assert _partials(tmp_path) == []
    assert not (_storage(tmp_path) / "refs" / "main").exists()  # main not pointed at a partial

    blobs = _storage(tmp_path) / "blobs"
    stale, live = blobs / "dead.1234abcd.incomplete", blobs / "live.5678abcd.incomplete"
    stale.write_bytes(b"x" * 1000)
    live.write_bytes(b"y" * 1000)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    hub.clear_faults()
    mark = len(hub.requests)
    run = _run(hub, tmp_path, [{"model": REPO}])
    np.testing.assert_array_equal(_vector(run.results[0]), vectors["main"])
    fetched = sorted(
        r.path.rsplit("/", 1)[1]
        for r in hub.requests_since(mark)
        if r.method == "GET" and "/resolve/" in r.path
    )
    assert fetched == missing
    assert _same_files(snapshot, hub_models.main, list(source)) == []
    assert not stale.exists() and live.exists()


@pytest.mark.server
def test_offline_after_an_interrupted_download_says_so(hub: StandinHub, tmp_path: Path) -> None:
    """An interrupted first download leaves no usable revision: offline, the error says the
    download was interrupted and which files are missing, by branch and by pinned commit."""
    commit = hub.commit(REPO)
    hub.add_fault(DATA, drop_after=500_000, times=None, repo_id=REPO)
    steps = [{"model": REPO, "embed": False}, {"model": REPO, "kwargs": {"revision": commit}}]
    failed = _run(hub, tmp_path, steps).results
    assert [r["error"] for r in failed] == ["ModelNotAvailableError"] * 2, failed
    snapshot = _storage(tmp_path) / "snapshots" / commit
    assert (snapshot / "tokenizer.json").is_file() and not (snapshot / DATA).exists()

    offline = _run(hub, tmp_path, steps, env={"HF_HUB_OFFLINE": "1"})
    by_branch, by_commit = offline.results
    assert by_branch["error"] == by_commit["error"] == "ModelNotAvailableError"
    assert (
        f"The model {REPO} is not in the Hugging Face cache ({tmp_path / 'hub'}): an earlier "
        f"download was interrupted (commit {commit}: " in by_branch["message"]
    ), by_branch["message"]
    assert (
        f"The cached copy of {REPO} (revision {commit}) in {tmp_path / 'hub'} is incomplete "
        "(an earlier download was interrupted): " in by_commit["message"]
    ), by_commit["message"]
    for result in offline.results:
        assert "file(s) are missing (" in result["message"]
        assert f"`clipclap download {REPO}" in result["message"]
    assert offline.any_requests == 0

    # a download killed outright leaves partial files behind: those say it too
    shutil.rmtree(snapshot)
    (_storage(tmp_path) / "blobs" / "abc.1234.incomplete").write_bytes(b"x")
    killed = _run(hub, tmp_path, steps[:1], env={"HF_HUB_OFFLINE": "1"}).results[0]
    assert (
        "an earlier download was interrupted (its partial files are in the cache)"
        in (killed["message"])
    )


@pytest.mark.server
def test_clipclap_model_env_var(
    hub: StandinHub, hub_models: Models, vectors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """$CLIPCLAP_MODEL names the default model: a repo id or a folder; an explicit model wins."""
    run = _run(
        hub,
        tmp_path,
        [{"model": None}, {"model": REPO, "embed": False}],
        env={"CLIPCLAP_MODEL": ALT},
    )
    by_env, explicit = run.results
    assert by_env["commit"] == hub.commit(ALT)
    np.testing.assert_array_equal(_vector(by_env), vectors["v2"])
    assert explicit["commit"] == hub.commit(REPO)

    folder = _run(
        hub, tmp_path, [{"model": None}], env={"CLIPCLAP_MODEL": str(hub_models.main)}
    ).results[0]
    assert Path(folder["folder"]) == hub_models.main.resolve()
    assert folder["commit"] is None
    np.testing.assert_array_equal(_vector(folder), vectors["main"])


# -- in-process, no server ----------------------------------------------------------------------
def test_local_names(hub_models: Models, tmp_path: Path) -> None:
    """Folders win over repo ids; a Path is always a folder; junk names get a clear error."""
    assert is_repo_id("antflydb/clipclap") and not is_repo_id("./clipclap") and not is_repo_id("x")
    assert resolve_model(hub_models.main).revision is None
    with pytest.raises(ModelFolderError, match="does not exist"):
        resolve_model(tmp_path / "antflydb" / "clipclap")  # a Path never goes to the Hub
    with pytest.raises(ModelFolderError, match="not a Hub repo id"):
        resolve_model("no-such-folder")
    result = DownloadResult(REPO, "main", "0" * 40, tmp_path, (ModelFile("a", 3),), False)
    folder, commit = result
    assert (folder, commit, result.total_size) == (tmp_path, "0" * 40, 3)


def test_missing_files_keep_huggingface_hubs_whole_list() -> None:
    from clipclap_integrations.runtime.hub_cache import missing_files

    long = RuntimeError(
        "Snapshot incomplete: 5 file(s) are missing (a.onnx, b.onnx, c.onnx, ... (2 more)). "
        "Run again with network access."
    )
    assert missing_files(long) == "5 file(s) are missing (a.onnx, b.onnx, c.onnx, ... (2 more))"
    short = RuntimeError("1 file(s) is missing (tokenizer.json); more text")
    assert missing_files(short) == "1 file(s) is missing (tokenizer.json)"
