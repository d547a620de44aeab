"""CLIPCLAP performance benchmark: ours vs the model's limit and vs the peers.

    python -m benchmarks --cache benchmarks/cache          # from the repository root
    python benchmarks/run.py --cache benchmarks/cache      # the same

Builds (once) a full-size synthetic CLIPCLAP and deterministic inputs into the cache folder,
then, per modality, starts one process per contender and has them run repetitions in turn
(never two at once), and finally measures memory, a 10,000-embedding soak and cold start in
fresh processes. Prints the tables and writes them as JSON into ``--results``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.contenders import (
    MODALITIES,
    OPTIONS,
    Workload,
    contenders_for,
    workloads,
)
from benchmarks.data import BenchInputs, ensure_inputs, ensure_model
from benchmarks.probes import COLD_START_CODE

REPO = Path(__file__).resolve().parent.parent
CONTENDERS = ("limit", "ours", "torch", "plain", *OPTIONS)  # every name make_contender knows
DEFAULT_CONTENDERS = CONTENDERS
PEERS = ("limit", "torch", "plain")


# --------------------------------------------------------------------------- processes


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "true")
    return env


def _reap(proc: subprocess.Popen[Any]) -> float:
    """Wait for ``proc``; return its peak RSS in MB as the kernel accounted it (wait4)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024  # KiB on Linux


def _peak(wait4_mb: float, hwm_mb: Any) -> float:
    """A child's peak RSS: its own ``VmHWM`` when it reported one, else wait4's figure.

    wait4's ``ru_maxrss`` also counts the address space the child had before ``exec``, a copy
    of this runner's (Linux keeps its high-water mark across exec), so once the runner has
    grown (it generated the inputs in this run) every child would report at least the
    runner's size. ``VmHWM`` is the high-water mark of the child's own address space."""
    if isinstance(hwm_mb, int | float) and hwm_mb == hwm_mb and hwm_mb > 0:
        return float(hwm_mb)
    return wait4_mb


class WorkerProcess:
    """A ``benchmarks.worker`` subprocess speaking JSON lines."""

    def __init__(self, contender: str, modality: str, log: Path) -> None:
        self.contender = contender
        self.modality = modality
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed in quit()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=_env(),
            cwd=str(REPO),
        )
        self.peak_rss_mb: float | None = None
        self.error: str | None = None

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.contender}/{self.modality} worker died (see its log)")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"{self.contender}/{self.modality}: {reply.get('error')}")
        return reply

    def quit(self) -> None:
        reply: dict[str, Any] = {}
        with contextlib.suppress(RuntimeError, BrokenPipeError, OSError):
            reply = self.ask(op="quit")
        if self.proc.stdin:
            self.proc.stdin.close()
        self.peak_rss_mb = _peak(_reap(self.proc), reply.get("hwm_mb"))
        self._log.close()


def _probe(args: Sequence[str], log: Path) -> tuple[dict[str, Any], float]:
    """Run ``python -m benchmarks.probes ARGS``; its JSON result and its peak RSS (MB)."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.probes", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            env=_env(),
            cwd=str(REPO),
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        peak = _reap(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"probe {args[0]} failed (exit {proc.returncode}); see {log}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result, _peak(peak, result.get("hwm_mb"))


# --------------------------------------------------------------------------- throughput


@dataclass
class Row:
    workload: Workload
    items: int = 0
    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    warmup: dict[str, float] = field(default_factory=dict)

    def median_s(self, contender: str) -> float | None:
        times = self.seconds.get(contender)
        return statistics.median(times) if times else None

    def rate(self, contender: str) -> float | None:
        m = self.median_s(contender)
        return self.items / m if m else None

    def cpu_ms_per_item(self, contender: str) -> float | None:
        """Median process CPU time (all threads) per item, in ms."""
        cpu = self.cpu.get(contender)
        return 1000 * statistics.median(cpu) / self.items if cpu and self.items else None

    def cores_busy(self, contender: str) -> float | None:
        """Median of CPU time / wall time: how many cores the contender kept busy."""
        cpu, wall = self.cpu.get(contender), self.seconds.get(contender)
        if not cpu or not wall:
            return None
        return statistics.median(c / w for c, w in zip(cpu, wall, strict=False))

    def ratio(self, a: str, b: str) -> float | None:
        """Median over repetitions of rate(a)/rate(b), pairing the interleaved repetitions."""
        ta, tb = self.seconds.get(a), self.seconds.get(b)
        if not ta or not tb:
            return None
        return statistics.median(y / x for x, y in zip(ta, tb, strict=False))


def measure_modality(
    modality: str,
    names: list[str],
    inputs: BenchInputs,
    args: argparse.Namespace,
    results: Path,
) -> tuple[list[Row], dict[str, float]]:
    workers: list[WorkerProcess] = []
    for name in contenders_for(modality, names):
        w = WorkerProcess(name, modality, results / "logs" / f"{name}-{modality}.log")
        try:
            reply = w.ask(
                op="setup",
                contender=name,
                modality=modality,
                cache=str(args.cache),
                model=str(inputs.model),
                quick=args.quick,
            )
            _say(f"  {name:<14} ready in {reply['setup_s']:.1f} s")
            workers.append(w)
        except RuntimeError as exc:
            _say(f"  {name:<14} skipped: {exc}")
            w.quit()
    rows = []
    for workload in workloads(modality, args.quick):
        row = Row(workload)
        active = []
        for w in workers:
            if not _applies(w.contender, workload):
                continue
            vec = results / "vectors" / f"{workload.key.replace('/', '_')}__{w.contender}.npy"
            try:
                reply = w.ask(
                    op="prepare", set=workload.set, batch=workload.batch, vectors=str(vec)
                )
            except RuntimeError as exc:
                _say(f"  {workload.key} {w.contender}: {exc}")
                continue
            row.items = int(reply["items"])
            row.warmup[w.contender] = reply["warmup_s"]
            active.append(w)
        for rep in range(args.reps):
            shift = rep % len(active) if active else 0
            for w in active[shift:] + active[:shift]:  # rotate who goes first
                time.sleep(args.settle)
                reply = w.ask(op="run")
                row.seconds.setdefault(w.contender, []).append(reply["seconds"])
                row.cpu.setdefault(w.contender, []).append(reply["cpu_s"])
        rows.append(row)
        _say("  " + _row_summary(row))
    peaks = {}
    for w in workers:
        w.quit()
        if w.peak_rss_mb is not None:
            peaks[w.contender] = round(w.peak_rss_mb, 1)
    return rows, peaks


def _applies(contender: str, workload: Workload) -> bool:
    # fast_jpeg only changes JPEG decoding; it is measured where it matters most.
    return not (contender == "ours+fastjpeg" and workload.set not in ("img-12mp", "img-1280"))


def _row_summary(row: Row) -> str:
    parts = [f"{row.workload.key} ({row.items} items):"]
    for c in row.seconds:
        rate = row.rate(c)
        parts.append(f"{c} {rate:.2f}/s" if rate else f"{c} -")
    lim = row.ratio("ours", "limit")
    if lim:
        parts.append(f"ours/limit {lim:.3f}")
    return " ".join(parts)


# --------------------------------------------------------------------------- parity


def parity(results: Path, rows: list[Row]) -> list[dict[str, Any]]:
    """Every contender's vectors against ours (default, fp32) on the same workload."""
    out = []
    for row in rows:
        key = row.workload.key.replace("/", "_")
        ours_path = results / "vectors" / f"{key}__ours.npy"
        if not ours_path.exists():
            continue
        ours = np.load(ours_path).astype(np.float64)
        for c in row.seconds:
            if c == "ours":
                continue
            path = results / "vectors" / f"{key}__{c}.npy"
            if not path.exists():
                continue
            other = np.load(path).astype(np.float64)
            if other.shape != ours.shape:
                continue
            cos = np.sum(ours * other, axis=1) / (
                np.linalg.norm(ours, axis=1) * np.linalg.norm(other, axis=1)
            )
            out.append(
                {
                    "workload": row.workload.key,
                    "contender": c,
                    "max_abs_diff": float(np.max(np.abs(ours - other))),
                    "min_cosine": float(np.min(cos)),
                    "mean_cosine": float(np.mean(cos)),
                }
            )
    return out


# --------------------------------------------------------------------------- cold start


def cold_start(model: Path, runs: int) -> dict[str, Any]:
    """Seconds from spawning ``python`` to the first text vector, measured outside the process."""
    times, peaks = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", COLD_START_CODE, str(model)],
            stdout=subprocess.PIPE,
            env=_env(),
            cwd=str(REPO),
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - t0
        hwm = proc.stdout.read().split()  # b"VmHWM: <kB> kB"
        proc.stdout.close()
        own = int(hwm[1]) / 1024 if len(hwm) >= 2 and hwm[1].isdigit() else None
        peaks.append(_peak(_reap(proc), own))
        if line.strip() != b"vector":
            raise RuntimeError("the cold-start process did not produce a vector")
        times.append(elapsed)
        time.sleep(0.5)
    return {
        "runs": [round(t, 3) for t in times],
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "peak_rss_mb": round(statistics.median(peaks), 1),
        "note": "model files in the OS page cache (a previous run read them)",
    }


# --------------------------------------------------------------------------- report


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _say(text: str) -> None:
    print(text, flush=True)


def render(report: dict[str, Any], rows: list[Row], names: list[str]) -> str:
    lines = []
    reps = report["meta"]["reps"]
    lines.append(
        f"Throughput, items/s (median of {reps} interleaved repetitions; a ratio is the median "
        "of the per-repetition ratios)"
    )
    peers = [c for c in PEERS if c in names]
    head = f"{'workload':<24}{'items':>6}{'ours':>9}"
    for p in peers:
        head += f"{p:>9}{'ours/' + p:>12}"
    lines.append(head)
    for row in rows:
        line = f"{row.workload.key:<24}{row.items:>6}{_fmt(row.rate('ours')):>9}"
        for p in peers:
            line += f"{_fmt(row.rate(p)):>9}{_fmt(row.ratio('ours', p), '.3f'):>12}"
        lines.append(line)
    if any("limit" in r.cpu and "ours" in r.cpu for r in rows):
        lines.append("")
        lines.append(
            "CPU cost, ms of CPU (all threads) per item, and cores kept busy; 'bound' is "
            "limit CPU / ours CPU,"
        )
        lines.append(
            "the best ours/limit possible when the model alone keeps every core busy "
            "(preprocessing cannot hide then)"
        )
        lines.append(
            f"{'workload':<24}{'limit':>9}{'busy':>7}{'ours':>9}{'busy':>7}{'extra':>9}{'bound':>8}"
        )
        for row in rows:
            lim, our = row.cpu_ms_per_item("limit"), row.cpu_ms_per_item("ours")
            if lim is None or our is None:
                continue
            lines.append(
                f"{row.workload.key:<24}{lim:>9.1f}{_fmt(row.cores_busy('limit')):>7}"
                f"{our:>9.1f}{_fmt(row.cores_busy('ours')):>7}{our - lim:>9.1f}"
                f"{lim / our:>8.3f}"
            )
    options = [c for c in names if c in OPTIONS]
    if options:
        lines.append("")
        lines.append("Opt-in options, items/s and speed-up over ours (parity vs ours fp32 below)")
        head = f"{'workload':<24}{'ours':>9}"
        for o in options:
            head += f"{o:>15}{'x':>7}"
        lines.append(head)
        for row in rows:
            if not any(o in row.seconds for o in options):
                continue
            line = f"{row.workload.key:<24}{_fmt(row.rate('ours')):>9}"
            for o in options:
                line += f"{_fmt(row.rate(o)):>15}{_fmt(row.ratio(o, 'ours'), '.2f'):>7}"
            lines.append(line)
    if report.get("parity"):
        lines.append("")
        lines.append("Parity vs ours (fp32, default options), batch-32 workloads")
        lines.append(f"{'workload':<24}{'contender':<15}{'max |diff|':>12}{'min cos':>12}")
        for p in report["parity"]:
            if not p["workload"].endswith("/b32"):
                continue
            lines.append(
                f"{p['workload']:<24}{p['contender']:<15}{p['max_abs_diff']:>12.2e}"
                f"{p['min_cosine']:>12.6f}"
            )
    mem = report.get("memory")
    if mem:
        lines.append("")
        lines.append("Peak RSS (MB, each process's own high-water mark, VmHWM)")
        for k, v in mem.items():
            lines.append(f"  ours, {k:<34}{v['peak_rss_mb']:>8.0f}")
        for k, v in report.get("peak_rss_workers", {}).items():
            lines.append(f"  worker {k:<33}{v:>8.0f}")
    for s in report.get("soak", []):
        lines.append(
            f"Soak {s['modality']}: {s['embeddings']:,} embeddings in {s['seconds']} s; RSS after "
            f"1,000 {s['rss_after_1000_mb']:.0f} MB, at the end {s['rss_end_mb']:.0f} MB "
            f"(growth {s['growth_after_1000_mb']:+.0f} MB, over the last half "
            f"{s['growth_second_half_mb']:+.0f} MB)"
        )
    cold = report.get("cold_start")
    if cold:
        lines.append(
            f"Cold start to the first text vector: median {cold['median_s']:.2f} s (min "
            f"{cold['min_s']:.2f} s, runs {cold['runs']}), peak RSS {cold['peak_rss_mb']:.0f} MB"
        )
    bd = report.get("breakdown")
    if bd:
        lines.append("")
        lines.append("Where the image time goes (ms per image, one thread)")
        lines.append(
            f"{'file':<26}{'decode':>8}{'exif':>7}{'rgb':>6}{'resize':>8}{'tensor':>8}"
            f"{'total':>8}{'fastjpeg':>10}{'px diff':>9}"
        )
        for r in bd["images"]:
            lines.append(
                f"{r['file'][:25]:<26}{r['decode_ms']:>8.1f}{r['exif_transpose_ms']:>7.1f}"
                f"{r['to_rgb_ms']:>6.1f}{r['resize_ms']:>8.1f}{r['crop_normalize_ms']:>8.1f}"
                f"{r['total_ms']:>8.1f}{_fmt(r.get('fast_jpeg_total_ms'), '.1f'):>10}"
                f"{_fmt(r.get('fast_jpeg_pixel_max_abs'), '.3f'):>9}"
            )
        lines.append("Where the audio time goes (ms per clip, one thread)")
        for r in bd["audio"]:
            lines.append(
                f"  {r['file']:<30} {r['seconds']:>6.2f} s, {r['windows']} windows: decode "
                f"{r['decode_ms']:.1f}, mono {r['to_mono_ms']:.1f}, resample {r['resample_ms']:.1f}"
                f", features {r['features_ms']:.1f}, total {r['total_ms']:.1f}"
            )
        lines.append(
            f"Text: tokenizing costs {bd['text']['tokenize_ms_per_caption']:.3f} ms per caption"
        )
    if report.get("targets"):
        lines.append("")
        lines.append("Targets (batch 32)")
        for t in report["targets"]:
            mark = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
            value = "-" if t["value"] is None else f"{t['value']:.4g}"
            lines.append(f"  {t['target']:<62}{t['goal']:>9}{value:>9}  {mark}")
    return "\n".join(lines)


# (ratio, workload, at least) from the issue; memory and cold start below.
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("ours/limit", "text/captions/b32", 0.90),
    ("ours/limit", "image/img-640/b32", 0.90),
    ("ours/limit", "image/img-1280/b32", 0.90),
    ("ours/limit", "audio/clips-3-30s/b32", 0.85),
    ("ours/torch", "text/captions/b32", 1.3),
    ("ours/torch", "image/img-640/b32", 1.5),
    ("ours/torch", "image/img-1280/b32", 1.5),
    ("ours/torch", "image/img-12mp/b32", 1.5),
    ("ours/torch", "audio/clips-3-30s/b32", 1.5),
)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and whether it is met."""
    out = []
    rows = {t["workload"]: t for t in report.get("throughput", [])}
    for ratio, workload, goal in TARGETS:
        value = rows.get(workload, {}).get("ratios", {}).get(ratio)
        out.append(
            {
                "target": f"{ratio} {workload}",
                "goal": f">= {goal}",
                "value": value,
                "met": None if value is None else value >= goal,
            }
        )
    mem = report.get("memory", {})
    for label, limit in (("text only", 500.0), ("all three modalities", 2500.0)):
        if label in mem:
            value = mem[label]["peak_rss_mb"]
            out.append(
                {
                    "target": f"peak RSS, {label} (MB)",
                    "goal": f"< {limit:.0f}",
                    "value": value,
                    "met": value < limit,
                }
            )
    for soak in report.get("soak", []):
        value = soak["growth_second_half_mb"]
        out.append(
            {
                "target": f"RSS growth over the last half of the {soak['modality']} soak (MB)",
                "goal": "< 10",
                "value": value,
                "met": value < 10,
            }
        )
    cold = report.get("cold_start")
    if cold:
        out.append(
            {
                "target": "cold start to the first text vector (s)",
                "goal": "< 1.5",
                "value": cold["median_s"],
                "met": cold["median_s"] < 1.5,
            }
        )
    return out


def _meta(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    import onnxruntime
    import PIL

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "reps": args.reps,
        "quick": args.quick,
        "contenders": names,
        "loadavg_start": os.getloadavg(),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "cache")
    p.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--modalities", nargs="+", choices=MODALITIES, default=list(MODALITIES))
    p.add_argument(
        "--contenders",
        nargs="+",
        choices=CONTENDERS,  # a typo fails here, not after the model and inputs are built
        default=list(DEFAULT_CONTENDERS),
        metavar="NAME",
        help=f"who to measure, any of: {', '.join(CONTENDERS)} (default: all)",
    )
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per row (default 5)")
    p.add_argument(
        "--settle",
        type=float,
        default=0.2,
        help="pause before each timed repetition, in seconds (default 0.2)",
    )
    p.add_argument("--quick", action="store_true", help="fewer items per row (a smoke run)")
    p.add_argument("--soak", type=int, default=10_000, help="text embeddings in the soak (0: off)")
    p.add_argument("--soak-media", action="store_true", help="also soak images and audio")
    p.add_argument("--cold-runs", type=int, default=5)
    p.add_argument("--no-throughput", action="store_true")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-breakdown", action="store_true")
    p.add_argument(
        "--render",
        type=Path,
        metavar="REPORT_JSON",
        help="print the tables of a saved report.json again (nothing is measured)",
    )
    return p


def rows_from_report(report: dict[str, Any]) -> list[Row]:
    """The throughput rows of a saved report."""
    rows = []
    for t in report.get("throughput", []):
        row = Row(Workload(t["modality"], t["set"], int(t["batch"])), items=int(t["items"]))
        row.seconds = {k: list(v) for k, v in t["seconds"].items()}
        row.cpu = {k: list(v) for k, v in t.get("cpu_seconds", {}).items()}
        row.warmup = dict(t.get("warmup_seconds", {}))
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.render:
        saved = json.loads(args.render.read_text(encoding="utf-8"))
        saved["targets"] = targets(saved)
        print(render(saved, rows_from_report(saved), saved["meta"]["contenders"]))
        return 0
    args.cache = args.cache.resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = args.results.resolve() / stamp
    results.mkdir(parents=True, exist_ok=True)
    model = ensure_model(args.cache)
    inputs = ensure_inputs(args.cache, model, quick=args.quick)
    names = list(dict.fromkeys(args.contenders))
    report: dict[str, Any] = {"meta": _meta(args, names), "model": str(model)}
    all_rows: list[Row] = []
    worker_peaks: dict[str, float] = {}
    if not args.no_throughput:
        for modality in args.modalities:
            _say(f"{modality}:")
            rows, peaks = measure_modality(modality, names, inputs, args, results)
            all_rows += rows
            worker_peaks.update({f"{c}/{modality}": v for c, v in peaks.items()})
        report["throughput"] = [
            {
                "workload": r.workload.key,
                "modality": r.workload.modality,
                "set": r.workload.set,
                "batch": r.workload.batch,
                "items": r.items,
                "seconds": r.seconds,
                "cpu_seconds": r.cpu,
                "warmup_seconds": r.warmup,
                "items_per_s": {c: r.rate(c) for c in r.seconds},
                "ratios": {
                    **{f"ours/{p}": r.ratio("ours", p) for p in PEERS if p in r.seconds},
                    **{f"{o}/ours": r.ratio(o, "ours") for o in OPTIONS if o in r.seconds},
                },
            }
            for r in all_rows
        ]
        report["peak_rss_workers"] = worker_peaks
        report["parity"] = parity(results, all_rows)
    logs = results / "logs"
    logs.mkdir(exist_ok=True)
    if not args.no_memory:
        _say("memory:")
        memory = {}
        for modality in (*args.modalities, "all"):
            data, peak = _probe(
                ["memory", "--cache", str(args.cache), "--modality", modality],
                logs / "memory.log",
            )
            label = {"all": "all three modalities"}.get(modality, f"{modality} only")
            memory[label] = {"peak_rss_mb": round(peak, 1), **data}
            _say(f"  {label}: peak RSS {peak:.0f} MB")
        report["memory"] = memory
        soaks = []
        plan = [("text", args.soak)] if args.soak else []
        if args.soak_media:
            plan += [("image", 2000), ("audio", 300)]
        for modality, total in plan:
            data, peak = _probe(
                ["soak", "--cache", str(args.cache), "--modality", modality, "--total", str(total)],
                logs / "soak.log",
            )
            data["peak_rss_mb"] = round(peak, 1)
            soaks.append(data)
            _say(f"  soak {modality}: growth {data['growth_after_1000_mb']:+.1f} MB")
        report["soak"] = soaks
        if args.cold_runs > 0:
            report["cold_start"] = cold_start(model, args.cold_runs)
            _say(f"  cold start: {report['cold_start']['median_s']:.2f} s")
    if not args.no_breakdown:
        report["breakdown"], _ = _probe(
            ["breakdown", "--cache", str(args.cache)], logs / "breakdown.log"
        )
    report["meta"]["loadavg_end"] = os.getloadavg()
    report["targets"] = targets(report)
    table = render(report, all_rows, names)
    print()
    print(table)
    (results / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (results / "report.txt").write_text(table + "\n", encoding="utf-8")
    latest = args.results.resolve() / "latest.json"
    latest.write_text(json.dumps(report, indent=1), encoding="utf-8")
    _say(f"\nwrote {results / 'report.json'} (and {latest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
