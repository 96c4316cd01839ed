"""Reading the first song ahead (beatdbn.features.read_ahead): the reader's answer is read_input's, in a thread
too; a reader killed mid-way costs nothing but a second reading; the child never outlives the command, even one
killed before it read the answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from beatdbn.features import read_ahead
from beatdbn.features.sources import read_input


@pytest.fixture()
def song(tmp_path) -> Path:
    sr = 22050
    t = np.arange(5 * sr) / sr
    path = tmp_path / "chord.wav"
    sf.write(path, (0.2 * sum(np.sin(2 * np.pi * f * t) for f in (262, 330, 392))).astype(np.float32), sr)
    return path


def test_a_reading_in_a_thread_gives_read_input_s_answer(song, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch", object()))  # loaded: never fork then
    ahead = read_ahead.start(song)
    assert not ahead.process
    name, tracks = ahead.result()
    want_name, want = read_input(song)
    assert name == want_name and np.array_equal(tracks[0][1], want[0][1])
    missing = read_ahead.start(song.parent / "none.wav")  # read_input's own answer for a file it cannot read
    assert missing.result() == read_input(song.parent / "none.wav")


_KILLED = """
import json, os, signal, sys, time
from pathlib import Path
from beatdbn.features import read_ahead
from beatdbn.inference.files import _read
song = Path(sys.argv[1])
ahead = read_ahead.start(song)
os.kill(ahead._proc.pid, signal.SIGKILL)
try:
    ahead.result()
    died = False
except RuntimeError as exc:
    died = "without an answer" in str(exc)
ahead = read_ahead.start(song)
name, tracks = _read(ahead)  # a live one answers
again = read_ahead.start(song)
os.kill(again._proc.pid, signal.SIGKILL)
name2, tracks2 = _read(again)  # a killed one is read again in this process
print(json.dumps({"process": ahead.process, "died": died, "same": name == name2 and len(tracks) == len(tracks2) == 1,
                  "torch": "torch" in sys.modules, "daemon": again._proc.daemon}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the read-ahead forks on Linux only")
def test_a_reader_killed_mid_way_is_read_again(song):
    done = subprocess.run([sys.executable, "-c", _KILLED, str(song)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"process": True, "died": True, "same": True,
                                                                 "torch": False, "daemon": True}


_ORPHAN = """
import json, os, sys
import numpy as np
from pathlib import Path
from beatdbn.features import read_ahead
read_ahead._read = lambda path: np.zeros(1 << 20)  # an answer far over a pipe's 64 KiB buffer
ahead = read_ahead.start(Path(sys.argv[1]))
print(json.dumps({"pid": ahead._proc.pid}), flush=True)
os._exit(0)  # dies without reading the answer (as a killed command would)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has ended (whoever reaps it)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the read-ahead forks on Linux only")
def test_the_reader_never_outlives_a_command_that_died(song):
    import time

    done = subprocess.run([sys.executable, "-c", _ORPHAN, str(song)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    pid = json.loads(done.stdout.strip().splitlines()[-1])["pid"]
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"the read-ahead child {pid} outlived its parent"
