"""Any input file to beat-aligned features: the one entry point for extract and predict.

:func:`read_features` yields ``(meta, features, beats)`` for every track of
one input file: every song of an MSD ``.h5`` file (per-track or aggregate),
aligned with :func:`beatdbn.features.beats.align_track`. ``meta`` is the
track's metadata dict (``Track.metadata()`` plus ``source`` and
``source_index``); ``features`` is ``(n_beats, 24)`` float32.

Examples
--------
>>> for meta, feats, beats in read_features("TRAXLZU12903D05F94.h5"):  # doctest: +SKIP
...     print(meta["track_id"], feats.shape)
TRAXLZU12903D05F94 (397, 24)
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["read_features", "MSD_SUFFIXES"]

#: File suffixes read as MSD HDF5 files when a folder is searched.
MSD_SUFFIXES = (".h5", ".hdf5")


def read_features(path) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    """Yield ``(meta, features, beats)`` for every track of one input file.

    Raises
    ------
    beatdbn.exceptions.DataError
        The file cannot be read as a track file (the message names it).
    """
    from beatdbn.features.beats import align_track
    from beatdbn.features.msd import iter_tracks

    path = str(path)
    for index, track in enumerate(iter_tracks(path)):
        feats, beats = align_track(track)
        meta = track.metadata()
        meta.update(mbtags=list(track.mbtags), mbtags_count=list(track.mbtags_count), source=path,
                    source_index=index)
        yield meta, feats, beats
