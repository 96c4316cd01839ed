"""The command line as a user meets it: whole processes, start-up included.

* ``beatdbn --help`` and ``beatdbn info STORE`` against ``python -c pass``
  (the interpreter's own start: the floor);
* ``beatdbn predict --task key`` on a synthesized 3-minute piece (44.1 kHz
  WAV) against a Python script running Essentia's ``KeyExtractor``
  (``bgate`` profile) on the same file, when ``import essentia.standard``
  works here. Essentia is AGPL: it is only ever a benchmark's baseline
  (``pip install essentia``, or the ``bench`` extra), never a dependency.

The contenders run alternately, ``repeat`` times each; the figures are the
median wall times as rates (higher is better), with seconds and CPU seconds
(the child's user + system time) in the note.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ESSENTIA_SCRIPT = """
import sys
import essentia
essentia.log.infoActive = False
import essentia.standard as es
audio = es.MonoLoader(filename=sys.argv[1], sampleRate=44100)()
key, scale, strength = es.KeyExtractor(profileType="bgate")(audio)
print(sys.argv[1], key, scale, round(float(strength), 3))
"""


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, child CPU seconds, stdout) of one process; raises when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {done.returncode}: {done.stderr.strip()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def _alternate(contenders: dict[str, list[str]], repeat: int) -> dict[str, tuple[float, float, str]]:
    """Median (wall, CPU) and the last output of each command, run in turn ``repeat`` times."""
    runs: dict[str, list] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, cmd in contenders.items():
            runs[name].append(_timed(cmd))
    return {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs), rs[-1][2])
            for name, rs in runs.items()}


def essentia_available() -> bool:
    """True when ``import essentia.standard`` works in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-c", "import essentia.standard"], capture_output=True, timeout=120)
    return done.returncode == 0


def _song(folder: Path, seconds: float = 180.0) -> Path:
    """A synthesized piece of ``seconds`` (B♭ major, 120 BPM) as a 44.1 kHz WAV file."""
    import soundfile as sf

    from beatdbn.synth.audio_keys import render_piece

    tempo = 120.0
    piece = render_piece(tonic=10, mode=1, seed=7, n_beats=int(seconds * tempo / 60), tempo=tempo, sr=44100)
    path = folder / "song-3min.wav"
    sf.write(path, piece.audio, piece.sr)
    return path


def _store(folder: Path) -> Path:
    """A small feature store (20 synthetic MSD tracks) for ``beatdbn info``."""
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import generate_corpus

    generate_corpus(folder / "msd", 20, seed=0, n_artists=4)
    extract([folder / "msd"], folder / "store", scheduler="sync")
    return folder / "store"


def _note(wall: float, cpu: float, other: tuple[float, float] | None = None, name: str = "") -> str:
    text = f"{wall:.2f} s wall, {cpu:.2f} s CPU"
    return text + (f"; {name} {other[0]:.2f} s wall, {other[1]:.2f} s CPU" if other else "")


def run(results, quick: bool = False) -> None:
    repeat = 2 if quick else 5
    beatdbn = [sys.executable, "-m", "beatdbn"]
    tmp = Path(tempfile.mkdtemp(prefix="beatdbn-bench-cli-"))
    try:
        store = _store(tmp)
        start = _alternate({"floor": [sys.executable, "-c", "pass"], "help": [*beatdbn, "--help"],
                            "info": [*beatdbn, "info", str(store)]}, repeat)
        floor = start["floor"]
        for name, label in (("help", "beatdbn --help"), ("info", "beatdbn info STORE")):
            wall, cpu, _ = start[name]
            results.add(f"cli: `{label}`, whole process", 1 / wall, "runs/s",
                        baseline="python -c pass (interpreter start)", baseline_value=1 / floor[0],
                        note=_note(wall, cpu, floor[:2], "python -c pass") + " (goal: under 1 s)")

        song = _song(tmp, 60.0 if quick else 180.0)
        minutes = 1 if quick else 3
        contenders = {"beatdbn": [*beatdbn, "predict", "--task", "key", str(song)]}
        have_essentia = essentia_available()
        if have_essentia:
            script = tmp / "essentia_key.py"
            script.write_text(ESSENTIA_SCRIPT)
            contenders["essentia"] = [sys.executable, str(script), str(song)]
        timed = _alternate(contenders, max(repeat - 2, 1) if not quick else 1)
        wall, cpu, out = timed["beatdbn"]
        answer = out.strip().split("  ", 1)[-1] if out.strip() else "?"
        if have_essentia:
            ew, ec, eout = timed["essentia"]
            results.add(f"cli: `beatdbn predict --task key`, one {minutes}-minute song, whole process", 60 / wall,
                        "songs/min", baseline="Essentia KeyExtractor (bgate) in a Python script, same file",
                        baseline_value=60 / ew,
                        note=_note(wall, cpu, (ew, ec), "Essentia") + f"; ours: {answer}; Essentia: "
                             f"{' '.join(eout.split()[1:3])} (the piece is in B♭ major)")
        else:
            results.add(f"cli: `beatdbn predict --task key`, one {minutes}-minute song, whole process", 60 / wall,
                        "songs/min", note=_note(wall, cpu) + f"; ours: {answer}; Essentia not installed here "
                                                             f"(pip install essentia: AGPL, benchmark only)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":  # python -m benchmarks.bench_cli [--quick]
    from benchmarks._common import Results

    res = Results()
    run(res, quick="--quick" in sys.argv)
    for f in res.figures:
        print(f"{f.name}: {f.value:.3g} {f.unit}" + (f" vs {f.baseline_value:.3g} ({f.ratio:.2f}x)" if f.ratio else "")
              + f"  [{f.note}]")
