"""Genre recognition (the paper's section 4): 20 MusicBrainz genres, or the genres of a label file.

Labels: the 20 MusicBrainz genre tags (see :mod:`beatdbn.labels` for the
rule), or the genres of a tagtraum file (``genre_labels``), or, for an audio
corpus, the ``genre`` labels given at extraction (used as they are). A track
given one genre at extraction (labels CSV, folder names) and another by the
tagtraum file is an error naming the tracks (no silent choice); a tagtraum
file none of whose track ids is in the store says so.
``per_genre`` (250) tracks each, drawn at random (seeded). ``genres`` picks
classes: all (default), ``'top:N'`` (the N largest) or a list. With
``artist_filter`` every artist's tracks land in one split.
"""

from __future__ import annotations

from collections import Counter

from beatdbn.exceptions import DataError, ParameterError
from beatdbn.labels import GENRES, genre_from_mbtags, normalize_tag
from beatdbn.tasks.registry import PaperColumn, TaskConfig, TaskOption, TaskSpec
from beatdbn.tasks.selection import Task, TaskScaleError, auto_balanced, balanced_task, try_auto


def parse_genres(spec: str) -> tuple[str, object]:
    """``('all', None)``, ``('top', N)`` or ``('names', [...])`` from a ``--genres`` value."""
    spec = (spec or "").strip()
    if not spec:
        return "all", None
    if spec.lower().startswith("top:"):
        value = spec[4:].strip()
        if not value.isdigit() or int(value) < 2:
            raise ParameterError(f"--genres {spec!r}: 'top:N' needs a whole number N >= 2, e.g. top:10")
        return "top", int(value)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if len(names) < 2:
        raise ParameterError(f"--genres {spec!r}: name two or more genres separated by commas "
                             f"(e.g. rock,pop,jazz), or use top:N")
    return "names", names


def _pick_genres(counts: Counter, classes: list[str], config: TaskConfig, source: str) -> list[str]:
    """The genre classes ``--genres`` names (all, the N largest, or a list), in ``classes`` order."""
    kind, value = parse_genres(config.genres)
    if kind == "all":
        return list(classes)
    if kind == "top":
        ranked = sorted(classes, key=lambda c: (-counts.get(c, 0), c))[:value]
        return [c for c in classes if c in ranked]
    lookup = {normalize_tag(c): c for c in classes}
    unknown = [n for n in value if normalize_tag(n) not in lookup]
    if unknown:
        listing = ", ".join(f"{c} ({counts.get(c, 0)})" for c in sorted(classes, key=lambda c: (-counts.get(c, 0), c)))
        raise ParameterError(f"--genres: {', '.join(repr(u) for u in unknown)} not among the {source} genre "
                             f"classes; available (tracks in this corpus): {listing}")
    wanted = {lookup[normalize_tag(n)] for n in value}
    return [c for c in classes if c in wanted]


def _refuse_conflicts(rows: dict, external: dict[str, str]) -> None:
    """DataError naming the tracks whose genre given at extraction differs from the genre label file's."""
    clash = [f"{t}: {g.strip()!r} (given at extraction) vs {external[t]!r} (genre label file)"
             for t, g in zip(rows["track_id"], rows["genre"]) if g and g.strip() and t in external
             and normalize_tag(g) != normalize_tag(external[t])]
    if clash:
        more = f" and {len(clash) - 3} more" if len(clash) > 3 else ""
        raise DataError(f"genre labels conflict for {len(clash)} tracks: {'; '.join(clash[:3])}{more}; correct one "
                        f"of them (a corrected labels CSV is applied by rerunning `beatdbn extract --labels`), "
                        f"or leave out --genre-labels")


def _genre_labels(rows: dict, tagtraum: dict[str, str] | None) -> tuple[dict[str, str], list[str], dict]:
    stats = {"ambiguous": 0, "untagged": 0}
    if tagtraum is not None:
        labels = {t: tagtraum[t] for t in rows["track_id"] if t in tagtraum}
        _refuse_conflicts(rows, labels)
        if not labels and tagtraum:
            raise TaskScaleError(f"genre task: none of the {len(tagtraum):,} track ids of the genre label file is in "
                                 f"the store (e.g. {next(iter(tagtraum))}); was it written for another corpus?")
        stats["untagged"] = len(rows["track_id"]) - len(labels)
        stats["label_ids_not_in_corpus"] = len(set(tagtraum) - set(rows["track_id"]))
        return labels, sorted(set(tagtraum.values())), stats
    given = {t: g.strip() for t, g in zip(rows["track_id"], rows["genre"]) if g and g.strip()}
    if given:  # genre labels given with audio: used as they are
        stats.update(untagged=len(rows["track_id"]) - len(given), from_labels=True)
        return given, sorted(set(given.values())), stats
    labels = {}
    for tid, tags, counts in zip(rows["track_id"], rows["mbtags"], rows["mbtags_count"]):
        genre = genre_from_mbtags(tags or [], counts or [])
        if genre is not None:
            labels[tid] = genre
        elif any(normalize_tag(t) in GENRES for t in tags or []):
            stats["ambiguous"] += 1
        else:
            stats["untagged"] += 1
    return labels, list(GENRES), stats


def build(rows: dict, config: TaskConfig, context: dict) -> Task:
    external = context.get("genre_labels")
    labels, classes, gstats = _genre_labels(rows, external)
    source = "tagtraum" if external else "labels" if gstats.pop("from_labels", False) else "musicbrainz"
    context["stats"]["genre"] = dict(gstats, labelled=len(labels), source=source)
    counts = Counter(labels.values())
    classes = _pick_genres(counts, classes, config, source)
    if len(classes) < 2:
        have = ", ".join(f"{c} ({counts.get(c, 0)})" for c in classes) or "none"
        raise TaskScaleError(f"genre task: the {source} labels give {len(classes)} genre(s) among the "
                             f"{len(labels):,} labelled tracks ({have}); two or more are needed")
    pick_all = parse_genres(config.genres)[0] != "all"
    auto, why = try_auto(lambda: auto_balanced("genre", counts, classes, config, pick_all,
                                               fewer_hint="; choose fewer genres with --genres top:N or a list",
                                               report=context["stats"]["genre"].setdefault("auto", {})))
    artist_of = dict(zip(rows["track_id"], rows["artist_id"])) if config.artist_filter else None
    return balanced_task("genre", labels, classes, config.per_genre, "--per-genre", config,
                         auto=auto, auto_error=why, artist_of=artist_of)


TASK = TaskSpec(
    name="genre",
    title="genre",
    order=10,
    build=build,
    cap=lambda c: (20, c.per_genre),
    options=(
        TaskOption("per_genre", 250, "Genre task: tracks per genre; a cap with --scale auto.", minimum=1),
        TaskOption("genres", "", "Genre classes: all (default), 'top:N' (the N largest) or a list 'rock,pop,jazz'.",
                   check=parse_genres),
        TaskOption("artist_filter", False, "Genre task: all of an artist's tracks in one split (against the "
                                           "artist effect)."),
    ),
    columns=("mbtags", "mbtags_count", "genre", "artist_id"),
    help="genre recognition: MusicBrainz tags, tagtraum labels or given labels",
    paper=PaperColumn(classes=20, per_class=250, train_tracks=4000, results={
        ("naive_bayes", "final"): (0.1002, None), ("logreg", "final"): (0.2590, 5e-6),
        ("convmlp_random", "final"): (0.2952, 0.005), ("convmlp_pretrained", "final"): (0.2912, 0.005),
        ("convmlp_random", "early"): (0.2490, 0.05), ("convmlp_pretrained", "early"): (0.2731, 0.005)}),
    unit="tracks per genre",
)
