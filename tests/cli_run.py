"""Running the ``clipclap`` command as a user would: a subprocess of this interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def clipclap(
    *args: str,
    model: Path | None,
    cwd: Path,
    check: bool = True,
    expect: int = 0,
    **env_vars: str,
) -> subprocess.CompletedProcess:
    """Run the command; ``model=None``: no $CLIPCLAP_MODEL, and an empty Hugging Face cache.
    ``check``: its exit code must be ``expect`` (1: it ran, but some files failed)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env_vars}
    if model is not None:
        env["CLIPCLAP_MODEL"] = str(model)
    else:
        env.pop("CLIPCLAP_MODEL", None)
        env["HF_HOME"] = str(cwd / "empty-hf-home")
        env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "-m", "clipclap_integrations", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert done.returncode == expect, done.stderr
    return done
