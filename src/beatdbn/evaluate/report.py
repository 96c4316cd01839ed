"""The report of a reproduction run: ``report.md`` and ``report.html``.

:func:`write_report` reads a run directory as ``beatdbn reproduce`` writes it::

    RUN_DIR/config.json      {"config": {...}, "versions": {...}, "git_commit": ..., "timings": {stage: s},
                              "projected": {...}}
    RUN_DIR/tasks/tasks.json per-task classes, split counts and chance
    RUN_DIR/dbn/             model.pt + config.json (ConvDBN.save), pretrain.csv
    RUN_DIR/experiments/<task>/<model>/result.json                  (ExperimentResult)
    RUN_DIR/experiments/<task>/<convmlp_init|logreg>/lr-<v>/metrics.csv

and writes the plots into ``RUN_DIR/report/`` and two pages beside them with
the same content: Table 1 (this run, chance, the paper's numbers in columns of
their own), the tasks (scale beside the paper's, split protocol), the key
task's accuracy and MIREX weighted score, learning curves per task (pretrained vs random init,
every learning rate; logistic regression apart), the confusion matrix of the
validation-selected run of every experiment, the DBN's filters and
pretraining statistics, and the run's config, versions, timings and
projected full-scale time.

Any part may be missing (a partial or running reproduction): the report then
says what is missing, in a section of its own, instead of failing. Only an
``RUN_DIR`` that is not a directory raises.

**Seeds** (``beatdbn reproduce --seeds N``: ``RUN_DIR/seeds.json`` and one run per seed in
``RUN_DIR/seed-<s>/``): Table 1 over the finished seeds (mean ± sd, 95 % interval), a plot of each seed's
point per cell with the mean and interval (:func:`beatdbn.plots.seeds.plot_seeds`), each seed's numbers,
the paired comparisons of every conv MLP row with windowed logistic regression (exact McNemar pooled
over seeds, :mod:`beatdbn.metrics.intervals`), the models that did not leave chance with what would help,
the tasks of the first seed, and links to each seed's own report (learning curves, confusion matrices,
filters: ``seed-<s>/report.html``). A single run's report has the same interval plot (a Wilson interval
over its test tracks), paired comparisons and warnings, above its curves and matrices.

Images are *linked relatively* (``report/<name>.png``) by default, so
``report.html`` and ``report.md`` must stay beside the ``report/`` folder;
``embed_images=True`` embeds them in ``report.html`` as base64 ``data:`` URIs
instead (one self-contained file; ``report.md`` still links).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from beatdbn.metrics.results import ExperimentResult
from beatdbn.evaluate.table import (MODELS, RECIPE_MODELS, SEEDS_FILE, TASKS, Table1, format_accuracy,
                                    format_learning_rate, load_results)
from beatdbn.evaluate.examples import task_examples
from beatdbn.exceptions import BeatdbnError, DataError
from beatdbn.experiments.registry import variant
from beatdbn.metrics.curve_tables import NO_CELL, PAIRED_LEGEND, paired_cells, summary_cells
from beatdbn.metrics.scores import KEY_SCORE_RULE, fifth_convention
from beatdbn.plots.confusion import plot_confusion
from beatdbn.plots.curve import plot_curve
from beatdbn.plots.filters import plot_filters
from beatdbn.plots.posterior import plot_posterior_over_time
from beatdbn.plots.seeds import SeedRow, plot_seeds
from beatdbn.plots.training import plot_learning_curves, plot_pretraining, read_csv_rows
from beatdbn.utils.atomic import write_text

__all__ = ["write_report", "REPORT_DIR", "format_duration"]

#: Folder (inside the run directory) holding the report's plots.
REPORT_DIR = "report"

_LR_DIR = re.compile(r"^lr-(.+)$")

_CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#222;max-width:1180px;
margin:24px auto;padding:0 18px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:3px;
margin-top:30px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#666;font-size:12.5px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{padding:3px 9px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
td.num,table.table1 td{text-align:right;font-variant-numeric:tabular-nums}
table.table1 th.model{font-weight:normal}table.table1 th.group{font-weight:normal;color:#555;
white-space:nowrap}table.table1 tr.block{border-top:2px solid #999}
table.table1 .paper{background:#f4f4f4;color:#555;font-style:italic}
table.table1 td.chance{color:#777}table.table1 .lr{color:#777;font-size:12px}
table.table1 td.missing{color:#b00}table.table1 td.at-chance{color:#999}
.warn-box{background:#fdecea;border:1px solid #e0a39c;padding:6px 14px;border-radius:4px}
.missing-box{background:#fff6e5;border:1px solid #f0c36d;padding:6px 14px;border-radius:4px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.figs.wide{grid-template-columns:1fr}
figure{margin:0}figure img{width:100%;border:1px solid #eee}
figcaption{font-size:12px;color:#555}
details{margin:6px 0}pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
ul.notes{font-size:12.5px;color:#444}
"""


def format_duration(seconds: Any) -> str:
    """``3725 -> '1 h 02 min'``, ``75.3 -> '1 min 15 s'``, ``4.2 -> '4.2 s'``; others as text."""
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    if not math.isfinite(s):
        return str(seconds)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(round(s % 60)):02d} s"
    return f"{int(s // 3600)} h {int(round(s % 3600 / 60)):02d} min"


@dataclass
class _Page:
    """The report as Markdown and HTML at once."""

    run_dir: Path
    embed: bool
    md: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    toc: list[str] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        if level == 2:
            self.toc.append(text)
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')

    def para(self, text: str, *, css: str = "") -> None:
        self.md.append(text + "\n")
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<p{cls}>{html.escape(text)}</p>")

    def bullets(self, items: list[str], *, css: str = "") -> None:
        if not items:
            return
        self.md.append("\n".join(f"- {i}" for i in items) + "\n")
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<ul{cls}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")

    def table(self, header: list[str], rows: list[list[Any]], *, numeric: set[int] = frozenset()) -> None:
        def md(x: Any) -> str:
            return str(x).replace("|", "\\|").replace("\n", " ")

        self.md.append("| " + " | ".join(md(h) for h in header) + " |\n|"
                       + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|\n"
                       + "\n".join("| " + " | ".join(md(c) for c in row) + " |" for row in rows) + "\n")
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(
            f'<td{" class=num" if i in numeric else ""}>{html.escape(str(c))}</td>' for i, c in enumerate(row))
            + "</tr>" for row in rows)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def raw(self, md: str, html_text: str) -> None:
        self.md.append(md)
        self.html.append(html_text)

    def code(self, text: str, summary: str) -> None:
        self.md.append(f"<details><summary>{summary}</summary>\n\n```json\n{text}\n```\n\n</details>\n")
        self.html.append(f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre>"
                         "</details>")

    def figures(self, figs: list[tuple[Path, str]], *, wide: bool = False) -> None:
        if not figs:
            return
        md, parts = [], []
        for path, caption in figs:
            rel = path.relative_to(self.run_dir).as_posix()
            md.append(f"![{caption}]({rel})\n\n*{caption}*\n")
            src = rel
            if self.embed:
                src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<figure><a href="{html.escape(rel)}"><img src="{html.escape(src)}" '
                         f'alt="{html.escape(caption)}" loading="lazy"></a>'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        self.md.append("\n".join(md))
        self.html.append(f'<div class="figs{" wide" if wide else ""}">' + "".join(parts) + "</div>")


def _read_json(path: Path, missing: list[str], what: str) -> Any:
    if not path.exists():
        missing.append(f"{what}: {path.name} not found ({path})")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        missing.append(f"{what}: {path} unreadable ({exc})")
        return None


def _attempt(missing: list[str], what: str, fn: Callable[[], Any]) -> Any:
    """Run one plot; on a beatdbn or data error, note it and carry on."""
    try:
        return fn()
    except (BeatdbnError, OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        missing.append(f"{what}: could not be drawn ({type(exc).__name__}: {exc})")
        return None


def _lr_of(directory: Path, rows: list[dict[str, Any]]) -> float | None:
    m = _LR_DIR.match(directory.name)
    if m:
        try:
            return float(m.group(1))
        except ValueError:
            pass
    if rows and rows[0].get("learning_rate") is not None:
        try:
            return float(rows[0]["learning_rate"])
        except (TypeError, ValueError):
            pass
    return None


def _metrics(model_dir: Path, missing: list[str]) -> list[tuple[float | None, str, list[dict[str, Any]]]]:
    """``(learning rate, lr text, rows)`` for every ``lr-*/metrics.csv`` in ``model_dir``, largest lr first."""
    out = []
    for csv_path in sorted(model_dir.glob("*/metrics.csv")):
        try:
            rows = read_csv_rows(csv_path)
        except DataError as exc:
            missing.append(str(exc))
            continue
        lr = _lr_of(csv_path.parent, rows)
        out.append((lr, csv_path.parent.name if lr is None else f"{lr:g}", rows))
    out.sort(key=lambda x: -(x[0] if x[0] is not None else -math.inf))
    return out


def _section_table(page: _Page, table: Table1) -> None:
    page.heading(2, "Table 1")
    page.raw(table.to_markdown() + "\n",
             table.to_html() + '<ul class="notes">'
             + "".join(f"<li>{_md_inline_to_html(n)}</li>" for n in table.footnotes) + "</ul>"
             + ("<p>Notes:</p><ul class=notes>" + "".join(f"<li>{html.escape(n)}</li>" for n in table.notes)
                + "</ul>" if table.notes else "")
             + ('<p>Warnings:</p><ul class="notes">' + "".join(f"<li>\u26a0 {html.escape(w)}</li>"
                                                               for w in table.warnings) + "</ul>"
                if table.warnings else ""))


def _row_label(table: Table1, model: str, block: str) -> str:
    short = MODELS[model].replace("windowed logistic regression", "windowed LR")
    if not variant(model).epochs or block == "final":
        return short
    return f"{short} ({table.early_epoch} ep.)"


def _section_seeds(page: _Page, out: Path, table: Table1, missing: list[str]) -> None:
    """Each seed's point per cell with the mean and interval (plot), and the numbers."""
    cells = [(task, model, block, table.cells[(model, block)][task]) for task in table.tasks
             for model, block in table.rows if table.cells[(model, block)].get(task) is not None]
    cells = [(t, m, b, c) for t, m, b, c in cells if c.summary is not None]
    if not cells:
        return
    page.heading(2, "Seeds" if table.multi_seed else "Intervals")
    if table.multi_seed:
        page.para(f"Each seed's test accuracy (dots, one colour per seed), the mean (diamond, filled when bold in "
                  f"Table 1) and the 95 % interval (bar: t over the {len(table.seed_ids)} seeds, never narrower than "
                  f"the Wilson interval of their test tracks pooled; one seed: Wilson over its test tracks); dashed: "
                  f"chance; grey: did not leave chance (the pooled Wilson interval holds chance, or the mean is "
                  f"within one test track of it).")
    else:
        page.para("One run: its test accuracy (diamond, filled when bold in Table 1) and the 95 % Wilson interval "
                  "over its test tracks (bar); dashed: chance; grey: did not leave chance. "
                  "`beatdbn reproduce --seeds 3` measures the spread over seeds.")
    panels: dict[str, list[SeedRow]] = {}
    for task, model, block, c in cells:
        s = c.summary
        panels.setdefault(task, []).append(SeedRow(_row_label(table, model, block), s.values, c.seeds, s.mean,
                                                   s.low, s.high, at_chance=c.at_chance, best=c.best))
    p = _attempt(missing, "plot of the seeds", lambda: plot_seeds(
        panels, out / "seeds.png", chance=table.chance,
        title="Table 1 over seeds" if table.multi_seed else "Table 1, one run"))
    if p is not None:
        page.figures([(p, "each seed's test accuracy, mean and 95 % interval per cell of Table 1")], wide=True)
    seeds = [s for s in table.seed_ids if s is not None]
    header = ["task", "model"] + [f"seed {s}" for s in seeds] + ["mean", "sd", "95 % interval", "interval", "chance?"]
    rows = []
    for task, model, block, c in cells:
        s = c.summary
        by_seed = dict(zip(c.seeds, s.values))
        rows.append([task, _row_label(table, model, block)]
                    + [format_accuracy(by_seed.get(k)) for k in seeds]
                    + [format_accuracy(s.mean), "" if s.sd is None else f"{100 * s.sd:.2f}",
                       f"{format_accuracy(s.low)} \u2013 {format_accuracy(s.high)}", s.method,
                       "did not leave chance" if c.at_chance else ""])
    page.table(header, rows, numeric=set(range(2, 2 + len(seeds) + 3)))


def _section_paired(page: _Page, table: Table1) -> None:
    """Each conv MLP row against windowed logistic regression on the same test tracks."""
    if not table.comparisons:
        return
    page.heading(2, "Paired comparisons")
    page.para("Each conv MLP row minus windowed logistic regression on the same test tracks: the exact McNemar "
              "test on the discordant pairs (conv MLP right and LR wrong: b; the reverse: c), pooled over seeds; "
              "the difference's 95 % interval inverts the same test, so it excludes 0 exactly when p < 0.05. "
              "A difference inside its interval is not shown to be real.")
    rows = []
    for c in table.comparison_rows:
        p = c["paired"]
        what = _row_label(table, c["model"], c["block"])
        if p is None:
            rows.append([c["task"], what, "\u2014", "\u2014", "\u2014", "", "", "",
                         "untested: no per-track test predictions"])
            continue
        rows.append([c["task"], what, f"{100 * p.difference:+.2f}", f"[{100 * p.low:+.2f}, {100 * p.high:+.2f}]",
                     "< 0.001" if p.p_value < 0.001 else f"{p.p_value:.3f}", f"{p.a_only} / {p.b_only}", p.pairs,
                     p.seeds, ("above LR" if p.difference > 0 else "below LR") if p.real else "not shown to differ"])
    page.table(["task", "conv MLP", "difference (points)", "95 % interval", "p", "b / c", "pairs", "seeds",
                "verdict"], rows, numeric={2, 4, 6, 7})


def _section_seed_reports(page: _Page, run_dir: Path, table: Table1) -> None:
    page.heading(2, "Each seed's report")
    page.para("Learning curves, confusion matrices, posteriors over time and the DBN of each seed are in its own "
              "report:")
    links = [(s, run_dir / f"seed-{s}" / "report.html") for s in table.seed_ids]
    page.raw("\n".join(f"- [seed {s}](seed-{s}/report.html)" + ("" if p.exists() else " (not written)")
                       for s, p in links) + "\n",
             "<ul>" + "".join(f'<li><a href="seed-{s}/report.html">seed {s}</a>'
                              + ("" if p.exists() else " (not written)") + "</li>" for s, p in links) + "</ul>")


def _md_inline_to_html(text: str) -> str:
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"\*(.+?)\*", r"<i>\1</i>", out)


def _section_tasks(page: _Page, tasks_json: Any) -> None:
    if not tasks_json or not isinstance(tasks_json.get("tasks"), dict):
        return
    page.heading(2, "Tasks")
    rows = []
    for name in sorted(tasks_json["tasks"], key=lambda t: TASKS.index(t) if t in TASKS else 99):
        info = tasks_json["tasks"][name]
        counts = info.get("counts", {}) or {}
        scale = f"{info.get('scale', '')} ({info.get('scale_rule', 'paper')}; paper {info.get('paper_scale', '')})"
        rows.append([name, info.get("classes", ""), scale, info.get("protocol", "random"), counts.get("train", ""),
                     counts.get("valid", ""), counts.get("test", ""), format_accuracy(info.get("chance"))])
    page.table(["task", "classes", "scale (paper)", "split", "train", "valid", "test", "chance (1/classes)"], rows,
               numeric={1, 4, 5, 6, 7})
    errors = tasks_json.get("errors") or {}
    if errors:
        page.bullets([f"task {k} could not be built: {v}" for k, v in errors.items()])
    labels = (tasks_json.get("corpus") or {}).get("genre_labels")
    if isinstance(labels, dict):
        page.para(f"Genre labels from {labels.get('file')}: {labels.get('labels', 0):,} labels, "
                  f"{labels.get('ids_not_in_store', 0):,} of them for tracks not in the store.")


def _section_key_scores(page: _Page, table: Table1) -> None:
    """Accuracy and the MIREX weighted key score of every selected key run."""
    scores = table.key_scores()
    if not scores:
        return
    page.heading(2, "Key scores")
    page.para(f"{KEY_SCORE_RULE}; {fifth_convention()}. Test set, the runs Table 1 shows.")
    rows = []
    for block, model, score in scores:
        cell = table.cells[(model, block)]["key"]
        rows.append([MODELS[model], "" if not variant(model).epochs else cell.epoch,
                     format_accuracy(cell.valid_accuracy), format_accuracy(cell.test_accuracy), f"{score:.4f}"])
    page.table(["model", "epoch", "valid accuracy", "test accuracy", "test weighted score"], rows,
               numeric={1, 2, 3, 4})


def _section_curves(page: _Page, run_dir: Path, out: Path, table: Table1, missing: list[str]) -> None:
    page.heading(2, "Learning curves")
    page.para("Validation accuracy per epoch of every conv-MLP run: pretrained (solid) vs random "
              "initialization (dashed), one colour per learning rate; dots mark the epochs Table 1 "
              "reports. The paper's claim: pretraining converges faster (its 20-epoch rows).")
    figs = []
    exp = run_dir / "experiments"
    conv_models = [m for r in table.recipes for m in RECIPE_MODELS[r]]  # the recipes' experiments
    for task in TASKS:
        curves: dict[str, list[dict[str, Any]]] = {}
        for model in conv_models:
            kind = variant(model).curve
            runs = _metrics(exp / task / model, missing)
            if not runs and (exp / task).is_dir():
                missing.append(f"learning curves: {task} / {MODELS[model]}: no lr-*/metrics.csv")
            for _, lr_text, rows in runs:
                curves[f"{kind} lr={lr_text}"] = rows
        if curves:
            p = _attempt(missing, f"learning curves of {task}", lambda: plot_learning_curves(
                curves, out / f"curves_{task}_convmlp.png", title=f"{task}: conv. MLP",
                chance=table.chance.get(task), marks=_marks(table)))
            if p is not None:
                figs.append((p, f"{task}: conv. MLP, pretrained vs random init"))
        lr_runs = _metrics(exp / task / "logreg", missing)
        if lr_runs:
            curves = {f"logreg lr={t}": rows for _, t, rows in lr_runs}
            p = _attempt(missing, f"logistic-regression curves of {task}", lambda: plot_learning_curves(
                curves, out / f"curves_{task}_logreg.png", title=f"{task}: windowed logistic regression",
                chance=table.chance.get(task), marks=(table.final_epoch,)))
            if p is not None:
                figs.append((p, f"{task}: windowed logistic regression"))
    if figs:
        page.figures(figs)
    else:
        page.para("No per-epoch metrics found (experiments/<task>/<model>/lr-<v>/metrics.csv).")


def _marks(table: Table1) -> tuple[int, ...]:
    return tuple(e for e in (table.early_epoch, table.final_epoch) if e is not None)


def _section_confusion(page: _Page, out: Path, table: Table1, missing: list[str]) -> None:
    page.heading(2, "Confusion matrices")
    page.para("Test set, the run each experiment selected on validation at the final epoch "
              "(rows: true class, normalized per row).")
    figs = []
    for task in TASKS:
        for model in dict.fromkeys(m for m, _ in table.rows):
            r: ExperimentResult | None = table.results.get((task, model))
            cell = table.cells.get((model, "final"), {}).get(task)
            if r is None or cell is None:
                continue
            epochs = variant(model).epochs
            row = r.select(cell.epoch) if epochs else r.select()
            matrix = row.get("confusion")
            if matrix is None:
                missing.append(f"confusion matrix: {task} / {MODELS[model]}: no 'confusion' in result.json")
                continue
            lr = format_learning_rate(row.get("learning_rate"))
            caption = (f"{task} / {MODELS[model]}" + (f", lr {lr}" if lr else "")
                       + (f", epoch {row.get('epoch')}" if epochs else "")
                       + f": test {format_accuracy(row.get('test_accuracy'))}")
            p = _attempt(missing, f"confusion matrix {task} / {MODELS[model]}", lambda: plot_confusion(
                matrix, r.classes, out / f"confusion_{task}_{model}.png", title=f"{task} / {MODELS[model]}"))
            if p is not None:
                figs.append((p, caption))
    if figs:
        page.figures(figs)
    else:
        page.para("No confusion matrices in the results.")


def _section_posteriors(page: _Page, run_dir: Path, out: Path, missing: list[str]) -> None:
    page.heading(2, "Posteriors over time")
    page.para("For each task, one test track the conv MLP gets right and one it gets wrong: the posterior of every "
              "layer-4 step (51 beats, one every 16 beats, about 4 bars), most probable classes on top, the true "
              "class marked *. The track's answer is the mean of its columns.")
    experiments = run_dir / "experiments"
    tasks = sorted(p.name for p in experiments.iterdir() if p.is_dir()) if experiments.is_dir() else []
    figs = []
    for task in tasks:
        examples = _attempt(missing, f"posteriors over time: {task}", lambda: task_examples(run_dir, task))
        for ex in examples or []:
            what = "correct" if ex.correct else "wrong"
            caption = (f"{task} / {MODELS.get(ex.model, ex.model)}: test track {ex.track_id}, true {ex.true_label}, "
                       f"predicted {ex.predicted} ({what})")
            p = _attempt(missing, f"posterior plot {task} ({what})", lambda: plot_posterior_over_time(
                ex.posteriors, ex.beat_ranges, ex.labels, out / f"posterior_{task}_{what}.png",
                true_label=ex.true_label, title=caption))
            if p is not None:
                figs.append((p, caption))
    if figs:
        page.figures(figs)
    else:
        page.para("No conv MLP model with a readable test split in this run.")


def _section_dbn(page: _Page, run_dir: Path, out: Path, missing: list[str]) -> None:
    dbn_dir = run_dir / "dbn"
    page.heading(2, "Pretrained DBN")
    figs = []
    csv_path = dbn_dir / "pretrain.csv"
    if csv_path.exists():
        p = _attempt(missing, "pretraining statistics", lambda: plot_pretraining(csv_path, out / "pretraining.png"))
        if p is not None:
            page.figures([(p, "pretraining: reconstruction error, mean hidden activation (target dotted), "
                              "free energy of data vs reconstructions")], wide=True)
    else:
        missing.append(f"pretraining statistics: {csv_path.relative_to(run_dir)} not found")
    if (dbn_dir / "model.pt").exists() and (dbn_dir / "config.json").exists():
        paths = _attempt(missing, "DBN filters", lambda: plot_filters(dbn_dir, out))
        if paths:
            names = {"1a": "layer 1a (chroma) filters", "1b": "layer 1b (timbre) filters",
                     "3": "layer 3 filters (pooled 1a + 1b maps)"}
            figs = [(p, names.get(s, s)) for s, p in paths.items()]
            page.figures(figs[:2])
            page.figures(figs[2:], wide=True)
    else:
        missing.append(f"DBN filters: {(dbn_dir / 'model.pt').relative_to(run_dir)} or config.json not found")
    config = _read_json(dbn_dir / "config.json", [], "DBN config") if (dbn_dir / "config.json").exists() else None
    if isinstance(config, dict):
        page.code(json.dumps(config, indent=2), "DBN configuration (dbn/config.json)")
    if not figs and not csv_path.exists():
        page.para("No pretrained DBN in this run.")


def _section_label_curves(page: _Page, curve_dirs: list[Path], out: Path, missing: list[str]) -> None:
    """Each label-efficiency curve (``beatdbn curve``'s folder): its figure, its accuracies and its paired
    comparisons, the tables of its own ``curve.md``."""
    for d in curve_dirs:
        curve = _read_json(Path(d) / "curve.json", missing, f"label-efficiency curve {d}")
        if not isinstance(curve, dict) or "summary" not in curve:
            continue
        task = curve.get("task", "?")
        page.heading(2, f"Label-efficiency curve: {task}")
        seeds = ", ".join(map(str, curve.get("config", {}).get("seeds", [])))
        page.para(f"Test accuracy against labelled training tracks per class ({len(curve.get('classes', []))} "
                  f"classes, chance {curve.get('chance', float('nan')):.1%}), seeds {seeds}: mean ± sd [95 % interval] "
                  f"over seeds. From {d} (`beatdbn curve`).")
        fig = _attempt(missing, f"curve {task}", lambda: plot_curve(curve, out / f"label-curve-{task}.png"))
        if fig is not None:
            page.figures([(fig, f"{task}: test accuracy against labelled tracks per class")])
        ns, rows = summary_cells(curve)
        page.table(["model", *(f"n={n}" for n in ns)], [[m, *cells] for m, cells in rows],
                   numeric=set(range(1, len(ns) + 1)))
        comparisons = paired_cells(curve, ns)
        if comparisons:
            page.para(PAIRED_LEGEND + "; * where the interval excludes 0.")
            page.table(["comparison", *(f"n={n}" for n in ns)],
                       [[label, *(NO_CELL if c is None else c[0] + (" *" if c[1] else "") for c in cells)]
                        for label, cells in comparisons], numeric=set(range(1, len(ns) + 1)))


def _projected_value(key: str, value: Any) -> str:
    """Seconds (a number under a key naming seconds) as a duration; anything else as text."""
    k = key.lower()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and ("second" in k or k.endswith("_s")):
        return format_duration(value)
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _section_run(page: _Page, run_config: Any) -> None:
    page.heading(2, "Run")
    if not isinstance(run_config, dict):
        page.para("config.json not found: configuration, versions and timings are unknown.")
        return
    timings = run_config.get("timings") or {}
    if isinstance(timings, dict) and timings:
        rows = [[k, format_duration(v)] for k, v in timings.items()]
        nums = [float(v) for v in timings.values() if isinstance(v, (int, float)) and math.isfinite(v)]
        if nums:
            rows.append(["total", format_duration(sum(nums))])
        page.heading(3, "Timings")
        page.table(["stage", "wall time"], rows, numeric={1})
    projected = run_config.get("projected")
    if projected:
        page.heading(3, "Projected wall time at full scale")
        if isinstance(projected, dict):
            page.table(["", ""], [[k, _projected_value(k, v)] for k, v in projected.items()])
        else:
            page.para(str(projected))
    versions = run_config.get("versions") or {}
    if isinstance(versions, dict) and versions:
        page.heading(3, "Versions")
        page.table(["package", "version"], [[k, v] for k, v in versions.items()])
    if run_config.get("config") is not None:
        page.code(json.dumps(run_config["config"], indent=2, default=str), "Configuration (config.json)")


def _seeds_config(record: dict, run_dir: Path, table: Table1) -> dict[str, Any]:
    """The Run section of a multi-seed run: the shared options (seeds.json) and the seeds' timings summed."""
    timings: dict[str, float] = {}
    versions, commit = {}, None
    for seed in table.seed_ids:
        cfg = _read_json(run_dir / f"seed-{seed}" / "config.json", [], "seed configuration")
        if not isinstance(cfg, dict):
            continue
        versions = versions or cfg.get("versions") or {}
        commit = commit or cfg.get("git_commit")
        for stage, sec in (cfg.get("timings") or {}).items():
            if isinstance(sec, (int, float)) and math.isfinite(sec):
                timings[f"seed {seed}: {stage}"] = float(sec)
    config = {k: v for k, v in record.items() if k != "config"}
    config["options"] = record.get("config")
    return {"config": config, "timings": timings, "versions": versions, "git_commit": commit}


def write_report(run_dir: str | Path, *, embed_images: bool = False, curves: list | tuple = ()) -> Path:
    """Write ``RUN_DIR/report.md``, ``RUN_DIR/report.html`` and the plots in ``RUN_DIR/report/``.

    Parameters
    ----------
    run_dir : str or Path
        A reproduction run directory (layout in the module docstring); any
        part of it may be missing.
    embed_images : bool
        Embed the PNGs in ``report.html`` as base64 instead of linking
        ``report/<name>.png`` relatively.
    curves : sequence of path
        Folders of ``beatdbn curve`` whose label-efficiency curves the report shows after Table 1's sections.

    Returns
    -------
    Path
        ``RUN_DIR/report.html`` (``report.md`` is beside it).

    Raises
    ------
    DataError
        ``run_dir`` is not a directory.

    Examples
    --------
    >>> import tempfile
    >>> write_report(tempfile.mkdtemp()).name
    'report.html'
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a run directory; give the --out folder of 'beatdbn reproduce'")
    out = run_dir / REPORT_DIR
    out.mkdir(exist_ok=True)
    missing: list[str] = []

    seeded = (run_dir / SEEDS_FILE).exists()
    try:
        table = Table1.from_run(run_dir)
    except DataError as exc:  # a damaged seeds.json: say so, and show what is left
        missing.append(str(exc))
        table = Table1([])
    if seeded and table.multi_seed:
        record = _read_json(run_dir / SEEDS_FILE, missing, "seeds") or {}
        first = run_dir / f"seed-{table.seed_ids[0]}" if table.seed_ids else run_dir
        if not table.seed_ids:
            missing.append(f"seeds: none finished yet ({run_dir / SEEDS_FILE})")
        run_config = _seeds_config(record, run_dir, table)
        tasks_json = _read_json(first / "tasks" / "tasks.json", missing, "tasks")
    else:
        run_config = _read_json(run_dir / "config.json", missing, "run configuration")
        tasks_json = _read_json(run_dir / "tasks" / "tasks.json", missing, "tasks")
        _, problems = load_results(run_dir / "experiments")
        missing += problems
        table.notes = [n for n in table.notes if n not in problems]
    missing += [f"Table 1: {m}" for m in table.missing]

    page = _Page(run_dir, embed_images)
    body_start = len(page.html)
    _section_table(page, table)
    _section_seeds(page, out, table, missing)
    _section_paired(page, table)
    _section_tasks(page, tasks_json)
    _section_key_scores(page, table)
    if table.multi_seed:
        _section_seed_reports(page, run_dir, table)
    else:
        _section_curves(page, run_dir, out, table, missing)
        _section_confusion(page, out, table, missing)
        _section_posteriors(page, run_dir, out, missing)
        _section_dbn(page, run_dir, out, missing)
    _section_label_curves(page, [Path(c) for c in curves], out, missing)
    _section_run(page, run_config)
    body_md, body_html = page.md, page.html[body_start:]

    commit = run_config.get("git_commit") if isinstance(run_config, dict) else None
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    meta = f"Run directory {run_dir.resolve()} \u00b7 git commit {commit or 'unknown'} \u00b7 report written {when}"
    if table.multi_seed:
        meta += f" \u00b7 seeds {', '.join(map(str, table.seed_ids)) or 'none finished'}"
    title = "beatdbn: reproduction of Dieleman, Brakel & Schrauwen (ISMIR 2011)"
    head = _Page(run_dir, embed_images)
    head.heading(1, title)
    head.para(meta, css="meta")
    head.raw("", '<p class="meta">' + " \u00b7 ".join(
        f'<a href="#{re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")}">{s}</a>' for s in page.toc) + "</p>")
    if table.warnings:
        head.heading(2, "Models that did not leave chance")
        head.raw("", '<div class="warn-box">')
        head.bullets(table.warnings)
        head.raw("", "</div>")
    if missing:
        head.heading(2, "Missing from this run")
        head.raw("", '<div class="missing-box">')
        head.bullets(missing)
        head.raw("", "</div>")
    else:
        head.para("Every part of the run is present.")

    md_text = "\n".join(head.md + body_md)
    html_text = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                 f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
                 + "\n".join(head.html + body_html) + "\n</body></html>\n")
    for name, text in (("report.md", md_text), ("report.html", html_text)):
        write_text(run_dir / name, text)
    return run_dir / "report.html"
