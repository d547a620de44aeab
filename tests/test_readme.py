"""Every snippet in README.md runs, as written, with the tiny model standing in for the Hub's."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
SETUP = (
    "python3 -m venv",
    ". .venv/bin/activate",
    "pip install",
    "ruff check",
    "ruff format --check",
    "python -m pytest",
    "python -m benchmarks",
)  # the benchmark builds an 880 MB model: run by hand, not here

pytest.importorskip("chromadb")
pytest.importorskip("llama_index.core")


def blocks(language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall(README) if lang == language]


def marked_command(marker: str) -> str:
    after = README.split(f"<!-- {marker} -->", 1)[1]
    return BLOCK.search(after).group(2).strip()  # type: ignore[union-attr]


def cli_commands(line: str) -> list[str]:
    """The non-setup commands of a shell line, ``clipclap`` run through this interpreter."""
    out = []
    for part in line.split(" && "):
        part = part.split("  #", 1)[0].strip()
        if not part or part.startswith("#") or part.startswith(SETUP):
            continue
        assert part.startswith("clipclap "), part
        out.append(
            shlex.join([sys.executable, "-m", "clipclap_integrations"]) + part[len("clipclap") :]
        )
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that looks like the repo to the snippets: examples/ is there."""
    work = tmp_path_factory.mktemp("readme")
    (work / "examples").symlink_to(ROOT / "examples")
    return work


def env_with(model: Path) -> dict[str, str]:
    return {**os.environ, "CLIPCLAP_MODEL": str(model), "HF_HUB_OFFLINE": "1"}


def test_the_readme_has_its_two_commands() -> None:
    assert "clipclap index examples/media" in marked_command("main-command")
    assert "pytest" in marked_command("test-command")
    assert README.index("<!-- main-command -->") < 2000  # near the top


def test_python_snippets_run(workdir: Path, tiny_model_dir: Path) -> None:
    snippets = blocks("python")
    assert len(snippets) >= 6
    for number, code in enumerate(snippets, 1):
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=workdir,
            env=env_with(tiny_model_dir),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"README snippet {number} failed:\n{code}\n{done.stderr}"
        if "ClipClapInputError" in code:
            assert "input 1 ('missing.png'): no such file" in done.stdout


def test_shell_snippets_run(workdir: Path, tiny_model_dir: Path) -> None:
    lines = [line for code in blocks("bash") for line in code.splitlines()]
    commands = [c for line in lines for c in cli_commands(line)]
    commands = [c for c in commands if " download" not in c]  # needs a Hub: see test_hub.py
    assert any(" index " in c for c in commands) and any(" search " in c for c in commands)
    for command in commands:
        done = subprocess.run(
            command,
            shell=True,
            cwd=workdir,
            env=env_with(tiny_model_dir),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"


@pytest.mark.server
def test_main_command_downloads_the_default_model_from_a_hub(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The README's main job, as a new user runs it: default model, fetched from the Hub."""
    from clipclap_integrations.testing.standin_hub import StandinHub

    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CLIPCLAP_MODEL", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    with StandinHub() as hub:
        hub.add_repo("antflydb/clipclap", tiny_model_dir)
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"))
        outputs = []
        for command in cli_commands(marked_command("main-command")):
            done = subprocess.run(
                command, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, f"{command}\n{done.stderr}"
            outputs.append(done.stdout)
        download = subprocess.run(
            [sys.executable, "-m", "clipclap_integrations", "download"],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert download.returncode == 0, download.stderr
    assert "added" in outputs[0] and "0 failed" in outputs[0]
    assert outputs[1].splitlines()[0].split()[:3] == ["rank", "score", "modality"]
    assert len(outputs[1].splitlines()) == 1 + 10  # header and the default 10 results
    assert all("image" in line for line in outputs[2].splitlines()[1:])
    assert (tmp_path / "hf-home" / "hub" / "models--antflydb--clipclap").is_dir()
