"""Class labels of the three tasks: artist, genre (MusicBrainz or tagtraum), key.

**Genre rule (MusicBrainz, the paper's section 4).** A track's genre is the
one of the 20 genre tags below that its *artist's* MusicBrainz tags name with
the highest count. Tags are compared after lower-casing and treating ``-``
and ``_`` as spaces (so "Hip-Hop" is "hip hop"). An artist with none of the 20
tags gives no genre; a tie for the highest count between two or more of the
20 is **ambiguous, and the track is left out**.

**Genre from tagtraum** (``--genre-labels FILE``): lines
``track_id<TAB>majority[<TAB>minority]``; the majority genre is used as it
is, the minority one ignored.

**Key**: the Echo Nest ``key`` field, 0-11 for C..B (mode ignored: 12 keys as
in the paper), named with :data:`KEY_NAMES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from beatdbn.exceptions import DataError

__all__ = ["GENRES", "KEY_NAMES", "normalize_tag", "genre_from_mbtags", "read_tagtraum"]

#: The 20 MusicBrainz genre tags of the paper, in its order.
GENRES = (
    "folk", "punk", "metal", "jazz", "country", "blues", "classical", "rnb", "new wave", "world",
    "soul", "latin", "dance", "reggae", "techno", "funk", "rap", "hip hop", "rock", "pop",
)
KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def normalize_tag(tag: str) -> str:
    """Lower-case, '-' and '_' as spaces, single spaces."""
    return " ".join(tag.lower().replace("-", " ").replace("_", " ").split())


def genre_from_mbtags(tags: Sequence[str], counts: Sequence[int], genres: Sequence[str] = GENRES) -> str | None:
    """The genre of a track from its artist's MusicBrainz tags, or None.

    Examples
    --------
    >>> genre_from_mbtags(["uk", "Rock", "pop"], [5, 3, 2])
    'rock'
    >>> genre_from_mbtags(["rock", "pop"], [2, 2]) is None   # a tie is ambiguous
    True
    """
    wanted = set(genres)
    best: dict[str, int] = {}
    for tag, count in zip(tags, counts):
        name = normalize_tag(tag)
        if name in wanted:
            best[name] = max(best.get(name, 0), int(count))
    if not best:
        return None
    top = max(best.values())
    winners = [g for g, c in best.items() if c == top]
    return winners[0] if len(winners) == 1 else None


def read_tagtraum(path) -> dict[str, str]:
    """track_id -> majority genre from a tagtraum ``.cls`` file.

    Raises
    ------
    DataError
        Missing file, or a line that is not ``track_id<TAB>genre...``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the genre label file ({exc.strerror or exc})") from None
    labels = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2 or not parts[0].startswith("TR") or not parts[1].strip():
            raise DataError(f"{path}:{n}: expected 'track_id<TAB>genre[<TAB>minority]', got {line[:60]!r}")
        labels[parts[0].strip()] = parts[1].strip()
    return labels
