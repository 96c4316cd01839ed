"""Artist recognition (the paper's section 4): the artists with the most tracks, the same number of each.

``artists`` (50) artists with the most tracks, ``per_artist`` (100) tracks
each, drawn at random (seeded) from each artist's tracks. Class names are
artist names, made unique by artist id where two artists share one. Audio
files without an artist label are left out. At ``scale='auto'``: the k
artists with the most tracks and p tracks each (p: the k-th artist's count)
that give the most tracks k * p (ties: more per artist), each artist with at
least 20 tracks (``--min-test-per-class`` 2 test tracks at 80/10/10; ``--min-per-class`` overrides it);
``scale='auto-all-classes'`` (the earlier rule) needs 2 (one to train on, one held out).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from beatdbn.tasks.registry import PaperColumn, TaskConfig, TaskOption, TaskSpec
from beatdbn.tasks.selection import Task, TaskScaleError, assemble, auto_report, choose_scale, sample, scale_text


def _auto_artists(ranked: list[tuple[str, int]], config: TaskConfig,
                  report: dict | None = None) -> tuple[int, int] | None:
    """(artists, tracks each) of the most tracks in all, at most the caps (:func:`choose_scale`); ties go to
    more tracks per artist. Each artist needs :meth:`TaskConfig.auto_floor` tracks (``'auto'``, also for the
    suggestion at the paper's scale) or :meth:`TaskConfig.min_tracks` (``'auto-all-classes'``, the earlier
    rule). None: not two artists."""
    floor = config.min_tracks("artist") if config.scale == "auto-all-classes" else config.auto_floor("artist")
    best = choose_scale(ranked, most_classes=config.artists, cap=config.per_artist, floor=floor, more_classes=False)
    if best is None:
        return None
    below = {a: n for a, n in ranked if n < floor}
    auto_report(report, config, floor=floor, classes=best[0], per_class=best[1], rejected=best[2], below=below)
    return best[0], best[1]


def build(rows: dict, config: TaskConfig, context: dict) -> Task:
    by_artist: dict[str, list[str]] = defaultdict(list)
    names: dict[str, str] = {}
    for tid, aid, aname in zip(rows["track_id"], rows["artist_id"], rows["artist_name"]):
        if not aid:  # an audio file with no artist label
            continue
        by_artist[aid].append(tid)
        names.setdefault(aid, aname or aid)
    ranked = sorted(by_artist, key=lambda a: (-len(by_artist[a]), a))
    counts = [len(by_artist[a]) for a in ranked]
    report = context["stats"].setdefault("artist", {}).setdefault("auto", {})
    auto = _auto_artists([(names[a], len(by_artist[a])) for a in ranked], config, report)
    if not report:
        del context["stats"]["artist"]["auto"]
    if config.is_auto:
        if auto is None:
            floor = config.min_tracks("artist") if config.scale == "auto-all-classes" else config.auto_floor("artist")
            raise TaskScaleError(
                f"artist task: --scale {config.scale} needs two artists with at least {floor} tracks "
                f"each, but the corpus has {len(ranked)} artists (the largest have "
                f"{', '.join(map(str, counts[:5])) or 'no'} tracks); lower --min-per-class or --min-test-per-class, or add tracks")
        n_artists, per_artist = auto
    else:
        n_artists, per_artist = config.artists, config.per_artist
        enough = sum(1 for c in counts if c >= per_artist)
        if enough < n_artists:
            k = min(n_artists, len(ranked))
            nth = counts[k - 1] if k else 0
            options = []
            if enough >= 2:
                options.append(f"--artists {enough} --per-artist {per_artist}")
            if k >= 2 and nth >= config.min_tracks("artist"):  # a class must still split 80/10/10
                options.append(f"--artists {k} --per-artist {nth}")
            if auto is not None:
                options.append(f"--scale auto (it would choose {scale_text(*auto)}: the {auto[0]} artists with "
                               f"the most tracks, {auto[1]} each)")
            raise TaskScaleError(
                f"artist task: {n_artists} artists x {per_artist} tracks asked, but only {enough} "
                f"artists have {per_artist} tracks ({len(ranked)} artists in all; the largest have "
                f"{', '.join(map(str, counts[:5]))} tracks). "
                + (f"The corpus supports {' or '.join(options)}" if options else "The corpus is too small for this task")
            )
    top = ranked[:n_artists]
    label_of = {}
    name_counts = Counter(names[a] for a in top)
    for a in top:  # class names are artist names, made unique by id where two artists share one
        label_of[a] = names[a] if name_counts[names[a]] == 1 else f"{names[a]} ({a})"
    chosen = {label_of[a]: sample(by_artist[a], per_artist, config, "artist", a) for a in top}
    return assemble("artist", chosen, config, [label_of[a] for a in top], per_class=per_artist)


TASK = TaskSpec(
    name="artist",
    title="artist",
    order=20,
    build=build,
    cap=lambda c: (c.artists, c.per_artist),
    options=(TaskOption("artists", 50, "Artist task: number of artists (those with the most tracks); a cap with "
                                       "--scale auto.", minimum=1),
             TaskOption("per_artist", 100, "Artist task: tracks per artist; a cap with --scale auto.", minimum=1)),
    columns=("artist_id", "artist_name"),
    help="artist recognition: the artists with the most tracks",
    paper=PaperColumn(classes=50, per_class=100, train_tracks=4000, results={
        ("naive_bayes", "final"): (0.0680, None), ("logreg", "final"): (0.3213, 5e-5),
        ("convmlp_random", "final"): (0.3434, 0.05), ("convmlp_pretrained", "final"): (0.3574, 0.05),
        ("convmlp_random", "early"): (0.3394, 0.05), ("convmlp_pretrained", "early"): (0.3554, 0.05)}),
    min_per_class=2,
    unit="tracks per artist",
)
