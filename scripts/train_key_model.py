"""Build the key model shipped in ``beatdbn/pretrained/key_audio`` (``make model``): 24 keys and "no key".

What flows where (every step resumes: it skips what its output already holds)::

    corpus/additive  N pieces of beatdbn.synth.audio_keys (seed S), additive instruments
    corpus/gm        the same N pieces as General MIDI through FluidSynth and the TRAIN soundfonts
    corpus/nokey     M clips without a key (beatdbn.synth.no_key: speech, noise, drums, tones, atonal, silence)
    music/           real recorded music from Debian packages (unlabelled; pretraining only)
        -> store/    one feature store (beatdbn extract, labels from corpus/labels.csv)
        -> tasks/key one split by PIECE (a piece's two renderings share a split), 80/10/10:
                     classes "C major" .. "B minor" + "no key"
        -> dbn-<source>/  conv DBNs pretrained on the training split ("synth") or on the real music ("real")
        -> runs/<init>-seed<k>/  finetuned conv MLPs (beatdbn recipe, transposition augmentation)
        -> the comparison (--compare): random / synth / real starts over seeds, on valid and held-out
        -> the shipped model: the best start, calibrated on valid (temperature, "no key" threshold)
    ends-s<E>/       a third seed (3; 600 pieces, additive and GM through the TRAIN soundfonts): the weights of
                     beatdbn.models.key_ends (the chords where a recording sets out and comes to rest, added to
                     the network's answer), fitted by maximum likelihood
    holdout-s<H>/    another seed (2; 600 pieces): additive, GM through the HELD-OUT soundfont (never trained on),
                     no-key clips -> holdout-s<H>-store/
        -> figures, with the ends (the network alone beside them): tonic and 24-key accuracy, MIREX weighted
           score (with 95 % piece-bootstrap intervals: a piece's two renderings are resampled together),
           refusals, ECE, reliability diagram, figures by the
           style of the piece, Essentia's KeyExtractor on the same files when it is installed (a baseline only),
           and the real recordings of --recordings (when present)

Nothing here is the music21 corpus or the FluidR3 soundfont: both are reserved for evaluation
(:func:`beatdbn.synth.gm.check_soundfont` refuses FluidR3).

Usage::

    python scripts/train_key_model.py                     # the shipped settings (make model)
    python scripts/train_key_model.py --work /tmp/km --out /tmp/km/model --pieces 48 --no-key 24 \\
        --holdout-pieces 24 --holdout-no-key 12 --ends-pieces 24 --compare-epochs 4 --final-epochs 0 \\
        --compare-seeds 0
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "beatdbn" / "pretrained" / "key_audio"
TRAIN_FONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/sf_GMbank.sf2")
HOLDOUT_FONT = "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
MUSIC_DIRS = ("/usr/share/games/singularity/music", "/usr/share/hyperrogue/music")
RECORDINGS = ROOT.parent / "shared" / "data" / "audio"
# the key of each real recording in ../shared/data/audio by its audio (issue 22); None: no key
RECORDING_KEYS = {"Hungarian_Dance": "G minor", "Lets_Go_Fishin": "A# major", "Sugar_Plum_Fairy": "E minor",
                  "Vibe_Ace": "E major", "solo-trumpet": "F", "198-209-0000": None}


def _step(log: list, what: str, fn, *args, **kw):
    """Run one step, print and record its wall time."""
    print(f"== {what}", flush=True)
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    log.append({"step": what, "seconds": round(time.perf_counter() - t0, 1)})
    print(f"   {what}: {log[-1]['seconds']} s", flush=True)
    return out


def build_corpus(root: Path, *, pieces: int, no_key: int, seed: int, fonts, workers: int) -> Path:
    """The three corpora under ``root`` and one ``root/labels.csv`` (key per tonal file)."""
    from beatdbn.synth.audio_keys import write_corpus
    from beatdbn.synth.gm import write_gm_corpus
    from beatdbn.synth.no_key import write_no_key_corpus

    labels = root / "labels.csv"
    if labels.is_file() and len(labels.read_text().splitlines()) - 1 == 2 * pieces and (
            not no_key or len(list((root / "nokey").rglob("nokey-*"))) >= no_key):
        return labels  # complete; a larger --pieces or --no-key renders only the files missing
    rows = []
    if pieces:
        lab = write_corpus(root / "additive", pieces=pieces, seed=seed, workers=workers)
        rows += [("additive/" + r[0], r[1]) for r in list(csv.reader(lab.open()))[1:]]
        lab = write_gm_corpus(root / "gm", pieces=pieces, seed=seed, soundfonts=fonts, workers=workers)
        rows += [("gm/" + r[0], r[1]) for r in list(csv.reader(lab.open()))[1:]]
    if no_key:
        write_no_key_corpus(root / "nokey", clips=no_key, seed=seed, workers=workers, soundfonts=fonts)
    with (root / "labels.csv.tmp").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "key"])
        w.writerows(rows)
    (root / "labels.csv.tmp").replace(root / "labels.csv")
    return root / "labels.csv"


def extract(folder: Path, store: Path, labels: Path | None, workers: int) -> None:
    """``beatdbn extract`` (resumes: files already in the store are skipped)."""
    cmd = [sys.executable, "-m", "beatdbn", "extract", str(folder), "--out", str(store), "--workers", str(workers)]
    if labels is not None:
        cmd += ["--labels", str(labels)]
    subprocess.run(cmd, check=True)


def link_music(music: Path) -> int:
    """Symlink the real recordings of :data:`MUSIC_DIRS` into ``music`` (what is installed); their count."""
    music.mkdir(parents=True, exist_ok=True)
    n = 0
    for d in MUSIC_DIRS:
        for f in sorted(Path(d).rglob("*")) if Path(d).is_dir() else []:
            if f.suffix.lower() in (".ogg", ".mp3", ".flac", ".wav") and f.is_file():
                link = music / f"{Path(d).parts[-2]}-{f.name.replace(' ', '_')}"
                if not link.exists():
                    link.symlink_to(f)
                n += 1
    return n


def track_table(store: Path) -> list[dict]:
    """One row per track: ``track_id``, ``source`` (path), ``label`` (a KEY_NAMES_24 name, NO_KEY, or None
    for unlabelled music), ``group`` (the piece or clip it renders: a split never separates a group)."""
    import re

    from beatdbn.labels import KEY_NAMES, KEY_NAMES_24, NO_KEY
    from beatdbn.store.reader import FeatureStore

    meta = FeatureStore.open(store).metadata.to_pydict()
    rows = []
    for i, tid in enumerate(meta["track_id"]):
        src = str(meta["source"][i])
        m = re.search(r"(piece|gm|nokey)-(\d+)-(\d+)", Path(src).name)
        if m is None:
            rows.append({"track_id": tid, "source": src, "label": None, "group": None})
            continue
        kind, seed, index = m.group(1), int(m.group(2)), int(m.group(3))
        if kind == "nokey":
            label, group = NO_KEY, f"nokey-{seed}-{index}"
        else:
            key, mode = meta["key"][i], meta["mode"][i]
            label = KEY_NAMES_24[key + 12 * (mode == 0)] if key is not None and 0 <= key < 12 and mode in (0, 1) \
                else None
            group = f"piece-{seed}-{index}"
        rows.append({"track_id": tid, "source": src, "label": label, "group": group})
    assert all(r["label"] is None or r["label"] in KEY_NAMES_24 or r["label"] == NO_KEY for r in rows), KEY_NAMES
    return rows


def write_task(rows: list[dict], tasks: Path, seed: int) -> dict:
    """``tasks/key`` (24 keys + no key), split 80/10/10 by piece; ``tasks/exclude.txt`` = valid + test."""
    import numpy as np

    from beatdbn.labels import KEY_NAMES_24, NO_KEY

    classes = list(KEY_NAMES_24) + [NO_KEY]
    groups = sorted({r["group"] for r in rows if r["label"] is not None})
    rng = np.random.default_rng([seed, 4242])
    order = rng.permutation(len(groups))
    split_of = {}
    for rank, gi in enumerate(order):
        split_of[groups[gi]] = "valid" if rank % 10 == 8 else "test" if rank % 10 == 9 else "train"
    d = tasks / "key"
    d.mkdir(parents=True, exist_ok=True)
    (d / "classes.txt").write_text("\n".join(classes) + "\n")
    counts = {}
    for split in ("train", "valid", "test"):
        pairs = [(r["track_id"], r["label"]) for r in rows if r["label"] is not None and split_of[r["group"]] == split]
        (d / f"{split}.tsv").write_text("track_id\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in pairs))
        counts[split] = len(pairs)
    held = [r["track_id"] for r in rows if r["label"] is not None and split_of[r["group"]] != "train"]
    (tasks / "exclude.txt").write_text("".join(t + "\n" for t in sorted(held)))
    (tasks / "tasks.json").write_text(json.dumps({"key": {"classes": classes, "splits": counts,
                                                          "split_rule": "80/10/10 by piece, seeded"}}, indent=2))
    return counts


def pretrain_dbn(store: Path, out: Path, exclude: set[str], passes: int, seed: int) -> Path:
    from beatdbn.models.dbn import DBNConfig
    from beatdbn.train.pretrain import PretrainConfig, pretrain

    if not (out / "model.pt").is_file():
        pretrain(str(store), str(out), exclude=exclude, config=PretrainConfig(passes=passes, seed=seed),
                 dbn_config=DBNConfig(seed=seed))
    return out


def finetune_run(store: Path, tasks: Path, out: Path, dbn: Path | None, seed: int, epochs: int | None,
                 learning_rates: tuple | None):
    from beatdbn.train.finetune import FinetuneConfig, finetune

    config = FinetuneConfig.for_recipe("beatdbn", seed=seed)
    over = {}
    if epochs is not None:
        over["epochs"] = epochs
        over["snapshot_epochs"] = (epochs,)
        over["min_updates"] = 0
    if learning_rates is not None:
        over["learning_rates"] = tuple(learning_rates)
    if over:
        import dataclasses

        config = dataclasses.replace(config, **over)
    return finetune(store, tasks, "key", init="pretrained" if dbn else "random", dbn_dir=dbn, out=out, config=config)


def posteriors_of(run, store: Path, track_ids: list[str], temperature: float = 1.0):
    """Calibrated track posteriors ``(n, n_classes)`` of ``track_ids`` in ``store``."""
    import numpy as np

    from beatdbn.inference.posteriors import split_posteriors
    from beatdbn.store.reader import FeatureStore
    from beatdbn.train.calibration import apply_temperature

    fs = FeatureStore.open(store)
    feats = [np.asarray(f, dtype=np.float32) for f in fs.read_features(fs.select_rows(track_ids))]
    return apply_temperature(split_posteriors(run.model, feats), temperature)


def key_scores(truth: list[str], pred: list[str]) -> dict:
    """Per track: 24-key right, tonic right (1/0) and the MIREX weighted score, of key names in any spelling
    (``A# minor``, ``Bb minor``)."""
    import mir_eval.key
    import numpy as np

    from beatdbn.labels import parse_key

    tk, pk = [parse_key(t) for t in truth], [parse_key(p) for p in pred]
    return {"accuracy_24": np.array([a == b for a, b in zip(tk, pk)], float),
            "tonic_accuracy": np.array([a[0] == b[0] for a, b in zip(tk, pk)], float),
            # mir_eval reads either spelling itself (A# minor against Bb minor scores 1)
            "mirex_weighted": np.array([mir_eval.key.weighted_score(a, b) for a, b in zip(truth, pred)])}


def evaluate(labels_true: list[str], post, classes: list[str], threshold: float | None, groups=None) -> dict:
    """Figures of a key model on labelled tracks (KEY_NAMES_24 names or NO_KEY); with ``groups`` (the piece of
    each track), 95 % piece-bootstrap intervals of the tonal figures too (``<figure>_ci``)."""
    import numpy as np

    from beatdbn.labels import KEY_NAMES_24, NO_KEY
    from beatdbn.metrics.calibration import expected_calibration_error

    nk = classes.index(NO_KEY) if NO_KEY in classes else None
    keys_idx = [i for i, c in enumerate(classes) if c != NO_KEY]
    p_nk = post[:, nk] if nk is not None else np.zeros(len(post))
    refused = p_nk >= (threshold if threshold is not None else 0.5)
    best_key = np.array(keys_idx)[np.argmax(post[:, keys_idx], axis=1)]
    pred = [classes[i] for i in best_key]
    conf = post[np.arange(len(post)), best_key]
    tonal = np.array([t != NO_KEY for t in labels_true])
    out: dict = {"n_tonal": int(tonal.sum()), "n_no_key": int((~tonal).sum())}
    if tonal.any():
        t_true = [t for t, m in zip(labels_true, tonal) if m]
        t_pred = [p for p, m in zip(pred, tonal) if m]
        scores = key_scores(t_true, t_pred)
        right, tonic, mirex = scores["accuracy_24"].astype(bool), scores["tonic_accuracy"], scores["mirex_weighted"]
        if groups is not None:
            from beatdbn.metrics.intervals import cluster_bootstrap_interval

            t_groups = [g for g, m in zip(groups, tonal) if m]
            out["pieces"] = len(set(t_groups))
            for name, v in (("accuracy_24", right), ("tonic_accuracy", tonic), ("mirex_weighted", mirex)):
                out[name + "_ci"] = cluster_bootstrap_interval(v, t_groups)
        out.update(accuracy_24=float(right.mean()), tonic_accuracy=float(tonic.mean()),
                   mirex_weighted=float(mirex.mean()),
                   tonal_refused=float(refused[tonal].mean()),
                   answered_right=float((right & ~refused[tonal]).mean()))
        ece, bins = expected_calibration_error(conf[tonal], right)
        out.update(ece=float(ece), reliability=bins)
        fifth = np.array([(KEY_NAMES_24.index(b) - KEY_NAMES_24.index(a)) % 12 in (5, 7)
                          and (KEY_NAMES_24.index(a) // 12 == KEY_NAMES_24.index(b) // 12)
                          for a, b in zip(t_true, t_pred)])
        out["fifth_errors"] = float(fifth.mean())
    if (~tonal).any():
        out["no_key_refused"] = float(refused[~tonal].mean())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / ".bench-data" / "key_model_24")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Where the model, calibration and provenance go.")
    ap.add_argument("--pieces", type=int, default=6000, help="Tonal pieces (each rendered twice: additive and GM).")
    ap.add_argument("--no-key", type=int, default=900, help="Clips without a key (6 kinds).")
    ap.add_argument("--seed", type=int, default=0, help="Corpus seed.")
    ap.add_argument("--holdout-pieces", type=int, default=600,
                    help="Held-out pieces (each rendered additive and through the held-out soundfont).")
    ap.add_argument("--holdout-no-key", type=int, default=180)
    ap.add_argument("--holdout-seed", type=int, default=2)
    ap.add_argument("--ends-pieces", type=int, default=600,
                    help="Pieces (additive and GM) on which the ends' weights are fitted (models/key_ends.py).")
    ap.add_argument("--ends-seed", type=int, default=3, help="Their corpus seed (neither --seed nor --holdout-seed).")
    ap.add_argument("--passes", type=int, default=2, help="Pretraining passes.")
    ap.add_argument("--learning-rates", type=float, nargs="+", default=[0.003],
                    help="Finetuning learning rates (the beatdbn recipe's best on the 12-tonic model).")
    ap.add_argument("--compare", nargs="*", default=["random", "synth", "real"],
                    help="Starts to compare (random, synth, real); the best on valid is shipped.")
    ap.add_argument("--compare-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--compare-epochs", type=int, default=12, help="Epochs of the comparison runs.")
    ap.add_argument("--final-epochs", type=int, default=30,
                    help="Epochs of a last, longer run of the chosen start (0: ship the comparison run).")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-essentia", dest="essentia", action="store_false",
                    help="Skip Essentia's KeyExtractor on the held-out files (run when `import essentia` works).")
    args = ap.parse_args(argv)
    if args.holdout_seed == args.seed:
        ap.error("--holdout-seed must differ from --seed (the held-out corpus must be disjoint)")
    if args.ends_seed in (args.seed, args.holdout_seed):
        ap.error("--ends-seed must differ from --seed and --holdout-seed")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from beatdbn.features.audio import analyze_audio
    from beatdbn.inference import load_run
    from beatdbn.inference.runs import with_ends
    from beatdbn.labels import NO_KEY
    from beatdbn.synth.gm import available_soundfonts
    from beatdbn.train.calibration import choose_tonal_threshold, fit_temperature
    from beatdbn.train.provenance import run_versions

    t_start = time.perf_counter()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    fonts = [str(f) for f in available_soundfonts(TRAIN_FONTS)]
    if not fonts:
        sys.exit("no training soundfont installed: apt-get install timgm6mb-soundfont csound-soundfont")
    labels = _step(log, "corpus", build_corpus, work / "corpus", pieces=args.pieces, no_key=args.no_key,
                   seed=args.seed, fonts=fonts, workers=args.workers)
    n_music = link_music(work / "music")
    store = work / "store"
    _step(log, "extract corpus", extract, work / "corpus", store, labels, args.workers)
    if n_music and "real" in args.compare:
        _step(log, f"extract {n_music} real recordings", extract, work / "music", store, None, args.workers)
    rows = track_table(store)
    counts = write_task(rows, work / "tasks", args.seed)
    print(f"   task: {counts}", flush=True)
    held = set((work / "tasks" / "exclude.txt").read_text().split())
    music_ids = {r["track_id"] for r in rows if r["group"] is None}
    synth_ids = {r["track_id"] for r in rows if r["group"] is not None}
    dbns = {"random": None}
    if "synth" in args.compare:
        dbns["synth"] = _step(log, "pretrain on the synthetic training split", pretrain_dbn, store, work / "dbn-synth",
                              held | music_ids, args.passes, 0)
    if "real" in args.compare and music_ids:
        dbns["real"] = _step(log, "pretrain on real recorded music", pretrain_dbn, store, work / "dbn-real",
                             held | synth_ids, args.passes, 0)
    # held-out corpus: other seed, a soundfont never trained on
    h_fonts = [str(f) for f in available_soundfonts([HOLDOUT_FONT])] or fonts
    h_root = work / f"holdout-s{args.holdout_seed}"
    h_labels = _step(log, "holdout corpus", build_corpus, h_root, pieces=args.holdout_pieces,
                     no_key=args.holdout_no_key, seed=args.holdout_seed, fonts=h_fonts, workers=args.workers)
    h_store = work / f"holdout-s{args.holdout_seed}-store"
    _step(log, "extract holdout", extract, h_root, h_store, h_labels, args.workers)
    # the held-out pieces and clips asked for (a store resumed from a larger run may hold more)
    h_rows = [r for r in track_table(h_store) if r["label"] is not None and int(r["group"].split("-")[2]) <
              (args.holdout_no_key if r["group"].startswith("nokey-") else args.holdout_pieces)]

    task_dir = work / "tasks" / "key"
    valid = [line.split("\t") for line in (task_dir / "valid.tsv").read_text().splitlines()[1:]]
    comparison: dict = {}
    for name, dbn in dbns.items():
        for seed in args.compare_seeds:
            run_dir = work / "runs" / f"{name}-seed{seed}"
            res = _step(log, f"finetune {name} seed {seed}", finetune_run, store, work / "tasks", run_dir, dbn, seed,
                        args.compare_epochs, args.learning_rates)
            sel = res.select()
            run = load_run(run_dir)
            post = posteriors_of(run, h_store, [r["track_id"] for r in h_rows])
            ev = evaluate([r["label"] for r in h_rows], post, run.labels, None)
            comparison.setdefault(name, []).append({
                "seed": seed, "valid_accuracy": float(sel["valid_accuracy"]), "test_accuracy": float(sel["test_accuracy"]),
                "holdout_accuracy_24": ev.get("accuracy_24"), "holdout_tonic": ev.get("tonic_accuracy"),
                "learning_rate": sel["learning_rate"], "epoch": sel["epoch"]})
            print(f"   {name} seed {seed}: valid {sel['valid_accuracy']:.3f} test {sel['test_accuracy']:.3f} "
                  f"holdout 24-key {ev.get('accuracy_24', float('nan')):.3f}", flush=True)
    summary = {name: {k: [float(np.mean([r[k] for r in rs])), float(np.std([r[k] for r in rs]))]
                      for k in ("valid_accuracy", "test_accuracy", "holdout_accuracy_24", "holdout_tonic")}
               for name, rs in comparison.items()}
    best = max(summary, key=lambda n: summary[n]["valid_accuracy"][0])  # chosen on VALID, never on held-out
    best_seed = max(comparison[best], key=lambda r: r["valid_accuracy"])["seed"]
    run_dir = work / "runs" / f"{best}-seed{best_seed}"
    chosen_valid = max(r["valid_accuracy"] for r in comparison[best])
    final = None
    if args.final_epochs:
        # the chosen start trained longer; shipped if it is at least as good on VALID
        final_dir = work / "runs" / f"{best}-seed{best_seed}-final"
        res = _step(log, f"finetune {best} seed {best_seed}, {args.final_epochs} epochs", finetune_run, store,
                    work / "tasks", final_dir, dbns[best], best_seed, args.final_epochs, args.learning_rates)
        sel = res.select()
        final = {"epochs": args.final_epochs, "valid_accuracy": float(sel["valid_accuracy"]),
                 "test_accuracy": float(sel["test_accuracy"]), "shipped": sel["valid_accuracy"] >= chosen_valid}
        if final["shipped"]:
            run_dir = final_dir
    print(f"== ship: {run_dir.name} ({best} start, by valid accuracy)", flush=True)
    run = load_run(run_dir)
    # calibration on VALID: temperature, then the "no key" threshold
    v_ids, v_true = [v[0] for v in valid], [v[1] for v in valid]
    v_raw = posteriors_of(run, store, v_ids)
    classes = list(run.labels)
    y = np.array([classes.index(t) for t in v_true])
    temperature = fit_temperature(v_raw, y)
    v_post = posteriors_of(run, store, v_ids, temperature)
    nk = classes.index(NO_KEY)
    tonal_v = np.array([t != NO_KEY for t in v_true])
    threshold = choose_tonal_threshold(v_post[tonal_v, nk], max_tonal_refused=0.01)
    group_of = {r["track_id"]: r["group"] for r in rows}
    valid_eval = evaluate(v_true, v_post, classes, threshold, groups=[group_of[t] for t in v_ids])
    ends = _step(log, "fit the ends' weights", fit_ends, run, temperature, work / f"ends-s{args.ends_seed}",
                 pieces=args.ends_pieces, seed=args.ends_seed, fonts=fonts, workers=args.workers)
    print(f"   ends: weights {[round(w, 3) for w in ends['weights']]}, tonic on the fitting pieces "
          f"{ends['fit_tonic_before']:.3f} -> {ends['fit_tonic_after']:.3f}", flush=True)
    h_network = posteriors_of(run, h_store, [r["track_id"] for r in h_rows], temperature)
    h_ends = _step(log, "held-out ends", lambda: [analyze_audio(r["source"]).chroma_ends for r in h_rows])
    h_post = with_ends(h_network, classes, h_ends, ends["weights"])
    h_true = [r["label"] for r in h_rows]
    network_only = evaluate(h_true, h_network, classes, threshold)
    ends["holdout_network_only"] = {k: v for k, v in network_only.items() if k != "reliability"}
    h_groups = [r["group"] for r in h_rows]
    holdout = evaluate(h_true, h_post, classes, threshold, groups=h_groups)
    styles = by_style(h_true, h_post, classes, threshold, h_groups)
    for name, ev in styles.items():
        print(f"   held-out {name}: {ev['pieces']} pieces, 24-key {ev['accuracy_24']:.3f}, "
              f"tonic {ev['tonic_accuracy']:.3f}", flush=True)
    essentia = _step(log, "Essentia on the held-out files", essentia_keys, h_root) if args.essentia else None
    versus = against_essentia(h_rows, h_post, classes, essentia, h_root) if essentia else None
    if versus:
        for k, v in versus["all"].items():
            if isinstance(v, dict):
                lo, hi = v["difference_ci"]
                print(f"   against Essentia, {k}: {v['beatdbn']:.3f} vs {v['essentia']:.3f}, difference "
                      f"{v['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]", flush=True)
    by_source = {}
    for kind in ("additive", "gm", "nokey"):
        m = np.array([f"/{kind}/" in r["source"] for r in h_rows])
        if m.any():
            by_source[kind] = evaluate([t for t, k in zip(h_true, m) if k], h_post[m], classes, threshold)
            by_source[kind].pop("reliability", None)
    args.out.mkdir(parents=True, exist_ok=True)
    run.model.save(args.out)
    run.model.save_numpy(args.out)  # the same tensors for the torch-free forward of `predict --task key`
    calibration = {"temperature": temperature, "tonal_threshold": threshold, "ends": ends,
                   "fitted_on": f"valid split ({len(v_ids)} tracks)", "ece_valid": valid_eval.get("ece"),
                   "ece_holdout": holdout.get("ece"), "reliability_holdout": holdout.get("reliability")}
    (args.out / "calibration.json").write_text(json.dumps(calibration, indent=2) + "\n")
    from beatdbn.plots.calibration import plot_reliability

    plot_reliability(holdout["reliability"], work / "reliability.png",
                     title=f"key model, held-out tonal pieces (ECE {holdout['ece']:.3f})")
    recordings = recordings_check(args.out) if RECORDINGS.is_dir() else None
    provenance = {
        "model": "key_audio", "task": "key", "classes": classes, "representation": "audio", "shipped": True,
        "description": "24-key (tonic and mode) + 'no key' classifier for audio analysed by beatdbn's front-end; "
                       "trained only on audio beatdbn synthesizes (additive and General MIDI through Debian "
                       "soundfonts, never FluidR3) and, for pretraining, Debian's free game music",
        "corpus": {"generators": ["beatdbn.synth.audio_keys", "beatdbn.synth.gm", "beatdbn.synth.no_key"],
                   "pieces": args.pieces, "renderings": ["additive", "gm"], "no_key_clips": args.no_key,
                   "seed": args.seed, "train_soundfonts": fonts, "splits": counts, "real_music_tracks": len(music_ids)},
        "shipped_run": run_dir.name, "final_run": final,
        "comparison": {"runs": comparison, "summary_mean_std": summary, "chosen": best, "chosen_seed": best_seed,
                       "epochs": args.compare_epochs, "learning_rates": args.learning_rates,
                       "rule": "highest mean valid accuracy; held-out figures reported, never used to choose"},
        "calibration": {k: v for k, v in calibration.items() if k != "reliability_holdout"},
        "valid": {k: v for k, v in valid_eval.items() if k != "reliability"},
        "holdout": {"seed": args.holdout_seed, "pieces": args.holdout_pieces, "no_key_clips": args.holdout_no_key,
                    "soundfont": h_fonts, **{k: v for k, v in holdout.items() if k != "reliability"},
                    "by_source": by_source, "by_style": styles, "against_essentia": versus},
        "recordings": recordings,
        "command": "python scripts/train_key_model.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "steps": log, "wall_seconds": round(time.perf_counter() - t_start, 1),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "versions": run_versions(),
        "size_bytes": (args.out / "model.pt").stat().st_size,
    }
    (args.out / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    print(json.dumps({"comparison": summary, "calibration": provenance["calibration"],
                      "holdout": provenance["holdout"], "recordings": recordings}, indent=2, default=str))
    return 0


#: Styles of the generator's pieces the held-out figures are broken down by (from the piece's score):
#: functional harmony is what real compositions of the common-practice period are written in; the
#: popular-music loops (I-V-vi-IV, i-VII-VI-VII, ...) are where the key is most ambiguous.
STYLES = {
    "functional harmony": lambda d: d["loop"] is None,
    "functional, cadenced end, no modulation": lambda d: d["loop"] is None and d["cadenced_end"] and not d["modulates"],
    "chorale": lambda d: d["texture"] == "chorale",
    "popular-music loop": lambda d: d["loop"] is not None,
    "ends without a cadence": lambda d: not d["cadenced_end"],
    "modulates": lambda d: d["modulates"],
}


@functools.lru_cache(maxsize=None)
def piece_info(group: str) -> dict:
    """What the generator drew for the piece of a group ``piece-<seed>-<index>`` (its score's ``info``); composed
    once per piece, though the styles and the comparison with Essentia both ask (do not modify the dict)."""
    from beatdbn.synth.audio_keys import piece_score

    _, seed, index = group.split("-")
    return piece_score(int(index), int(seed))[1]


def by_style(labels_true: list[str], post, classes: list[str], threshold: float, groups: list[str]) -> dict:
    """:func:`evaluate` on the tonal tracks of each of :data:`STYLES` (pieces ``piece-<seed>-<index>``)."""
    import numpy as np

    info = {g: piece_info(g) for g in sorted({g for g in groups if g and g.startswith("piece-")})}
    out = {}
    for name, is_style in STYLES.items():
        m = np.array([g in info and is_style(info[g]) for g in groups])
        if m.any():
            ev = evaluate([t for t, k in zip(labels_true, m) if k], post[m], classes, threshold,
                          groups=[g for g, k in zip(groups, m) if k])
            out[name] = {k: v for k, v in ev.items() if k != "reliability"}
    return out


#: Essentia's KeyExtractor as the issue ran it (profile ``bgate``, 44.1 kHz), over the tonal files of a corpus's
#: labels.csv; resumable (``out`` keeps what is done). Run in a child process: Essentia is AGPL, a baseline
#: measured beside ours and never imported by beatdbn.
ESSENTIA_SCRIPT = """
import csv, json, sys
from pathlib import Path
import essentia
essentia.log.infoActive = essentia.log.warningActive = False
import essentia.standard as es
root, out = Path(sys.argv[1]), Path(sys.argv[2])
res = json.loads(out.read_text()) if out.exists() else {}
ke = es.KeyExtractor(profileType="bgate")
failed = {}
with open(root / "labels.csv") as fh:
    for i, row in enumerate(csv.DictReader(fh)):
        if row["path"] not in res:
            try:
                key, scale, strength = ke(es.MonoLoader(filename=str(root / row["path"]), sampleRate=44100)())
            except Exception as exc:  # a file Essentia cannot read is counted, not fatal
                failed[row["path"]] = str(exc)[:200]
                continue
            res[row["path"]] = [key + " " + scale, float(strength)]
            if i % 100 == 0:
                out.write_text(json.dumps(res))
out.write_text(json.dumps(res))
print(json.dumps({"version": essentia.__version__, "failed": failed}))
"""


def essentia_keys(root: Path) -> dict | None:
    """Essentia's answers on the tonal files under ``root``: ``{"keys": {relative path: [key, strength]},
    "version", "failed": {path: why}}``; None without Essentia or when it fails (a baseline never stops the
    build: the model is saved either way)."""
    if subprocess.run([sys.executable, "-c", "import essentia.standard"], capture_output=True).returncode != 0:
        return None
    out = root / "essentia-bgate.json"
    done = subprocess.run([sys.executable, "-c", ESSENTIA_SCRIPT, str(root), str(out)], capture_output=True,
                          text=True)
    if done.returncode != 0 or not out.is_file():
        print(f"   Essentia failed (exit {done.returncode}): {done.stderr.strip()[-300:]}", flush=True)
        return None
    return {"keys": json.loads(out.read_text()), **json.loads(done.stdout.strip().splitlines()[-1])}


def against_essentia(rows: list[dict], post, classes: list[str], essentia: dict, root: Path) -> dict:
    """Our 24-key answers against Essentia's on the same tonal files: each figure, the paired difference with its
    95 % piece-bootstrap interval, overall and by :data:`STYLES`."""
    import numpy as np

    from beatdbn.labels import KEY_NAMES_24, NO_KEY
    from beatdbn.metrics.intervals import cluster_bootstrap_interval

    answers = essentia["keys"]
    rel = [str(Path(r["source"]).relative_to(root.resolve())) for r in rows]
    keep = [i for i, r in enumerate(rows) if r["label"] != NO_KEY and rel[i] in answers]
    keys = [classes.index(k) for k in KEY_NAMES_24]
    ours = [classes[keys[j]] for j in post[keep][:, keys].argmax(1)]
    sub = [rows[i] for i in keep]
    theirs = [answers[rel[i]][0] for i in keep]
    truth = [r["label"] for r in sub]
    groups = [r["group"] for r in sub]
    a, b = key_scores(truth, ours), key_scores(truth, theirs)
    info = {g: piece_info(g) for g in set(groups)}
    out = {"essentia": f"Essentia {essentia['version']}: KeyExtractor(profileType='bgate'), MonoLoader at 44.1 kHz",
           "tracks": len(sub), "failed": essentia["failed"]}
    for name, is_style in {"all": lambda d: True, **STYLES}.items():
        m = np.array([is_style(info[g]) for g in groups])
        if not m.any():
            continue
        g = [x for x, k in zip(groups, m) if k]
        out[name] = {"pieces": len(set(g))}
        for k in a:
            d = a[k][m] - b[k][m]
            out[name][k] = {"beatdbn": float(a[k][m].mean()), "essentia": float(b[k][m].mean()),
                            "difference": float(d.mean()), "difference_ci": cluster_bootstrap_interval(d, g)}
    # each loop progression apart: where the key of a loop is ambiguous, both tools miss it
    loops = sorted({"-".join(d["loop"]) for d in info.values() if d["loop"] is not None})
    out["by_loop"] = {}
    for loop in loops:
        m = np.array([info[g]["loop"] is not None and "-".join(info[g]["loop"]) == loop for g in groups])
        out["by_loop"][loop] = {"tracks": int(m.sum()), "beatdbn_24": float(a["accuracy_24"][m].mean()),
                                "essentia_24": float(b["accuracy_24"][m].mean())}
    return out


def network_and_ends(run, files: list[Path], temperature: float):
    """The network's calibrated posteriors ``(n, n_classes)`` (before the ends) and each file's chroma ends
    ``(n, 2, 12)``, read through the same door as `predict`."""
    import numpy as np

    from beatdbn.features.sources import read_audio_features
    from beatdbn.metrics.calibration import apply_temperature

    tracks = []
    for f in files:
        meta, feats, beats = read_audio_features(f)
        tracks.append(run.admit(str(f), meta, feats, beats))
    saved, run.calibration = run.calibration, {}  # the network alone, at temperature 1, then ours
    try:
        post = apply_temperature(run.predict_proba(tracks).tracks, temperature)
    finally:
        run.calibration = saved
    return post, np.stack([t.chroma_ends for t in tracks])


def fit_ends(run, temperature: float, root: Path, *, pieces: int, seed: int, fonts, workers: int) -> dict:
    """:mod:`beatdbn.models.key_ends`' weights, fitted on ``pieces`` tonal pieces of corpus ``seed`` (additive
    and GM through ``fonts``; a seed that neither training nor the held-out check uses)."""
    import numpy as np

    from beatdbn.features.audio import ENDS_FRACTION
    from beatdbn.inference.runs import key_columns
    from beatdbn.labels import parse_key
    from beatdbn.models.key_ends import fuse
    from beatdbn.train.calibration import fit_end_weights

    labels = build_corpus(root, pieces=pieces, no_key=0, seed=seed, fonts=fonts, workers=workers)
    rows = list(csv.DictReader(labels.open()))
    post, ends = network_and_ends(run, [root / r["path"] for r in rows], temperature)
    cols = key_columns(run.labels)
    keys = np.array([tonic + 12 * (1 - mode) for tonic, mode in (parse_key(r["key"]) for r in rows)])  # canonical
    weights = fit_end_weights(post[:, cols], ends, keys)
    before, after = post[:, cols].argmax(axis=1), fuse(post[:, cols], ends, weights).argmax(axis=1)
    return {"weights": weights, "terms": ["network log posterior", "end triad", "start triad"],
            "fraction": ENDS_FRACTION,
            "fitted_on": f"seed {seed}: {pieces} pieces, additive and GM ({len(rows)} files)",
            "fit_tonic_before": float(np.mean(before % 12 == keys % 12)),
            "fit_tonic_after": float(np.mean(after % 12 == keys % 12)),
            "fit_accuracy_24_before": float(np.mean(before == keys)),
            "fit_accuracy_24_after": float(np.mean(after == keys))}


def recordings_check(model_dir: Path) -> list[dict]:
    """The shipped model's answer on each real recording of :data:`RECORDINGS`, beside its key by ear."""
    import numpy as np

    from beatdbn.features.sources import read_features
    from beatdbn.inference import load_run
    from beatdbn.labels import NO_KEY

    run = load_run(model_dir)
    out = []
    for f in sorted(RECORDINGS.glob("*.ogg")):
        truth = next((v for k, v in RECORDING_KEYS.items() if k in f.name), "?")
        (meta, feats, beats), = list(read_features(f))
        p = run.predict_proba([run.admit(f.name, meta, feats, beats)]).tracks[0]  # with its ends (key_ends)
        order = np.argsort(-p)[:3]
        out.append({"file": f.name, "truth": truth, "p_no_key": float(p[run.labels.index(NO_KEY)]),
                    "top": [(run.labels[i], round(float(p[i]), 3)) for i in order]})
        print(f"   {f.name[:50]:50s} truth {truth!s:8s} -> {out[-1]['top']}", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
