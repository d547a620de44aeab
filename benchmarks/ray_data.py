"""Ray Data benchmark: the same folder through ``clipclap index`` and through Ray.

    python -m benchmarks ray [--files 400] [--actors 2] [--threads 1] [--cpus N]

On the indexing benchmark's mixed folder (``benchmarks/indexing.py``) with the tiny model,
times, each in a fresh process from start to exit: ``clipclap index`` (local engine), and a
script that starts a local Ray (``--cpus``, default all cores) and runs ``read_media``,
``embed_dataset`` (``--actors`` x ``--threads``) and ``write_chroma``. Prints both times, the
ratio and whether the records are the same (ids). Ray pays across nodes and GPUs; on one
machine this shows what it costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.indexing import REPO, TINY, mixed_folder, run_index

RAY_SCRIPT = """
import json, sys, tempfile
import chromadb, ray
from clipclap_integrations.ray import embed_dataset, read_media, write_chroma
folder, model, db, actors, threads, cpus = sys.argv[1:7]
ray.init(num_cpus=int(cpus), include_dashboard=False, log_to_driver=False,
         _temp_dir=tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
ds = embed_dataset(read_media(folder, model), model, actors=int(actors), threads=int(threads))
collection = chromadb.PersistentClient(db).get_or_create_collection("clipclap")
report = write_chroma(ds, collection)
print(json.dumps({"written": report.written, "failed": len(report.failed),
                  "ids": sorted(collection.get(include=[])["ids"])}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks ray", description=__doc__)
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache")
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = p.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    folder = mixed_folder(args.cache, args.files)
    with tempfile.TemporaryDirectory(prefix="clipclap-bench-") as tmp:
        index_s, summary = run_index(folder, TINY, Path(tmp) / "local")
        import chromadb

        local = chromadb.PersistentClient(str(Path(tmp) / "local")).get_collection("clipclap")
        local_ids = sorted(local.get(include=[])["ids"])
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, "-c", RAY_SCRIPT, str(folder), str(TINY), str(Path(tmp) / "ray")]
        cmd += [str(args.actors), str(args.threads), str(args.cpus)]
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        ray_s = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"the Ray run failed:\n{done.stderr[-3000:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"folder: {folder} ({args.files} files, {summary['records_written']} records)")
    print(f"clipclap index (local engine): {index_s:6.2f} s")
    print(
        f"Ray ({args.cpus} CPUs, {args.actors} actors x {args.threads} threads): {ray_s:6.2f} s "
        f"({out['written']} records, {out['failed']} not written)"
    )
    print(f"ratio index/ray: {index_s / ray_s:.2f}; same ids: {out['ids'] == local_ids}")
    return 0
