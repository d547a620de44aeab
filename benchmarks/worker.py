"""One contender in its own process, driven step by step over stdin/stdout (JSON lines).

The orchestrator keeps one worker per contender alive for a modality and asks them in turn to
run a repetition, so only one thread pool computes at any moment and every contender sees the
same machine load (other jobs come and go on shared machines: interleaving is what makes the
ratios trustworthy). Commands::

    {"op": "setup", "contender": "ours", "modality": "image", "cache": ..., "quick": false}
    {"op": "prepare", "set": "img-1280", "batch": 32, "vectors": "path.npy"}   # + warm-up
    {"op": "run"}                                                               # one timed rep
    {"op": "quit"}
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.contenders import Contender, Runner, Workload, make_contender, save_vectors
from benchmarks.data import ensure_inputs


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _timed(fn: Runner) -> tuple[Any, float, float]:
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - cpu0


class Worker:
    def __init__(self) -> None:
        self.contender: Contender | None = None
        self.runner: Runner | None = None
        self.items = 0

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "setup":
            cache = Path(cmd["cache"])
            inputs = ensure_inputs(cache, Path(cmd["model"]), quick=bool(cmd["quick"]))
            t0 = time.perf_counter()
            self.contender = make_contender(
                cmd["contender"], inputs, cmd["modality"], bool(cmd["quick"])
            )
            self.contender.setup()
            return {"ok": True, "setup_s": time.perf_counter() - t0, "rss_mb": _rss_mb()}
        if op == "prepare":
            assert self.contender is not None
            workload = Workload(self.contender.modality, cmd["set"], int(cmd["batch"]))
            self.runner = self.contender.prepare(workload)
            vectors, seconds, cpu = _timed(self.runner)  # warm-up: sessions, arenas, caches
            self.items = int(vectors.shape[0])
            if cmd.get("vectors"):
                save_vectors(Path(cmd["vectors"]), vectors)
            return {"ok": True, "warmup_s": seconds, "items": self.items, "rss_mb": _rss_mb()}
        if op == "run":
            assert self.runner is not None
            _, seconds, cpu = _timed(self.runner)
            return {"ok": True, "seconds": seconds, "cpu_s": cpu, "items": self.items}
        if op == "quit":
            return {"ok": True, "rss_mb": _rss_mb(), "hwm_mb": _rss_mb("VmHWM")}
        raise ValueError(f"unknown op {op!r}")


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from libraries go to stderr, never into the protocol
    sys.stdout = sys.stderr
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            reply = worker.handle(cmd)
        except Exception as exc:  # reported to the orchestrator, which decides
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            traceback.print_exc()
        protocol.write(json.dumps(reply) + "\n")
        if cmd.get("op") == "quit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
