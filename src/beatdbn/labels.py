"""Class labels of the three tasks: artist, genre (MusicBrainz or tagtraum), key.

**Genre rule (MusicBrainz, the paper's section 4).** A track's genre is the
one of the 20 genre tags below that its *artist's* MusicBrainz tags name with
the highest count. Tags are compared after lower-casing and treating ``-``
and ``_`` as spaces (so "Hip-Hop" is "hip hop"). An artist with none of the 20
tags gives no genre; a tie for the highest count between two or more of the
20 is **ambiguous, and the track is left out**.

**Genre from tagtraum** (``--genre-labels FILE``): lines
``track_id<TAB>majority[<TAB>minority]``; the majority genre is used as it
is, the minority one ignored. A track id given twice with different genres
is an error naming both lines (never "the last one wins"); a file without
any label line is an error saying so.

**Key**: the Echo Nest ``key`` field, 0-11 for C..B (mode ignored: 12 keys as
in the paper), named with :data:`KEY_NAMES`; with ``--key-classes 24`` the
``mode`` field too (1 major, 0 minor), named with :data:`KEY_NAMES_24`
("C major" ... "B minor"); a track whose mode is unknown (-1) is left out.

**Labels of an audio corpus** (``beatdbn extract --labels FILE``): a CSV file
with a ``path`` column (relative to the CSV's folder, or absolute) and any of
``artist``, ``genre``, ``key`` (:func:`read_label_csv`); or the name of the
first folder below the extracted folder (``genre/song.mp3``,
:func:`folder_labels`). Keys are pitch classes 0-11 or names (C, C#, Db, ...,
B; ``♯``/``♭`` too) with an optional mode word ("minor", "min", "m", "major",
"maj"), read by :func:`parse_key`; the mode is kept in the ``mode`` column
(1 major, 0 minor, -1 not given), the task still has 12 classes.

**Label files are read as UTF-8 with or without a byte-order mark**
(``utf-8-sig``), so a BOM written by a spreadsheet never becomes part of
the first track id or header. Two rows of one CSV naming the same file with
different labels are an error naming both lines; a quoted field that runs
past the end of its line (an unbalanced quote) is an error naming the file
and the line, not the rest of the file.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable, Sequence

from beatdbn.exceptions import DataError, ParameterError

__all__ = ["GENRES", "PITCH_CLASSES", "KEY_NAMES", "KEY_NAMES_24", "NO_KEY", "LABEL_FIELDS", "normalize_tag", "genre_from_mbtags", "read_tagtraum",
           "parse_key", "read_label_csv", "folder_labels"]

#: The 20 MusicBrainz genre tags of the paper, in its order.
GENRES = (
    "folk", "punk", "metal", "jazz", "country", "blues", "classical", "rnb", "new wave", "world",
    "soul", "latin", "dance", "reggae", "techno", "funk", "rap", "hip hop", "rock", "pop",
)
#: The 12 pitch classes as chroma bins and tonics are named everywhere in beatdbn (sharps; the key answer spells
#: keys for musicians, :mod:`beatdbn.inference.key_answer`).
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
#: The 12 tonics of the paper's key task.
KEY_NAMES = PITCH_CLASSES
#: The 24 major/minor keys (``--key-classes 24``), named as mir_eval writes keys: "C major" ... "B minor".
KEY_NAMES_24 = tuple(f"{k} major" for k in KEY_NAMES) + tuple(f"{k} minor" for k in KEY_NAMES)
#: The class of a key model that answers "this has no key" (speech, noise, drums, a lone tone, silence).
NO_KEY = "no key"


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


def read_tagtraum(path, *, notes: list | None = None) -> dict[str, str]:
    """track_id -> majority genre from a tagtraum ``.cls`` file.

    Lines are ``track_id<TAB>majority[<TAB>minority]`` (2 or 3 columns);
    ``#`` lines are comments. A blank line is skipped, and when ``notes`` is
    given one line naming the file and the line is appended to it.

    Raises
    ------
    DataError
        Missing file, no label line at all, a line with a wrong column count,
        a track id that is not an MSD id (``TR`` + 16 characters) or an empty
        genre, or one track given two genres: one line naming the file and
        the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the genre label file ({exc.strerror or exc})") from None
    labels: dict[str, str] = {}
    first_line: dict[str, int] = {}
    blank = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            continue
        if not line.strip():
            blank.append(n)
            continue
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) not in (2, 3):
            raise DataError(f"{path}:{n}: {len(parts)} tab-separated columns, expected 2 or 3 "
                            f"('track_id<TAB>genre[<TAB>minority]'), got {line[:60]!r}")
        tid = parts[0].strip()
        if not (tid.startswith("TR") and len(tid) == 18) or not parts[1].strip():
            raise DataError(f"{path}:{n}: expected 'track_id<TAB>genre[<TAB>minority]' with an MSD track id "
                            f"(TR + 16 characters), got {line[:60]!r}")
        genre = parts[1].strip()
        if tid in labels and labels[tid] != genre:
            raise DataError(f"{path}:{n}: track {tid} labelled {genre[:40]!r} here and {labels[tid][:40]!r} on line "
                            f"{first_line[tid]}: conflicting genre labels; keep one line per track")
        first_line.setdefault(tid, n)
        labels[tid] = genre
    if not labels:
        raise DataError(f"{path}: no genre labels (the file is empty or holds only comments and blank lines); "
                        f"expected lines 'track_id<TAB>genre[<TAB>minority]'")
    if blank and notes is not None:
        shown = ", ".join(map(str, blank[:5])) + (f" and {len(blank) - 5} more" if len(blank) > 5 else "")
        notes.append(f"{path}: {len(blank)} blank line(s) skipped (line {shown})")
    return labels


#: Label columns an audio corpus may give (besides ``path``).
LABEL_FIELDS = ("artist", "genre", "key")

_PITCH = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_KEY_RE = re.compile(r"^\s*(?:(?P<pc>\d{1,2})|(?P<note>[A-Ga-g])(?P<acc>[#♯b♭]?))\s*(?P<mode>[A-Za-z]*)\s*$")
_MODES = {"": -1, "major": 1, "maj": 1, "minor": 0, "min": 0, "m": 0}


def parse_key(value) -> tuple[int, int]:
    """A key label as ``(pitch_class, mode)``: pitch class 0-11 (C=0), mode 1 major, 0 minor, -1 not given.

    Raises
    ------
    ParameterError
        Not a key: the message quotes the value and the accepted forms.

    Examples
    --------
    >>> parse_key("F# minor"), parse_key("Db"), parse_key(7), parse_key("bbm"), parse_key("B")
    ((6, 0), (1, -1), (7, -1), (10, 0), (11, -1))
    """
    text = str(value).strip()
    m = _KEY_RE.match(text)
    mode_word = m.group("mode") if m else ""
    mode = _MODES.get(mode_word if mode_word == "m" else mode_word.lower()) if m else None
    if m and mode_word == "M":  # "AM" is ambiguous; only the lower-case suffix means minor
        mode = None
    if m is not None and mode is not None:
        if m.group("pc") is not None:
            pc = int(m.group("pc"))
            if 0 <= pc < 12:
                return pc, mode
        else:
            acc = m.group("acc")
            pc = _PITCH[m.group("note").lower()] + (1 if acc in ("#", "♯") else -1 if acc in ("b", "♭") else 0)
            return pc % 12, mode
    raise ParameterError(f"key {text!r}: expected a pitch class 0-11 or a name such as C, C#, Db or "
                         f"'F# minor' (mode words: major, maj, minor, min, m)")


def read_label_csv(path) -> dict[str, dict]:
    """Labels of an audio corpus from a CSV file: resolved file path -> {"artist", "genre", "key", "mode"}.

    The file needs a ``path`` column and any of ``artist``, ``genre``, ``key``
    (header names in any case; other columns are ignored; empty cells give no
    label). Paths are taken relative to the CSV file's folder.

    Raises
    ------
    DataError
        Missing file, no ``path`` column, no label column, a bad key, an
        unbalanced quote, or two rows giving one file different labels (the
        message gives the file and line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the label file ({exc.strerror or exc})") from None
    lines = text.splitlines()
    rows = _csv_rows(path, lines)
    header = [h.strip().lower() for h in next(rows, (1, []))[1]]
    if "path" not in header:
        raise DataError(f"{path}: no 'path' column in the header {header}; expected path plus any of "
                        f"{', '.join(LABEL_FIELDS)}")
    fields = [f for f in LABEL_FIELDS if f in header]
    if not fields:
        raise DataError(f"{path}: no label column; expected any of {', '.join(LABEL_FIELDS)} beside 'path'")
    col = {name: header.index(name) for name in ("path", *fields)}
    base = path.resolve().parent
    labels: dict[str, dict] = {}
    line_of: dict[str, int] = {}
    for n, row in rows:
        if not row or not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in col.items()}
        if not cells["path"]:
            raise DataError(f"{path}:{n}: empty path")
        entry: dict = {}
        for name in fields:
            if not cells[name]:
                continue
            if name == "key":
                try:
                    entry["key"], entry["mode"] = parse_key(cells[name])
                except ParameterError as exc:
                    raise DataError(f"{path}:{n}: {exc}") from None
            else:
                entry[name] = cells[name]
        try:
            key = str((base / cells["path"]).resolve())
        except (OSError, ValueError, RuntimeError) as exc:
            raise DataError(f"{path}:{n}: path {cells['path'][:60]!r} is not a usable file name ({exc})") from None
        if key in labels and labels[key] != entry:
            raise DataError(f"{path}:{n}: {cells['path'][:60]!r} also on line {line_of[key]} with other labels "
                            f"({_show(labels[key])} there, {_show(entry)} here); keep one row per file")
        line_of.setdefault(key, n)
        labels[key] = entry
    return labels


def _show(entry: dict) -> str:
    return ", ".join(f"{k}={str(v)[:30]!r}" for k, v in entry.items()) or "no labels"


def _csv_rows(path: Path, lines: list[str]):
    """``(line number, cells)`` of each CSV row; a quoted field may not run past the end of its line.

    Raises DataError naming the file and the line of an unbalanced quote (or any other CSV error), never
    quoting the rest of the file.
    """
    reader = csv.reader(lines, strict=True)
    done = 0
    while True:
        start = done + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num > start:
                raise DataError(f"{path}:{start}: unbalanced quote (a quoted field runs past the end of the line); "
                                f"close the quote or remove it") from None
            raise DataError(f"{path}:{reader.line_num or start}: not valid CSV ({str(exc)[:80]}); check the "
                            f"quotes on that line") from None
        if reader.line_num > start:
            raise DataError(f"{path}:{start}: unbalanced quote (a quoted field runs past the end of the line); "
                            f"close the quote or remove it")
        done = reader.line_num
        yield start, row


def folder_labels(files: Iterable, roots: Iterable, *, field: str = "genre") -> dict[str, dict]:
    """Labels from folder names: the first folder below the extracted folder names ``field``.

    ``ROOT/rock/a.mp3`` and ``ROOT/rock/album/b.mp3`` get ``{field: "rock"}``;
    a file directly in ``ROOT`` gets no label.

    Examples
    --------
    >>> folder_labels(["/m/rock/a.mp3", "/m/b.mp3"], ["/m"])
    {'/m/rock/a.mp3': {'genre': 'rock'}}
    """
    if field not in ("artist", "genre", "key"):
        raise ParameterError(f"folder labels name {field!r}: choose artist, genre or key")
    roots = [Path(r) for r in roots]
    out: dict[str, dict] = {}
    for f in files:
        p = Path(f)
        for root in roots:
            try:
                parts = p.relative_to(root).parts
            except ValueError:
                continue
            if len(parts) >= 2:
                if field == "key":
                    try:
                        k, mode = parse_key(parts[0])
                    except ParameterError as exc:
                        raise DataError(f"{p.parent}: folder name is not a key ({exc})") from None
                    out[str(f)] = {"key": k, "mode": mode}
                else:
                    out[str(f)] = {field: parts[0]}
            break
    return out
