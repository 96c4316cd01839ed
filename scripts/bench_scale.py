"""An MSD-sized dry run: synthesize N tracks, extract them through a Dask scheduler, pretrain one pass on
every core, build the paper-scale tasks and time one Table 1 experiment; project each stage to the full MSD.

    python scripts/bench_scale.py                      # 50,000 tracks (`make bench-scale`; not in CI)
    python scripts/bench_scale.py --tracks 300         # a try of the whole chain, in minutes
    python scripts/bench_scale.py --scheduler tcp://HOST:8786 --work /shared/bench-scale   # a running cluster

Every stage but the synthesis is the ``beatdbn`` command a user runs, in a process of its own:

1. ``synth``: the corpus (``beatdbn.synth.corpus.generate_corpus`` on every core; not projected: the MSD
   exists already);
2. ``extract --scheduler S`` (``local``: a LocalCluster of one worker per core, or a scheduler address);
3. ``pretrain --workers N --no-plots``: one pass over every track, N = the cores;
4. ``tasks --scale paper`` (genre 20x250, artist 50x100, key 12x250, decade); where the corpus cannot give
   a task at the paper's scale, ``--scale auto`` (the largest balanced scale), said in the report;
5. one Table 1 experiment: the pretrained conv MLP on the key task (the paper's recipe), one learning rate
   for ``--epochs`` epochs (``finetune --recipe paper --lr 0.05``).

For each: wall time, CPU time (this process's children: ``resource.getrusage``), peak memory (the largest
sum of resident memory over the stage's process tree, sampled by psutil every 0.2 s; ``ru_maxrss`` of the
largest single process beside it) and, for the store, bytes per track. Each is projected to the full MSD
(~920,000 tracks less duplicates and held-out tracks, ~4.6e8 beats: the figures ``reproduce`` projects
with), with its basis written beside it. The report goes to ``docs/measurements/scale-<date>.md``
(``--report`` to choose) and ``scale-<date>.json`` beside it. Take figures while holding the machine's
bench lock (``flock /work/notes/bench.lock python scripts/bench_scale.py ...``): the load average is read
at the start and the end and written in the report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEATDBN = [sys.executable, "-m", "beatdbn"]
MSD_TRACKS = 920_000  # the full MSD less ~78,000 duplicates and the held-out tracks (as reproduce projects)
MSD_BEATS = 4.6e8  # beats in one pretraining pass over them
PAPER_EPOCHS, PAPER_RATES = 30, 3  # section 6: 30 epochs, 3 learning rates per conv MLP experiment
PAPER_KEY_TRACKS = 12 * 250  # the key task at the paper's scale
#: bytes a synthetic track takes on disk (MSD .h5 ~270 kB, store ~40 kB, measured on 160 tracks), with room
BYTES_PER_TRACK = 400_000


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


class Peak(threading.Thread):
    """Samples the resident memory summed over a process and everything below it (psutil; none without it)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        while not self.stop.is_set():
            try:
                top = psutil.Process(self.pid)
                total = 0
                for p in [top, *top.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self.stop.wait(0.2)


def stage(name: str, cmd: list, log: Path, env: dict) -> dict:
    """Run ``cmd`` as one stage; its wall and CPU seconds and peak memory. Exits with the stage's log tail
    when it fails."""
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(map(str, cmd))}", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, env=env)
        peak = Peak(proc.pid)
        peak.start()
        rc = proc.wait()
        peak.stop.set()
        peak.join()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"stage": name, "command": " ".join(map(str, cmd)), "rc": rc, "wall_s": round(wall, 2),
              "cpu_s": round(cpu, 2), "peak_tree_rss_mb": round(peak.peak / 2**20, 1),
              "max_single_rss_mb": round(after.ru_maxrss / 1024, 1)}  # Linux: kB; the largest child so far
    print(f"    {wall:.1f} s wall, {cpu:.1f} s CPU, peak {result['peak_tree_rss_mb']:,.0f} MB", flush=True)
    if rc != 0:
        result["log_tail"] = log.read_text(errors="replace")[-2000:]
    return result


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _task_tracks(tasks: Path, name: str) -> int:
    return sum(max(0, len((tasks / name / f"{s}.tsv").read_text().splitlines()) - 1)
               for s in ("train", "valid", "test"))


def _index_bytes(store: Path) -> int:
    """Bytes of the store's index (its metadata table, as a process that opens the store holds it): what grows
    with the corpus in every process that opens the store; the tracks' features are read shard by shard."""
    from beatdbn.store.reader import FeatureStore

    return int(FeatureStore.open(store).metadata.nbytes)


def _epoch_seconds(run: Path) -> float:
    """Seconds per epoch of the timed experiment (its metrics.csv: cumulative seconds at the last epoch)."""
    import csv

    rows = [r for f in run.glob("lr-*/metrics.csv") for r in csv.DictReader(f.open())]
    return float(rows[-1]["seconds"]) / int(rows[-1]["epoch"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=50_000, help="synthetic tracks (default 50,000)")
    ap.add_argument("--work", type=Path, default=ROOT / "demo" / "bench-scale", help="folder for the corpus, store and runs "
                    "(default demo/bench-scale, removed by make clean; with a scheduler address: a path every worker sees)")
    ap.add_argument("--scheduler", default="local", help="'local' (a LocalCluster) or tcp://HOST:PORT")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="extract workers (local) and pretraining processes (default: every core)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the timed experiment (projected to the paper's 30)")
    ap.add_argument("--keep-inputs", action="store_true", help="keep the synthetic .h5 files after extraction")
    ap.add_argument("--report", type=Path, default=None, help="default: docs/measurements/scale-<date>.md")
    ap.add_argument("--corpus", type=Path, default=None,
                    help="MSD-format files synthesized earlier (--synth-only): extract these instead of synthesizing "
                         "(the synthesis is not projected anyway); the folder is kept")
    ap.add_argument("--synth-only", action="store_true",
                    help="only synthesize the corpus into --corpus (so that the timed stages can run later, on an "
                         "idle machine)")
    args = ap.parse_args(argv)
    if args.synth_only:
        if args.corpus is None:
            ap.error("--synth-only needs --corpus DIR (where the corpus goes)")
        from beatdbn.synth.corpus import generate_corpus

        t0 = time.perf_counter()
        generate_corpus(str(args.corpus), args.tracks, seed=0, n_jobs=args.workers)
        print(f"corpus: {args.corpus} ({args.tracks:,} tracks, {time.perf_counter() - t0:,.0f} s); time the stages "
              f"with: python scripts/bench_scale.py --tracks {args.tracks} --corpus {args.corpus}")
        return 0
    if args.corpus is not None and not args.corpus.is_dir():
        ap.error(f"--corpus {args.corpus}: no such folder; make it with --synth-only --corpus {args.corpus}")
    if args.tracks < 100:
        ap.error(f"--tracks {args.tracks}: use 100 or more (the tasks need tracks per class)")
    if args.workers < 1 or args.epochs < 1:
        ap.error("--workers and --epochs: 1 or more")
    work = args.work.resolve()
    if (work / "store").exists() or (work / "msd").exists():
        print(f"error: {work} holds an earlier run (a rerun would resume it and time nothing); remove it or "
              f"use another --work", file=sys.stderr)
        return 1
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    if free < args.tracks * BYTES_PER_TRACK * (0.4 if args.corpus else 1):
        print(f"error: {work}: {free / 1e9:.1f} GB free, {args.tracks:,} tracks need about "
              f"{args.tracks * BYTES_PER_TRACK / 1e9:.1f} GB; use --work on a larger disk or fewer --tracks",
              file=sys.stderr)
        return 1
    date = dt.date.today().isoformat()
    report = args.report or ROOT / "docs" / "measurements" / f"scale-{date}.md"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load_start = _loadavg()
    msd, store, dbn, tasks, run = (work / n for n in ("msd", "store", "dbn", "tasks", "run"))
    stages: list[dict] = []

    def step(name: str, cmd: list) -> dict:
        r = stage(name, cmd, work / f"{name}.log", env)
        stages.append(r)
        if r["rc"] != 0 and name != "tasks-paper":
            print(f"error: stage {name} failed (exit {r['rc']}); its log: {work / (name + '.log')}\n"
                  f"{r.get('log_tail', '')}", file=sys.stderr)
            raise SystemExit(1)
        return r

    if args.corpus is not None:  # synthesized earlier: not timed here
        msd = args.corpus.resolve()
        stages.append({"stage": "synth", "command": f"earlier: --synth-only --corpus {msd}", "rc": 0,
                       "wall_s": float("nan"), "cpu_s": float("nan"), "peak_tree_rss_mb": float("nan")})
    else:
        step("synth", [sys.executable, "-c", "import sys; from beatdbn.synth.corpus import generate_corpus; "
                       f"generate_corpus(sys.argv[1], {args.tracks}, seed=0, n_jobs={args.workers})", msd])
    msd_bytes = du(msd)
    workers = ["--workers", str(args.workers)] if args.scheduler == "local" else []
    extract = step("extract", [*BEATDBN, "extract", msd, "--out", store, "--scheduler", args.scheduler, *workers])
    store_bytes = du(store)
    n_tracks = json.loads((store / "report.json").read_text())["tracks_total"]
    index_bytes = _index_bytes(store)
    if not args.keep_inputs and args.corpus is None:
        shutil.rmtree(msd)
    pretrain = step("pretrain", [*BEATDBN, "pretrain", store, "--out", dbn, "--workers", str(args.workers),
                                 "--no-plots"])
    summary = json.loads((dbn / "pretrain.json").read_text())
    scale = "paper"
    built = step("tasks-paper", [*BEATDBN, "tasks", store, "--out", tasks, "--scale", "paper"])
    if built["rc"] != 0 or not (tasks / "key" / "train.tsv").exists():
        scale = "auto"
        shutil.rmtree(tasks, ignore_errors=True)
        # a try on a few hundred tracks is below auto's 20-tracks-per-class floor: a timing run only needs a split
        floor = [] if n_tracks >= 2_000 else ["--min-per-class", "4"]
        built = step("tasks", [*BEATDBN, "tasks", store, "--out", tasks, "--scale", "auto", *floor])
    key_tracks = _task_tracks(tasks, "key")
    experiment = step("experiment", [*BEATDBN, "finetune", store, tasks, "--task", "key", "--init", dbn,
                                     "--recipe", "paper", "--lr", "0.05", "--epochs", str(args.epochs),
                                     "--out", run])
    load_end = _loadavg()

    per_track = MSD_TRACKS / n_tracks
    beats = summary["n_beats"]
    grows = (MSD_TRACKS - n_tracks) * index_bytes / n_tracks / 2**20  # MB more index per process at MSD size
    phases = summary.get("phases", {})
    pretrain_msd = sum(MSD_BEATS / v["beats_per_s"] for v in phases.values())
    rates = ", ".join(f"{k} {v['beats_per_s']:,.0f}" for k, v in phases.items())
    epoch_s = _epoch_seconds(run)
    task_factor = PAPER_KEY_TRACKS / key_tracks
    experiment_msd = epoch_s * PAPER_EPOCHS * PAPER_RATES * task_factor
    feature_mb = (PAPER_KEY_TRACKS - key_tracks) * store_bytes / n_tracks / 2**20  # the task's features, more
    index_note = f"the store's index, {index_bytes / n_tracks:,.0f} B per track (its table's bytes here)"
    rows = [
        ("extract", extract, extract["wall_s"] * per_track,
         f"linear in tracks at this run's rate, start-up included ({n_tracks / extract['wall_s']:,.0f} tracks/s "
         f"on {args.workers} workers, {args.scheduler})", extract["peak_tree_rss_mb"],
         "a shard at a time per worker: constant in the corpus"),
        ("pretrain (one pass)", pretrain, pretrain_msd,
         f"4.6e8 beats at each phase's beats/s here ({rates}; {args.workers} processes), start-up excluded",
         pretrain["peak_tree_rss_mb"] + args.workers * grows, f"+ {index_note}, in each of {args.workers} processes"),
        ("tasks", built, built["wall_s"] * per_track, "linear in tracks (a scan of the store's index), start-up included",
         built["peak_tree_rss_mb"] + grows, f"+ {index_note}"),
        ("one Table 1 experiment", experiment, experiment_msd,
         f"{epoch_s:,.2f} s per epoch x {PAPER_EPOCHS} epochs x {PAPER_RATES} rates x {PAPER_KEY_TRACKS:,}/{key_tracks:,} "
         f"key tracks (tasks at {scale} scale), start-up excluded; the tasks do not grow with the corpus",
         experiment["peak_tree_rss_mb"] + feature_mb + grows,
         f"+ the features of {PAPER_KEY_TRACKS:,} key tracks instead of {key_tracks:,}, + {index_note}"),
    ]
    result = {
        "date": date, "tracks": n_tracks, "beats": beats, "workers": args.workers, "scheduler": args.scheduler,
        "epochs": args.epochs, "task_scale": scale, "key_task_tracks": key_tracks, "load_start": load_start,
        "load_end": load_end, "cpus": os.cpu_count(), "index_bytes_per_track": index_bytes / n_tracks,
        "epoch_seconds": epoch_s, "msd_bytes_per_track": msd_bytes / max(n_tracks, 1),
        "store_bytes_per_track": store_bytes / n_tracks, "store_bytes_msd": store_bytes / n_tracks * MSD_TRACKS,
        "stages": stages, "projection": [{"stage": r[0], "measured_s": r[1]["wall_s"], "msd_s": r[2],
                                          "time_basis": r[3], "msd_peak_mb": r[4], "memory_basis": r[5]}
                                         for r in rows],
    }
    lines = [
        f"# MSD-sized dry run, {date}: {n_tracks:,} synthetic tracks",
        "",
        f"`python scripts/bench_scale.py --tracks {args.tracks} --workers {args.workers} --scheduler "
        f"{args.scheduler} --epochs {args.epochs}` on {os.cpu_count()} CPUs; load average {load_start} at the start, "
        f"{load_end} at the end. Synthetic tracks (beatdbn.synth), not real music: the rates are the code's, "
        f"the accuracies mean nothing. Tasks at **{scale}** scale"
        + ("" if scale == "paper" else " (this corpus cannot give the paper's; the experiment is projected "
           "by its tracks)") + ".",
        "",
        "| stage | wall s | CPU s | peak memory (tree) | full MSD: time | basis | full MSD: memory | basis |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, r, msd_s, t_basis, msd_mb, m_basis in rows:
        lines.append(f"| {name} | {r['wall_s']:,.1f} | {r['cpu_s']:,.1f} | {r['peak_tree_rss_mb']:,.0f} MB | "
                     f"{msd_s / 3600:,.2f} h | {t_basis} | {msd_mb / 1024:,.2f} GB | {m_basis} |")
    synth = stages[0]
    lines += [
        "",
        f"- Store: {store_bytes / n_tracks / 1e3:,.1f} kB per track ({store_bytes / 1e6:,.1f} MB for {n_tracks:,}); "
        f"the full MSD: **{store_bytes / n_tracks * MSD_TRACKS / 1e9:,.1f} GB** (linear in tracks; real tracks "
        f"average ~500 beats, these {beats / n_tracks:,.0f}).",
        f"- Synthesis (not projected: the MSD exists): "
        + (f"{synth['wall_s']:,.1f} s, " if synth["wall_s"] == synth["wall_s"] else "done earlier (--corpus), ")
        + f"{msd_bytes / max(n_tracks, 1) / 1e3:,.0f} kB of MSD-format .h5 per track.",
        f"- Pretraining: {summary['n_tracks']:,} tracks, {beats:,} beats; "
        + ", ".join(f"{k} {v['beats_per_s']:,.0f} beats/s" for k, v in summary.get("phases", {}).items()) + ".",
        "- Peak memory: the largest sum of resident memory over the stage's processes (psutil, every 0.2 s; "
        "shared pages counted once per process, so an upper bound for forked workers).",
        "- Stage commands and figures: the JSON file of the same name.",
        "",
    ]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines))
    report.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(lines))
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
