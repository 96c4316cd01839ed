"""A fast CLI start: `beatdbn --help`, every command's --help and `beatdbn info` load no torch, scikit-learn, Dask,
librosa or matplotlib; `predict --task key` loads none of them either, torch included: the shipped model runs in numpy
(issue 25 item 1, issue 22 item 5).

Each check runs in a fresh Python process (this one has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

#: Never loaded to show help or a store's summary.
HEAVY = ("torch", "sklearn", "dask", "distributed", "matplotlib", "librosa")

_RUN_CLI = """
import json, sys
from beatdbn.cli import app
args = json.loads(sys.argv[1])
codes = []
for argv in args:
    try:
        app(argv, prog_name="beatdbn", standalone_mode=False)
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code or 0)
threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
print(json.dumps({"codes": codes, "loaded": sorted({m.split(".")[0] for m in sys.modules}), "threads": threads}),
      file=sys.stderr)
"""


def _cli(*argvs: list[str], timeout: float = 120) -> tuple[dict, str]:
    """Run the commands one after another in one fresh process: ``({"codes", "loaded"}, stdout)``."""
    done = subprocess.run([sys.executable, "-c", _RUN_CLI, json.dumps([list(a) for a in argvs])], capture_output=True,
                          text=True, timeout=timeout, env=_env())
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    assert done.returncode == 0 and last.startswith("{"), done.stderr[-3000:]
    return json.loads(last), done.stdout


def _env() -> dict:
    import os

    return {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def test_importing_the_cli_loads_nothing_heavy():
    code = "import beatdbn.cli, sys; print(' '.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [], f"`import beatdbn.cli` loaded {done.stdout.split()}"


def test_the_check_itself_can_fail():
    """The same probe sees torch when something imports it."""
    code = ("import beatdbn.cli, beatdbn.models.convmlp, sys; "
            "print(' '.join(m for m in %r if m in sys.modules))" % (HEAVY,))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert "torch" in done.stdout.split()


def test_beatdbn_help_works_and_every_command_help_is_light():
    from beatdbn.cli import app  # this process: only to list the commands

    names = sorted(c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands)
    assert {"predict", "serve", "info", "pretrain", "finetune", "embed", "reproduce"} <= set(names)
    result, out = _cli(["--help"], *[[name, "--help"] for name in names])
    assert result["codes"] == [0] * (len(names) + 1)
    assert "Usage: beatdbn" in out and all(name in out for name in names)
    loaded = set(result["loaded"]) & set(HEAVY)
    assert not loaded, f"--help loaded {sorted(loaded)}"
    entry = subprocess.run([sys.executable, "-m", "beatdbn", "--help"], capture_output=True, text=True, timeout=120,
                           env=_env())
    assert entry.returncode == 0 and "predict" in entry.stdout


def test_info_is_light(demo_corpus):
    result, out = _cli(["info", str(demo_corpus["store"]), "--json"])
    assert result["codes"] == [0] and json.loads(out)["tracks"] > 0
    loaded = set(result["loaded"]) & set(HEAVY)
    assert not loaded, f"info loaded {sorted(loaded)}"


def test_predict_key_loads_only_what_it_needs(tmp_path):
    sr = 22050
    t = np.arange(4 * sr) / sr
    tone = tmp_path / "a440.wav"
    sf.write(tone, (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.5 < 0.3)).astype(np.float32), sr)
    result, out = _cli(["--threads", "2", "predict", "--task", "key", str(tone)], timeout=300)
    assert result["codes"] == [0], out
    assert out.startswith(f"{tone}  ")
    loaded = set(result["loaded"])
    # the shipped model runs in numpy (model.npz): no torch, no scikit-learn, Dask, matplotlib or librosa
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert result["threads"] is None


def test_threads_reach_torch_when_a_command_loads_it(tmp_path):
    """--threads is applied when torch loads: here the shipped model's folder given as a RUN_DIR (torch)."""
    from beatdbn.inference import shipped_model_dir

    sr = 22050
    tone = tmp_path / "a440.wav"
    sf.write(tone, (0.3 * np.sin(2 * np.pi * 440 * np.arange(4 * sr) / sr)).astype(np.float32), sr)
    result, out = _cli(["--threads", "2", "predict", str(shipped_model_dir("key")), str(tone)], timeout=300)
    assert result["codes"] == [0], out
    assert result["threads"] == 2 and "torch" in result["loaded"]  # OMP_NUM_THREADS=1 here


_READ_AHEAD = """
import json, multiprocessing, sys
from pathlib import Path
from beatdbn.cli.predict import _read_ahead
from beatdbn.features.sources import read_input
future = _read_ahead([Path(sys.argv[1])], 1, None)
children = len(multiprocessing.active_children())
name, tracks = future.result()
want_name, want = read_input(sys.argv[1])
same = name == want_name and all((a[1] == b[1]).all() and (a[2] == b[2]).all() for a, b in zip(tracks, want))
print(json.dumps({"children": children, "same": bool(same), "n": len(tracks), "torch": "torch" in sys.modules}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the read-ahead forks on Linux only")
def test_predict_reads_the_first_song_ahead_in_a_forked_process(tmp_path):
    # the first input's analysis runs in another process while torch is imported: a thread would share the
    # interpreter's lock with the import (a 3-minute song, whole process: 2.1 s wall instead of 3.0-3.1 s)
    sr = 22050
    t = np.arange(6 * sr) / sr
    song = tmp_path / "chord.wav"
    sf.write(song, (0.2 * sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392))).astype(np.float32), sr)
    done = subprocess.run([sys.executable, "-c", _READ_AHEAD, str(song)], capture_output=True, text=True,
                          timeout=120, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"children": 1, "same": True, "n": 1, "torch": False}, result


def test_a_read_ahead_that_died_is_read_again(tmp_path):
    from beatdbn.features.read_ahead import Ahead
    from beatdbn.features.sources import read_input
    from beatdbn.inference.files import _read

    sr = 22050
    song = tmp_path / "tone.wav"
    sf.write(song, (0.2 * np.sin(2 * np.pi * 330 * np.arange(4 * sr) / sr)).astype(np.float32), sr)
    dead = Ahead(song)  # a reading whose reader failed: result() raises
    dead._error = RuntimeError("the reader was killed")
    name, tracks = _read(dead)
    want_name, want = read_input(song)
    assert name == want_name and len(tracks) == len(want) == 1
    assert np.array_equal(tracks[0][1], want[0][1])
