"""Synthetic MSD-format data: a file writer and a demo corpus generator.

* :mod:`beatdbn.synth.msd_writer` -- :func:`write_track` and
  :func:`write_aggregate` write songs as real MSD-layout HDF5 files;
* :mod:`beatdbn.synth.corpus` -- :func:`generate_corpus` writes a corpus of
  synthetic tracks whose features carry learnable genre, artist and key
  structure; :func:`make_track` builds one track for tests.
"""

from beatdbn.synth.corpus import GENRES, OTHER_TAGS, generate_corpus, iter_corpus, make_track
from beatdbn.synth.msd_writer import ARRAY_SPECS, SONG_TABLE_DTYPES, write_aggregate, write_track

__all__ = [
    "generate_corpus",
    "iter_corpus",
    "make_track",
    "write_track",
    "write_aggregate",
    "GENRES",
    "OTHER_TAGS",
    "SONG_TABLE_DTYPES",
    "ARRAY_SPECS",
]
