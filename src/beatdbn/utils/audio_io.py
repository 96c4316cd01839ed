"""Writing audio files safely: in blocks, because libsndfile's Vorbis encoder crashes on one large write.

``soundfile.write(path, y, sr, format="OGG")`` of about 100 s or more in one call ends the process with a
segmentation fault (libsndfile 1.2 here: seen with 200 s of 22.05 kHz noise). :func:`write_audio` opens
the file once and writes :data:`BLOCK` frames at a time, which every format accepts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_audio", "BLOCK"]

#: Frames per write call (about 3 s at 22.05 kHz).
BLOCK = 1 << 16


def write_audio(path: str | Path, y: np.ndarray, sr: int, *, format: str | None = None) -> Path:
    """Write ``y`` (``(n,)`` or ``(n, channels)``) to ``path`` at ``sr`` Hz, :data:`BLOCK` frames per call.

    Examples
    --------
    >>> import tempfile, soundfile as sf
    >>> p = write_audio(tempfile.mkdtemp() + "/a.ogg", np.zeros(22050, np.float32), 22050, format="OGG")
    >>> sf.info(str(p)).frames
    22050
    """
    import soundfile as sf

    y = np.asarray(y)
    channels = 1 if y.ndim == 1 else y.shape[1]
    with sf.SoundFile(str(path), "w", samplerate=int(sr), channels=channels, format=format) as f:
        for start in range(0, len(y), BLOCK):
            f.write(y[start:start + BLOCK])
    return Path(path)
