"""utils.audio_io.write_audio: a 3-minute OGG (one large libsndfile Vorbis write segfaults) and other formats."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from beatdbn.utils.audio_io import write_audio


def test_a_three_minute_ogg_is_written_whole(tmp_path):
    # in a child process: the failure this guards against is a segmentation fault, not an exception
    code = ("import numpy as np; from beatdbn.utils.audio_io import write_audio; "
            "y = (0.1 * np.random.default_rng(0).standard_normal(22050 * 180)).astype(np.float32); "
            f"write_audio({str(tmp_path / 'long.ogg')!r}, y, 22050, format='OGG')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    info = sf.info(str(tmp_path / "long.ogg"))
    assert info.frames == 22050 * 180 and info.samplerate == 22050


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_blocks_join_into_the_same_signal(tmp_path, fmt):
    y = np.sin(np.linspace(0, 2000, 200_000)).astype(np.float32) * 0.5
    p = write_audio(tmp_path / f"a.{fmt.lower()}", y, 22050, format=fmt)
    back, sr = sf.read(str(p), dtype="float32")
    assert sr == 22050 and len(back) == len(y)
    assert np.abs(back - y).max() < (0.05 if fmt == "OGG" else 1e-4)
