"""A Chroma collection built from a Hub model stays tied to the commit that made its vectors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("chromadb")
pytest.importorskip("torch")

from clipclap_integrations.testing import build_model
from clipclap_integrations.testing.standin_hub import StandinHub

REPO = "antflydb/clipclap"


def run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.server
def test_collection_keeps_its_revision_when_main_moves(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    newer = build_model(tmp_path / "seed1", size="tiny", seed=1)
    env = {k: v for k, v in os.environ.items() if k not in ("CLIPCLAP_MODEL", "HF_HUB_OFFLINE")}
    env["HF_HOME"] = str(tmp_path / "hf")
    db = str(tmp_path / "db")
    create = f"""
        import chromadb
        from clipclap_integrations.chroma import ClipClapEmbeddingFunction
        ef = ClipClapEmbeddingFunction({REPO!r})
        col = chromadb.PersistentClient({db!r}).create_collection("docs", embedding_function=ef)
        col.add(ids=["a", "b"], documents=["a dog barking", "rain on a roof"])
        stored = col.configuration_json["embedding_function"]["config"]
        print(stored["revision"], ef.embedder.model_revision)
        """
    with StandinHub() as hub:
        first_commit = hub.add_repo(REPO, tiny_model_dir)
        env["HF_ENDPOINT"] = hub.url
        done = run(create, env)
        assert done.returncode == 0, done.stderr
        stored, used = done.stdout.split()
        assert stored == used == first_commit  # the resolved commit is persisted

    reopen = f"""
        import chromadb, clipclap_integrations.chroma
        from clipclap_integrations.chroma import ClipClapEmbeddingFunction
        client = chromadb.PersistentClient({db!r})
        col = client.get_collection("docs")  # rebuilt from the stored config: pinned commit
        print(col.query(query_texts=["a dog barking"], n_results=1)["ids"][0][0])
        latest = client.get_collection(
            "docs", embedding_function=ClipClapEmbeddingFunction({REPO!r}))
        try:
            latest.query(query_texts=["a dog barking"], n_results=1)
            print("not refused")
        except ValueError as error:
            print("refused:", error)
        anyway = client.get_collection("docs", embedding_function=ClipClapEmbeddingFunction(
            {REPO!r}, allow_revision_change=True))
        print(len(anyway.query(query_texts=["a dog"], n_results=2)["ids"][0]))
        """
    with StandinHub() as hub:  # main has moved on to other weights
        second_commit = hub.add_repo(REPO, newer)
        assert second_commit != first_commit
        env["HF_ENDPOINT"] = hub.url
        done = run(reopen, env)
    assert done.returncode == 0, done.stderr
    top, refusal, count = done.stdout.strip().splitlines()
    assert top == "a"
    assert refusal.startswith("refused:") and first_commit in refusal
    assert "allow_revision_change=True" in refusal
    assert count == "2"
