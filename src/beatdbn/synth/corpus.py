"""Generate a synthetic MSD-format demo corpus with learnable structure.

No real music is involved: every track is titled ``synthetic track N`` by
``Synthetic Artist N``. The Echo Nest-like features carry structure at the beat,
bar and phrase scale for the three tasks of Dieleman et al. (2011):

* **genre** -- the 20 MusicBrainz genre tags of the paper (:data:`GENRES`).
  Each genre has a fixed signature: a mean 12-d timbre vector, a timbre accent
  pattern over the beats of a bar (loudness, brightness ...), a segment
  density per beat position, a swing, a loudness arc over the 8-bar phrase, a
  tempo centre and preferred chord progressions.
* **artist** -- artists are nested in genres: each perturbs its genre's
  signature (timbre offset, accents, density, tempo, progressions, metre).
  Track counts per artist are Zipf-like, so "the artists with the most
  tracks" is meaningful. An artist's MusicBrainz tags hold its genre with the
  highest count, a few non-genre tags and sometimes a secondary genre with a
  strictly lower count; about 5 % of artists tie two genres and about 4 % have
  no genre tag.
* **key** -- key 0-11 (uniform) and mode; chroma comes from chords of
  I-IV-V-vi style progressions in that key (a chord per bar or two bars,
  8-bar phrases in an A A B A pattern), a Krumhansl-Kessler key profile, a
  melody note from the scale and noise that grows as ``key_confidence`` falls;
  a low-confidence label is sometimes wrong (a fifth off or the relative
  mode), so selecting high ``key_confidence`` tracks pays, as in the paper.
  Every segment's chroma is divided by its maximum (all in [0, 1], max 1).

Sizes and timing are MSD-like: 70-180 BPM, 200-600 beats (mean ~400),
2-3 segments a beat at jittered onset times (~950 segments), beats starting a
little after 0, time signature mostly 4 (else 3), ``timbre[0]`` ~ 20-55,
segment loudness in negative dB.

Public API: :func:`generate_corpus` (write per-track files in MSD folders),
:func:`iter_corpus` (the same tracks in memory), :func:`make_track` (one quick
track for tests), :data:`GENRES`.

Examples
--------
>>> from beatdbn.synth import make_track
>>> track = make_track(n_beats=64, seed=1)
>>> track.beats_start.shape, track.segments_pitches.shape[1]
((64,), 12)
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from beatdbn.exceptions import ParameterError
from beatdbn.features.msd import Track
from beatdbn.labels import GENRES
from beatdbn.synth.msd_writer import write_track

__all__ = ["generate_corpus", "iter_corpus", "make_track", "GENRES", "OTHER_TAGS"]

#: Non-genre MusicBrainz tags an artist may carry besides its genres.
OTHER_TAGS = (
    "uk", "american", "british", "english", "german", "swedish", "french", "canadian",
    "australian", "80s", "90s", "00s", "singer-songwriter", "female vocalists",
    "male vocalists", "instrumental", "producer",
)  # fmt: skip

_GENRE_SEED = 2011  # genre signatures are fixed: "metal" sounds the same in every corpus
_ID_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
_ID_HEX = np.array(list("0123456789ABCDEF"))
# spread of genre means, of the accent pattern, and of segment noise, per timbre coefficient
_GENRE_SCALE = np.array([2.5, 30, 25, 20, 18, 15, 12, 10, 10, 8, 8, 6], dtype=np.float64)
_ACCENT_SCALE = np.array([2.5, 12, 8, 6, 4, 4, 3, 3, 2, 2, 2, 2], dtype=np.float64)
_NOISE_SCALE = np.array([4, 25, 28, 24, 20, 20, 15, 15, 14, 13, 12, 10], dtype=np.float64)
# how far an artist strays from its genre, and a track from its artist: timbre offset
# (units of _GENRE_SCALE), accent pattern (units of _ACCENT_SCALE), log noise spread
_ARTIST_SPREAD, _TRACK_SPREAD = 0.5, 1.3
_ARTIST_ACCENT, _TRACK_ACCENT = 0.25, 0.5
_GENRE_NOISE, _ARTIST_NOISE, _TRACK_NOISE = 0.2, 0.1, 0.35
_ZIPF_EXPONENT = 0.6  # artist track counts ~ 1 / rank ** 0.6

# Krumhansl-Kessler key profiles, rescaled to [0, 1]
_KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PROFILES = {m: (p - p.min()) / (p.max() - p.min()) for m, p in ((1, _KK_MAJOR), (0, _KK_MINOR))}
_SCALES = {1: np.array([0, 2, 4, 5, 7, 9, 11]), 0: np.array([0, 2, 3, 5, 7, 8, 10])}
# chords as (root above the tonic, third in semitones); mode 1 major, 0 minor
_CHORDS = {
    1: {"I": (0, 4), "ii": (2, 3), "iii": (4, 3), "IV": (5, 4), "V": (7, 4), "vi": (9, 3)},
    0: {"i": (0, 3), "III": (3, 4), "iv": (5, 3), "v": (7, 3), "V": (7, 4), "VI": (8, 4), "VII": (10, 4)},
}
# 8-bar phrases, one chord name a bar (a chord held for two bars is written twice)
_PROGRESSIONS = {
    1: (
        ("I", "V", "vi", "IV", "I", "V", "vi", "IV"),
        ("I", "I", "IV", "IV", "V", "V", "I", "I"),
        ("I", "vi", "IV", "V", "I", "vi", "IV", "V"),
        ("I", "IV", "I", "V", "I", "IV", "V", "I"),
        ("I", "I", "IV", "I", "V", "IV", "I", "V"),
        ("vi", "IV", "I", "V", "vi", "IV", "I", "V"),
        ("I", "iii", "IV", "V", "ii", "V", "I", "I"),
    ),
    0: (
        ("i", "VI", "III", "VII", "i", "VI", "III", "VII"),
        ("i", "iv", "v", "i", "i", "iv", "V", "i"),
        ("i", "i", "iv", "iv", "VI", "VII", "i", "i"),
        ("i", "VII", "VI", "VII", "i", "VII", "VI", "V"),
        ("i", "iv", "VII", "III", "VI", "iv", "V", "i"),
    ),
}
_PHRASE_FORM = np.array([0, 0, 1, 0])  # A A B A, repeated


@dataclass(frozen=True)
class _Style:
    """A genre's or an artist's signature (everything a track is drawn from)."""

    genre: int
    timbre_mean: np.ndarray  # (12,) mean timbre
    accent: np.ndarray  # (4, 12) timbre added on each beat of the bar
    offbeat: np.ndarray  # (12,) timbre added to segments after a beat's first
    noise: np.ndarray  # (12,) segment-to-segment timbre spread
    p_triple: np.ndarray  # (4,) probability of 3 (not 2) segments on each beat of the bar
    swing: float  # onset of the 2nd segment of a 2-segment beat, fraction of the beat
    triplet: bool  # 3-segment beats as triplets (else 0, 1/2, 3/4)
    arc: float  # loudness change (timbre[0]) a bar across the 8-bar phrase
    tempo: float  # tempo centre, BPM
    progressions: dict  # mode -> probabilities over _PROGRESSIONS[mode]
    meter: int = 4


def _genre_styles() -> list[_Style]:
    """The fixed signatures of the 20 genres (drawn from a constant seed)."""
    rng = np.random.default_rng(_GENRE_SEED)
    styles = []
    for g in range(len(GENRES)):
        mean = rng.normal(0.0, _GENRE_SCALE)
        mean[0] = rng.uniform(38.0, 48.0)
        offbeat = rng.normal(0.0, 0.2 * _GENRE_SCALE)
        offbeat[0] = -rng.uniform(1.0, 4.0)
        styles.append(
            _Style(
                genre=g,
                timbre_mean=mean,
                accent=rng.normal(0.0, 1.0, (4, 12)) * _ACCENT_SCALE,
                offbeat=offbeat,
                noise=_NOISE_SCALE * np.exp(rng.normal(0.0, _GENRE_NOISE, 12)),
                p_triple=rng.uniform(0.0, 0.7, 4),
                swing=float(rng.choice([0.5, 0.5, 0.58, 0.66])),
                triplet=bool(rng.random() < 0.5),
                arc=float(rng.normal(0.0, 0.4)),
                tempo=float(rng.uniform(85.0, 160.0)),
                progressions={m: rng.dirichlet(np.full(len(p), 0.5)) for m, p in _PROGRESSIONS.items()},
            )
        )
    return styles


_GENRE_STYLES = _genre_styles()


def _artist_style(genre: int, rng: np.random.Generator) -> _Style:
    """An artist's signature: its genre's, perturbed."""
    base = _GENRE_STYLES[genre]
    flip = rng.random() < 0.2
    return _Style(
        genre=genre,
        timbre_mean=base.timbre_mean + rng.normal(0.0, _ARTIST_SPREAD * _GENRE_SCALE),
        accent=base.accent + rng.normal(0.0, _ARTIST_ACCENT, (4, 12)) * _ACCENT_SCALE,
        offbeat=base.offbeat + rng.normal(0.0, 0.1 * _GENRE_SCALE),
        noise=base.noise * np.exp(rng.normal(0.0, _ARTIST_NOISE, 12)),
        p_triple=np.clip(base.p_triple + rng.normal(0.0, 0.1, 4), 0.02, 0.98),
        swing=float(rng.choice([0.5, 0.58, 0.66])) if flip else base.swing,
        triplet=(not base.triplet) if flip else base.triplet,
        arc=base.arc + float(rng.normal(0.0, 0.15)),
        tempo=float(np.clip(base.tempo * np.exp(rng.normal(0.0, 0.12)), 72.0, 178.0)),
        progressions={
            m: 0.6 * p + 0.4 * rng.dirichlet(np.ones(len(p))) for m, p in base.progressions.items()
        },
        meter=3 if rng.random() < 0.1 else 4,
    )


def _chord_vector(root: int, third: int) -> np.ndarray:
    """Chroma template of a triad: root 1, third 0.75, fifth 0.85."""
    v = np.zeros(12)
    v[root % 12], v[(root + third) % 12], v[(root + 7) % 12] = 1.0, 0.75, 0.85
    return v


def _synth_track(
    style: _Style,
    rng: np.random.Generator,
    *,
    track_id: str,
    song_id: str,
    artist_id: str,
    artist_name: str,
    title: str,
    year: int,
    mbtags: tuple[str, ...],
    mbtags_count: tuple[int, ...],
    n_beats: int | None = None,
    key: int | None = None,
    mode: int | None = None,
    key_confidence: float | None = None,
    tempo: float | None = None,
    time_signature: int | None = None,
    label_noise: bool = True,
) -> Track:
    """Draw one track of an artist (vectorized over beats and segments).

    With ``label_noise``, a track's harmony is, with probability
    ``0.5 * (1 - key_confidence) ** 2``, in a key a fifth away or in the
    relative mode from the labelled one, as automatic key estimates err.
    """
    # --- track-level draws
    key = int(rng.integers(12)) if key is None else int(key)
    mode = int(rng.random() < 0.65) if mode is None else int(mode)
    conf = float(np.clip(rng.beta(1.5, 1.5), 0.001, 0.999)) if key_confidence is None else float(key_confidence)
    mode_conf = float(rng.uniform(0.0, 1.0))
    if tempo is None:
        tempo = float(np.clip(style.tempo * np.exp(rng.normal(0.0, 0.05)), 70.0, 180.0))
    if time_signature is None:
        time_signature = style.meter if rng.random() < 0.95 else 7 - style.meter  # 4 <-> 3
    meter = int(time_signature)
    if n_beats is None:
        n_beats = int(np.clip(round(rng.normal(400.0, 90.0)), 200, 600))
    n_grid = max(n_beats, 16)  # a beatless track still gets segments over 16 virtual beats
    period = 60.0 / tempo

    # --- beats: a steady grid, slightly jittered, starting a little after 0
    beat0 = rng.uniform(0.15, 1.0)
    grid = beat0 + period * np.arange(n_grid) + rng.normal(0.0, 0.01 * period, n_grid)
    spacing = np.diff(grid, append=grid[-1] + period)
    duration = float(grid[-1] + period + rng.uniform(0.5, 3.0))

    # --- segments: 2-3 a beat, density and placement set by the beat of the bar
    pos = np.arange(n_grid) % meter  # beat of the bar
    bar = np.arange(n_grid) // meter
    k = 2 + (rng.random(n_grid) < style.p_triple[pos % 4])
    beat_of_seg = np.repeat(np.arange(n_grid), k)
    j = np.arange(len(beat_of_seg)) - np.repeat(np.cumsum(k) - k, k)  # segment's place in its beat
    fractions = np.array([[0.0, style.swing, 0.0], [0.0, 1 / 3, 2 / 3] if style.triplet else [0.0, 0.5, 0.75]])
    frac = fractions[k[beat_of_seg] - 2, j]
    jitter = np.clip(rng.normal(0.0, 0.02, len(j)), -0.06, 0.06)
    starts = grid[beat_of_seg] + (frac + jitter) * spacing[beat_of_seg]
    seg_start = np.concatenate([[0.0], starts, [grid[-1] + period]])  # lead-in, beats, fade-out
    n_seg = len(seg_start)

    # --- chroma: chords of an A A B A phrase form in the key, key profile, melody, noise
    tonic, tmode = key, mode  # the key the music is in (the label may be wrong)
    if label_noise and rng.random() < 0.5 * (1.0 - conf) ** 2:
        error = int(rng.integers(3))
        if error < 2:  # a fifth up or down
            tonic = (key + (7, 5)[error]) % 12
        else:  # the relative major / minor
            tonic, tmode = (key + (9 if mode else 3)) % 12, 1 - mode
    progs = _PROGRESSIONS[tmode]
    chosen = rng.choice(len(progs), size=2, p=style.progressions[tmode])
    table = _CHORDS[tmode]
    phrase_chords = np.array(
        [[_chord_vector(tonic + table[c][0], table[c][1]) for c in progs[p]] for p in chosen]
    )  # (2 phrase kinds, 8 bars, 12)
    n_bars = int(bar[-1]) + 1
    bar_chroma = phrase_chords[_PHRASE_FORM[(np.arange(n_bars) // 8) % 4], np.arange(n_bars) % 8]
    wrong = rng.random(n_bars) < 0.35 * (1.0 - conf)  # unclear keys stray from the progression
    if wrong.any():
        roots = rng.integers(12, size=int(wrong.sum()))
        thirds = rng.choice([3, 4], size=len(roots))
        bar_chroma[wrong] = np.array([_chord_vector(r, t) for r, t in zip(roots, thirds)])
    seg_bar = bar[beat_of_seg]
    melody = np.zeros((n_seg - 2, 12))
    notes = (tonic + _SCALES[tmode][rng.integers(7, size=n_seg - 2)]) % 12
    melody[np.arange(n_seg - 2), notes] = 0.6 * (rng.random(n_seg - 2) < 0.5)
    noise_amp = 0.2 + 0.8 * (1.0 - conf)
    chroma = np.empty((n_seg, 12))
    chroma[1:-1] = (
        (0.55 + 0.45 * conf) * bar_chroma[seg_bar]
        + 0.25 * np.roll(_PROFILES[tmode], tonic)
        + melody
        + noise_amp * rng.random((n_seg - 2, 12)) ** 2
    )
    chroma[[0, -1]] = rng.random((2, 12)) + 1e-3  # lead-in and fade-out: no harmony
    chroma /= chroma.max(axis=1, keepdims=True)

    # --- timbre: style mean + track offset + bar accents + off-beat colour + phrase arc + noise
    track_mean = style.timbre_mean + rng.normal(0.0, _TRACK_SPREAD * _GENRE_SCALE)
    track_mean[0] = min(track_mean[0], 51.0)  # MSD loudness coefficients stay below ~55
    accent = style.accent + rng.normal(0.0, _TRACK_ACCENT, (4, 12)) * _ACCENT_SCALE
    noise = style.noise * np.exp(rng.normal(0.0, _TRACK_NOISE, 12))
    section_b = rng.normal(0.0, 0.15 * _GENRE_SCALE)  # the B phrase sounds a little different
    seg_phrase_kind = _PHRASE_FORM[(seg_bar // 8) % 4]
    arc = np.zeros(12)
    arc[0], arc[1] = style.arc, 3.0 * style.arc
    timbre = np.empty((n_seg, 12))
    timbre[1:-1] = (
        track_mean
        + accent[pos[beat_of_seg] % 4]
        + (j > 0)[:, None] * style.offbeat
        + (seg_bar % 8)[:, None] * arc
        + seg_phrase_kind[:, None] * section_b
        + rng.normal(0.0, 1.0, (n_seg - 2, 12)) * noise
    )
    timbre[:, 0] = np.clip(timbre[:, 0], 0.0, 58.0)
    timbre[[0, -1]] = rng.normal(0.0, 1.0, (2, 12)) * _NOISE_SCALE
    timbre[[0, -1], 0] = rng.uniform(0.0, 15.0, 2)
    loudness = np.clip(timbre[:, 0] - 58.0 + rng.normal(0.0, 1.5, n_seg), -60.0, -0.5)
    loudness[[0, -1]] = -60.0

    return Track(
        track_id=track_id,
        song_id=song_id,
        artist_id=artist_id,
        artist_name=artist_name,
        title=title,
        duration=duration,
        tempo=float(tempo),
        time_signature=meter,
        key=key,
        key_confidence=conf,
        mode=mode,
        mode_confidence=mode_conf,
        year=int(year),
        mbtags=tuple(mbtags),
        mbtags_count=tuple(int(c) for c in mbtags_count),
        segments_start=seg_start,
        segments_pitches=chroma,
        segments_timbre=timbre,
        segments_loudness_max=loudness,
        beats_start=grid[:n_beats].copy(),
    )


def _tag_kinds(n_artists: int, rng: np.random.Generator) -> np.ndarray:
    """Per artist: 0 a clear genre, 1 two genres tied, 2 no genre tag.

    5 % of artists tie and 4 % have no genre (at least one of each from 20
    artists on), placed at random ranks.
    """
    n_tie = max(int(n_artists >= 20), round(0.05 * n_artists))
    n_none = max(int(n_artists >= 20), round(0.04 * n_artists))
    kinds = np.zeros(n_artists, dtype=int)
    kinds[:n_tie], kinds[n_tie : n_tie + n_none] = 1, 2
    return rng.permutation(kinds)


def _artist_tags(genre: int, kind: int, rng: np.random.Generator) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """An artist's MusicBrainz tags and counts (shuffled, as in the MSD).

    ``kind`` 0: the genre with the highest count, 0-3 non-genre tags and, a
    third of the time, a secondary genre, all with strictly lower counts;
    1: the same, but a second genre ties with the first (ambiguous);
    2: non-genre tags only (possibly none).
    """
    others = [str(t) for t in rng.choice(OTHER_TAGS, size=int(rng.integers(0, 4)), replace=False)]
    if kind == 2:
        tags = [(t, int(rng.integers(1, 6))) for t in others]
    else:
        top = int(rng.integers(2, 15))
        tags = [(GENRES[genre], top)] + [(t, int(rng.integers(1, top))) for t in others]
        second = GENRES[int(rng.choice([g for g in range(len(GENRES)) if g != genre]))]
        if kind == 1:
            tags.append((second, top))
        elif rng.random() < 0.35:
            tags.append((second, int(rng.integers(1, top))))
    order = rng.permutation(len(tags))
    return tuple(tags[i][0] for i in order), tuple(tags[i][1] for i in order)


def _msd_ids(rng: np.random.Generator, prefix: str, n: int, used: set) -> list[str]:
    """``n`` new unique MSD-style ids: ``prefix`` + 5 letters + 11 hex digits.

    As the MSD's ``TRAXLZU12903D05F94``, ``SOCWJDB12A58A776AF``, ``ARWPYQI1187FB4D55A``.
    """
    out = []
    while len(out) < n:
        ident = prefix + "".join(rng.choice(_ID_LETTERS, 5)) + "".join(rng.choice(_ID_HEX, 11))
        if ident not in used:
            used.add(ident)
            out.append(ident)
    return out


def _check_counts(n_tracks, n_artists) -> int:
    if isinstance(n_tracks, bool) or not isinstance(n_tracks, (int, np.integer)) or n_tracks < 1:
        raise ParameterError(f"n_tracks={n_tracks!r}: give a whole number of tracks, at least 1")
    if n_artists is None:
        return max(1, int(n_tracks) // 25)
    if isinstance(n_artists, bool) or not isinstance(n_artists, (int, np.integer)) or not 1 <= n_artists <= n_tracks:
        raise ParameterError(f"n_artists={n_artists!r}: give a whole number from 1 to n_tracks={n_tracks}")
    return int(n_artists)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed={seed!r}: give a non-negative integer")
    return int(seed)


def _corpus_items(
    n_tracks: int, *, seed: int, n_artists: int | None, start: int = 0, stop: int | None = None
) -> Iterator[tuple[Track, dict]]:
    """Yield (track, extra MSD fields) for tracks ``start:stop`` of the corpus, in order.

    The artist plan is drawn first from ``seed`` alone, and track ``i`` from its
    own generator ``default_rng([seed, 1, i])``, so any range of tracks can be
    drawn on its own (in a worker process) and comes out identical.
    """
    n_artists = _check_counts(n_tracks, n_artists)
    seed = _check_seed(seed)
    rng = np.random.default_rng([seed, 0])
    # artists: Zipf-like track counts (at least 1 each); genres dealt greedily, the
    # next most prolific artist to the genre with the fewest tracks so far, so the
    # genres stay balanced in tracks while each gets prolific and rare artists
    weights = 1.0 / np.arange(1, n_artists + 1) ** _ZIPF_EXPONENT
    counts = 1 + rng.multinomial(n_tracks - n_artists, weights / weights.sum())
    genre_order = rng.permutation(len(GENRES))
    totals = np.zeros(len(GENRES), dtype=np.int64)
    genres = np.empty(n_artists, dtype=np.int64)
    for a in np.argsort(-counts, kind="stable"):
        g = genre_order[int(np.argmin(totals[genre_order]))]
        genres[a], totals[g] = g, totals[g] + counts[a]
    styles = [_artist_style(int(g), rng) for g in genres]
    kinds = _tag_kinds(n_artists, rng)
    tags = [_artist_tags(int(g), int(kind), rng) for g, kind in zip(genres, kinds)]
    used: set = set()
    artist_ids = _msd_ids(rng, "AR", n_artists, used)
    years = rng.integers(1960, 2003, n_artists)
    artist_of_track = rng.permutation(np.repeat(np.arange(n_artists), counts))
    track_ids = _msd_ids(rng, "TR", n_tracks, used)
    song_ids = _msd_ids(rng, "SO", n_tracks, used)
    for i in range(start, n_tracks if stop is None else stop):
        a = int(artist_of_track[i])
        track_rng = np.random.default_rng([seed, 1, i])
        track = _synth_track(
            styles[a],
            track_rng,
            track_id=track_ids[i],
            song_id=song_ids[i],
            artist_id=artist_ids[a],
            artist_name=f"Synthetic Artist {a + 1}",
            title=f"synthetic track {i + 1}",
            year=min(2010, int(years[a]) + int(track_rng.integers(0, 12))),
            mbtags=tags[a][0],
            mbtags_count=tags[a][1],
        )
        peers = [artist_ids[b] for b in np.flatnonzero(genres == genres[a]) if b != a][:10]
        yield track, {"similar_artists": peers, "release": f"synthetic release {a + 1}"}


def _track_path(out: Path, track_id: str) -> Path:
    """Where the MSD keeps a track: ``out/A/B/C/TRABC....h5``."""
    return out / track_id[2] / track_id[3] / track_id[4] / f"{track_id}.h5"


def _write_range(out: str, n_tracks: int, seed: int, n_artists: int | None, start: int, stop: int) -> list[str]:
    """Draw and write tracks ``start:stop`` (a worker's share); their paths."""
    paths = []
    for track, extra in _corpus_items(n_tracks, seed=seed, n_artists=n_artists, start=start, stop=stop):
        paths.append(str(write_track(_track_path(Path(out), track.track_id), track, **extra)))
    return paths


def iter_corpus(n_tracks: int, *, seed: int = 0, n_artists: int | None = None) -> Iterator[Track]:
    """Yield the tracks :func:`generate_corpus` would write, without writing them.

    Parameters and tracks are exactly those of :func:`generate_corpus`.

    Examples
    --------
    >>> tracks = list(iter_corpus(3, seed=0))
    >>> [t.title for t in tracks]
    ['synthetic track 1', 'synthetic track 2', 'synthetic track 3']
    """
    for track, _ in _corpus_items(n_tracks, seed=seed, n_artists=n_artists):
        yield track


def generate_corpus(
    out_dir,
    n_tracks: int,
    *,
    seed: int = 0,
    n_artists: int | None = None,
    progress: Callable[[int], None] | None = None,
    n_jobs: int = 1,
) -> list[Path]:
    """Write a synthetic corpus of MSD per-track files.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Root folder; track ``TRABC...`` goes to ``out_dir/A/B/C/TRABC....h5``
        as in the MSD. Existing files of the same name are replaced.
    n_tracks : int
        Number of tracks (at least 1).
    seed : int
        The corpus is a deterministic function of ``(n_tracks, seed, n_artists)``
        (the files are byte-identical from run to run, whatever ``n_jobs``).
    n_artists : int or None
        Number of artists (1 to ``n_tracks``); default ``max(1, n_tracks // 25)``.
        Genres are dealt to artists round-robin, track counts are Zipf-like.
    progress : callable or None
        Called as ``progress(n_done)`` as tracks are written.
    n_jobs : int
        Worker processes (writing HDF5 is the slow part, ~15 ms a track);
        ``1`` writes in this process. Workers are forked on Linux; elsewhere
        they are spawned, and the calling script needs the usual
        ``if __name__ == "__main__":`` guard.

    Returns
    -------
    paths : list of pathlib.Path
        The files written, in track order.

    Raises
    ------
    ParameterError
        ``n_tracks`` < 1, ``n_artists`` out of range, a negative seed,
        ``n_jobs`` < 1, or ``out_dir`` is a file.

    Examples
    --------
    >>> paths = generate_corpus("/tmp/demo_msd", 100, seed=0)  # doctest: +SKIP
    >>> paths[0].relative_to("/tmp/demo_msd").parts[:3]       # doctest: +SKIP
    ('R', 'J', 'N')
    """
    n_artists = _check_counts(n_tracks, n_artists)
    seed = _check_seed(seed)
    out = Path(os.fspath(out_dir))
    if out.exists() and not out.is_dir():
        raise ParameterError(f"out_dir={str(out)!r} is a file; give a folder for the corpus")
    if progress is not None and not callable(progress):
        raise ParameterError(f"progress={progress!r}: give a callable(n_done) or None")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ParameterError(f"n_jobs={n_jobs!r}: give a number of processes, at least 1")
    if n_jobs == 1 or n_tracks <= 25:
        paths = []
        for track, extra in _corpus_items(n_tracks, seed=seed, n_artists=n_artists):
            paths.append(write_track(_track_path(out, track.track_id), track, **extra))
            if progress is not None:
                progress(len(paths))
        return paths

    chunk = 25
    ranges = [(i, min(i + chunk, n_tracks)) for i in range(0, n_tracks, chunk)]
    paths = []
    # workers only run NumPy and h5py on files of their own, so forking is safe where fork exists
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(max_workers=int(n_jobs), mp_context=context) as pool:
        jobs = [pool.submit(_write_range, str(out), n_tracks, seed, n_artists, a, b) for a, b in ranges]
        for job in jobs:  # in order, so progress counts a prefix of the corpus
            paths.extend(Path(p) for p in job.result())
            if progress is not None:
                progress(len(paths))
    return paths


def make_track(
    *,
    track_id: str = "TRSYNTH0000000001",
    n_beats: int = 400,
    seed: int = 0,
    genre: str | None = None,
    **overrides,
) -> Track:
    """One synthetic track, quickly, for tests.

    Parameters
    ----------
    track_id : str
        The track id.
    n_beats : int
        Number of beats (0 gives a beatless track that still has segments).
    seed : int
        Seed of everything drawn.
    genre : str or None
        One of :data:`GENRES` (default: drawn from the seed); the track's artist
        is tagged with it.
    **overrides
        Any :class:`~beatdbn.features.msd.Track` field. ``key``, ``mode``,
        ``key_confidence``, ``tempo`` and ``time_signature`` steer generation
        (the arrays follow them); every other field simply replaces the
        generated value, e.g. ``beats_start=np.array([])``.

    Returns
    -------
    track : Track

    Raises
    ------
    ParameterError
        An unknown genre or override name, a negative ``n_beats`` or seed.

    Examples
    --------
    >>> make_track(n_beats=32, key=7, mode=1).key
    7
    """
    if isinstance(n_beats, bool) or not isinstance(n_beats, (int, np.integer)) or n_beats < 0:
        raise ParameterError(f"n_beats={n_beats!r}: give a non-negative whole number")
    seed = _check_seed(seed)
    fields = {f.name for f in dataclasses.fields(Track)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ParameterError(f"make_track: {unknown[0]!r} is not a Track field (fields: {', '.join(sorted(fields))})")
    if genre is not None and genre not in GENRES:
        raise ParameterError(f"genre={genre!r} is not one of the 20 genres: {', '.join(GENRES)}")
    rng = np.random.default_rng([seed, 2])
    g = GENRES.index(genre) if genre is not None else int(rng.integers(len(GENRES)))
    steer = {name: overrides.pop(name) for name in ("key", "mode", "key_confidence", "tempo", "time_signature")
             if name in overrides}  # fmt: skip
    if "tempo" in steer and not float(steer["tempo"]) > 0:
        raise ParameterError(f"tempo={steer['tempo']!r}: give a positive BPM")
    if "time_signature" in steer and int(steer["time_signature"]) < 1:
        raise ParameterError(f"time_signature={steer['time_signature']!r}: give at least 1")
    track = _synth_track(
        _artist_style(g, rng),
        rng,
        track_id=track_id,
        song_id="SOSYNTH0000000001",
        artist_id="ARSYNTH0000000001",
        artist_name="Synthetic Artist 1",
        title="synthetic track 1",
        year=2000,
        mbtags=(GENRES[g], "instrumental"),
        mbtags_count=(5, 1),
        n_beats=int(n_beats),
        label_noise=False,
        **steer,
    )
    return dataclasses.replace(track, **overrides) if overrides else track
