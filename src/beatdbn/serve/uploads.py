"""One upload to one temporary file that is always removed, with the size cap and the accepted types."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from beatdbn.exceptions import DataError
from beatdbn.features.sources import AUDIO_SUFFIXES, MSD_SUFFIXES

__all__ = ["ACCEPTED_SUFFIXES", "saved_upload", "check_name"]

ACCEPTED_SUFFIXES = tuple(dict.fromkeys((".wav", ".flac", ".ogg", ".mp3") + tuple(AUDIO_SUFFIXES) + MSD_SUFFIXES))


def check_name(filename: str) -> str:
    """The upload's suffix (lower case), or DataError naming what is accepted."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        raise DataError(f"{filename or 'the upload'}: not a file this page reads; give an audio file "
                        f"(wav, flac, ogg, mp3) or an MSD .h5 file")
    return suffix


@contextlib.contextmanager
def saved_upload(source: BinaryIO, filename: str, max_bytes: int, *, tmp_root: str | None = None) -> Iterator[Path]:
    """Copy ``source`` to a private temporary folder (at most ``max_bytes``); the folder is removed on exit.

    Raises
    ------
    DataError
        Empty upload, over the cap, or a suffix that is not accepted.
    """
    suffix = check_name(filename)
    folder = Path(tempfile.mkdtemp(prefix="beatdbn-serve-", dir=tmp_root))
    try:
        path = folder / f"upload{suffix}"
        size = 0
        with path.open("wb") as f:
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise DataError(f"{filename}: larger than the {max_bytes / 2**20:.0f} MB this server accepts "
                                    f"(--max-mb)")
                f.write(chunk)
        if size == 0:
            raise DataError(f"{filename}: the file is empty (0 bytes)")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
