"""Fuzz the MSD and audio readers with mutated files (issue 24, item 13): any outcome but a track or a
one-line DataError is a finding.

Seeds are built here (a synthetic MSD track file, an aggregate file of three
songs, and one short recording as wav, flac, ogg and mp3). Each input is a
seed with random byte-level mutations (flips, overwritten runs of random or
boundary bytes, truncation, deleted or duplicated spans, splices of two
seeds), written under the seed's suffix and read with
:func:`beatdbn.features.sources.read_features` (the entry point of extract,
predict, embed and serve: MSD reading and alignment, or decoding and the
audio front-end).

The reading runs in a child process, so a native crash (a signal in libhdf5
or libsndfile) or a hang (no progress for ``--hang`` seconds) is caught too:
the parent records the input that caused it and starts a new child. Findings
(Python exceptions other than ``DataError``, ``DataError`` messages over one
line, crashes, hangs) are saved under ``--out`` with the input that caused
them, and summarised at the end.

Not part of CI. Run on one core, once, for a few minutes::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/fuzz_readers.py --seconds 300 --out /tmp/fuzz
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

BOUNDARY = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f",
            b"\x00\x00\x00\x80", b"\x00\x00\xf0\x7f\x00\x00\x00\x00", b"\x01\x00\x00\x00\x00\x00\x00\x00"]


def make_seeds(folder: Path) -> list[Path]:
    """The seed files: MSD per-track and aggregate files, one recording in four formats."""
    import numpy as np
    import soundfile as sf

    from beatdbn.synth.audio_keys import render_piece
    from beatdbn.synth.corpus import make_track
    from beatdbn.synth.msd_writer import write_aggregate, write_track

    folder.mkdir(parents=True, exist_ok=True)
    seeds = [write_track(folder / "track.h5", make_track(track_id="TRFUZZ0000000001", n_beats=24, seed=1)),
             write_aggregate(folder / "aggregate.h5",
                             [make_track(track_id=f"TRFUZZAGG{i:09d}", n_beats=12 + i, seed=i) for i in range(3)])]
    piece = render_piece(tonic=0, mode=1, seed=0, n_beats=8, tempo=150.0, sr=22050)
    audio = np.asarray(piece.audio, dtype=np.float32)[: 22050 * 3]
    for suffix, fmt in ((".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3")):
        path = folder / f"clip{suffix}"
        try:
            sf.write(path, audio, 22050, format=fmt)
        except Exception as exc:  # a libsndfile without that format
            print(f"seed {path.name}: not written ({exc})", file=sys.stderr)
            continue
        seeds.append(path)
    return seeds


def mutate(data: bytes, other: bytes, rng: random.Random) -> bytes:
    """One to eight random byte-level changes of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not buf:
            buf = bytearray(rng.randbytes(rng.randint(1, 64)))
        op = rng.randrange(7)
        i = rng.randrange(len(buf))
        if op == 0:  # flip bits
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # a run of random bytes
            n = rng.randint(1, 64)
            buf[i : i + n] = rng.randbytes(min(n, len(buf) - i))
        elif op == 2:  # a boundary value
            v = rng.choice(BOUNDARY)
            buf[i : i + len(v)] = v[: len(buf) - i]
        elif op == 3:  # truncate
            del buf[rng.randint(0, len(buf)) :]
        elif op == 4:  # delete a span
            del buf[i : i + rng.randint(1, 256)]
        elif op == 5:  # duplicate a span
            j = rng.randrange(len(buf))
            buf[j:j] = buf[i : i + rng.randint(1, 256)]
        else:  # splice in a piece of another seed
            if other:
                k = rng.randrange(len(other))
                buf[i : i + 512] = other[k : k + 512]
    return bytes(buf)


def child(seed_dir: Path, work: Path, rng_seed: int, status: Path) -> None:
    """Read mutated inputs until killed, reporting each outcome as one JSON line on stdout."""
    import numpy as np

    from beatdbn.exceptions import DataError
    from beatdbn.features.sources import read_features

    seeds = [(p.suffix, p.read_bytes()) for p in sorted(seed_dir.iterdir())]
    rng = random.Random(rng_seed)
    work.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        suffix, data = rng.choice(seeds)
        other = rng.choice(seeds)[1]
        path = work / f"input{suffix}"
        path.write_bytes(mutate(data, other, rng))
        status.with_suffix(".tmp").write_text(json.dumps({"n": n, "path": str(path), "suffix": suffix}))
        os.replace(status.with_suffix(".tmp"), status)
        outcome = {"n": n, "suffix": suffix}
        try:
            for meta, feats, beats in read_features(path):
                if feats.ndim != 2 or feats.shape[1] != 24 or not np.isfinite(feats).all() or len(beats) != len(feats):
                    raise AssertionError(f"bad features {feats.shape} finite={np.isfinite(feats).all()}")
            outcome["result"] = "track"
        except DataError as exc:
            outcome["result"] = "DataError"
            if "\n" in str(exc):
                outcome.update(result="finding", kind="multi-line DataError", message=str(exc)[:500])
        except Exception as exc:  # noqa: BLE001 (the fuzzer's purpose)
            frames = traceback.extract_tb(exc.__traceback__)
            where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames) if "beatdbn" in f.filename),
                         f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?")
            outcome.update(result="finding", kind=f"{type(exc).__name__} at {where}", message=str(exc)[:300])
        if outcome["result"] == "finding":
            outcome["input"] = path.read_bytes().hex()
        print(json.dumps(outcome), flush=True)
        n += 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to fuzz (default 300)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "beatdbn-fuzz",
                        help="where findings and their inputs are written")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the first child")
    parser.add_argument("--hang", type=float, default=60.0, help="seconds without progress that count as a hang")
    parser.add_argument("--child", nargs=4, metavar=("SEEDS", "WORK", "SEED", "STATUS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]), Path(args.child[3]))
        return 0

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    make_seeds(out / "seeds")
    counts: collections.Counter = collections.Counter()
    findings: dict[str, dict] = {}
    deadline = time.monotonic() + args.seconds
    rng_seed = args.seed
    status = out / "status.json"

    def record(kind: str, message: str, suffix: str, data: bytes) -> None:
        f = findings.setdefault(kind, {"count": 0, "message": message})
        f["count"] += 1
        if "saved" not in f:
            f["saved"] = f"finding-{len(findings)}{suffix}"
            (out / f["saved"]).write_bytes(data)

    while time.monotonic() < deadline:
        cmd = [sys.executable, __file__, "--child", str(out / "seeds"), str(out / "work"), str(rng_seed), str(status)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
        last = time.monotonic()
        while proc.poll() is None or not lines.empty():
            now = time.monotonic()
            if proc.poll() is None and (now > deadline or now - last > args.hang):
                proc.kill()
                proc.wait()
                if now - last > args.hang:  # a hang: the input being read is the finding
                    state = json.loads(status.read_text())
                    counts[(state["suffix"], "hang")] += 1
                    record(f"hang over {args.hang:g} s", state["path"], state["suffix"],
                           Path(state["path"]).read_bytes())
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            last = time.monotonic()
            try:
                rec = json.loads(line)
            except ValueError:  # something else wrote to stdout
                counts[("?", "stray output")] += 1
                continue
            counts[(rec["suffix"], rec["result"])] += 1
            if rec["result"] == "finding":
                record(rec["kind"], rec["message"], rec["suffix"], bytes.fromhex(rec["input"]))
        if proc.returncode not in (0, -9):  # a native crash: the input being read is the finding
            state = json.loads(status.read_text())
            counts[(state["suffix"], "crash")] += 1
            kind = f"crash (signal {-proc.returncode})" if proc.returncode < 0 else f"exit {proc.returncode}"
            record(kind, state["path"], state["suffix"], Path(state["path"]).read_bytes())
        rng_seed += 1
    total = sum(counts.values())
    summary = {"inputs": total, "seconds": args.seconds,
               "outcomes": {f"{s} {r}": c for (s, r), c in sorted(counts.items())}, "findings": findings}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
