"""The experiment registry: every model kind of Table 1 is one module in :mod:`beatdbn.experiments.kinds`.

A kind module defines ``KIND = ModelKind(...)``: its experiments (:class:`Variant`: the name of each, which
is the folder ``RUN_DIR/experiments/<task>/<name>/`` and the result's ``model``, its Table 1 row label and
blocks, its parameters), where its settings come from in a run's configuration and which learning rates
they sweep, its cost (for the ETA) and how its measured time projects to the paper's scale, the function
that trains one experiment (an entry point ``"module:function"`` taking a :class:`TrainJob`, resolved by
:func:`beatdbn.train.kinds.train`, so this layer imports nothing that trains) and how its run loads for
inference. ``reproduce``, the sweep, the curve, Table 1, the report and the projection read the registry,
so adding a model is adding one module (and its test)::

    # src/beatdbn/experiments/kinds/knn.py
    KIND = ModelKind(name="knn", order=12, variants=(Variant("knn", "k nearest neighbours", "kNN", epochs=False),),
                     settings=lambda config, variant: KnnConfig(), cost=lambda s, beats, **_: 0.01 * beats,
                     trainer="beatdbn.experiments.kinds.knn:train", default=False)

A kind with ``default=False`` runs only when asked (``beatdbn reproduce --models +knn``), so the default
Table 1 stays the paper's. Names map to variants both ways (:func:`variant` is the inverse of a kind's
naming function: a dict, no parsing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from beatdbn.exceptions import ParameterError
from beatdbn.utils.modules import declared

__all__ = ["ModelKind", "Variant", "TrainJob", "kinds", "kind", "variants", "variant", "plan", "table_rows",
           "recipes", "optional", "check_models", "labels", "one_fit", "sweep_scaled", "BLOCKS", "REFERENCE"]

#: Table 1's blocks, in order: the final epoch (30 in the paper), then the early snapshot (20).
BLOCKS = ("final", "early")
#: The row every compared model (``Variant.compare``) is tested against: windowed logistic regression.
REFERENCE = "logreg"


@dataclass(frozen=True)
class Variant:
    """One experiment of a kind: ``name`` (folder and result ``model``), Table 1's ``label`` and ``short`` name.

    ``params``: what the trainer needs besides the settings (a conv MLP's ``init``); ``recipe``: the
    finetuning recipe whose rows it belongs to (None: run whatever the recipe); ``blocks``: its Table 1 rows;
    ``epochs``: trained in epochs (False: one fit, no epoch shown); ``compare``: tested against
    :data:`REFERENCE` in Table 1; ``curve``: its name in the report's learning-curve legends.
    """

    name: str
    label: str
    short: str
    params: Mapping[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    blocks: tuple[str, ...] = ("final",)
    epochs: bool = True
    compare: bool = False
    curve: str = ""


@dataclass(frozen=True)
class TrainJob:
    """One experiment (or one learning rate of it) to train: what a kind's trainer receives.

    ``splits``: (train, valid, test) :class:`~beatdbn.data.splits.SplitData`; ``settings``: the kind's
    settings (:attr:`ModelKind.settings`, learning rates narrowed to one for a rate job); ``dbn``: a
    callable that gives the pretrained DBN (kinds with ``needs_dbn``); ``plots``: draw the run's plots.
    """

    task: str
    variant: Variant
    splits: tuple
    out: Path
    settings: Any
    device: str = "cpu"
    progress: Callable[[dict], None] | None = None
    plots: bool = True
    dbn: Callable[[], Any] | None = None


def one_fit(seconds: float, *, beats: float, paper_beats: float, here: Any, full: Any, **_: Any) -> float:
    """Projection of a kind fit once: seconds per training beat x the paper's training beats."""
    return seconds / beats * paper_beats * 1.0


def sweep_scaled(seconds: float, *, beats: float, paper_beats: float, here: Any, full: Any, **_: Any) -> float:
    """Projection of a swept kind: seconds per beat x the paper's beats x (full sweep's epochs x rates / this
    run's)."""
    factor = (full.epochs * len(full.learning_rates)) / (here.epochs * len(here.learning_rates))
    return seconds / beats * paper_beats * factor


def _no_rates(settings: Any) -> tuple[float, ...]:
    return ()


@dataclass(frozen=True)
class ModelKind:
    """A model kind (see the module docstring).

    ``settings(config, variant)``: the kind's settings in a run's configuration (a
    :class:`~beatdbn.pipeline.reproduce.ReproduceConfig`, or anything with ``baselines`` and
    ``finetune_for(recipe)``); ``rates(settings)``: the learning rates swept, each its own job (empty: one job
    trains the whole experiment); ``rate_done(lr_dir, settings)``: whether a rate's job has finished;
    ``cost(settings, beats, *, tracks, task)``: relative cost on ``beats`` training beats of ``tracks`` tracks
    of task ``task``, in conv-MLP beat-epochs (the ETAs and the sweep's job order); ``project(seconds, beats=, paper_beats=, here=, full=, tracks=, paper_tracks=)``: this run's
    seconds at the paper's task size and full protocol; ``trainer``: ``"module:function"`` taking a
    :class:`TrainJob` and returning its :class:`~beatdbn.metrics.results.ExperimentResult`; ``needs_dbn``:
    the trainer uses the pretrained DBN; ``default``: run by ``reproduce`` unless left out (False: only when
    asked); ``loads``: how a finished run loads for inference (an entry point, or None: Table 1 only).
    """

    name: str
    order: int
    variants: tuple[Variant, ...]
    settings: Callable[[Any, Variant], Any]
    cost: Callable[..., float]
    trainer: str
    rates: Callable[[Any], tuple[float, ...]] = _no_rates
    rate_done: Callable[[Path, Any], bool] | None = None
    project: Callable[..., float] = one_fit
    needs_dbn: bool = False
    default: bool = True
    loads: str | None = "beatdbn.inference.runs:load_run"
    help: str = ""


_KINDS: dict[str, ModelKind] | None = None
_VARIANTS: dict[str, tuple[ModelKind, Variant]] | None = None


def kinds() -> dict[str, ModelKind]:
    """Every registered model kind, by name, in table order (imports each module of the kinds package once)."""
    global _KINDS, _VARIANTS
    if _KINDS is None:
        from beatdbn.experiments import kinds as package  # the package the kind modules live in (no cycle)

        found = sorted(declared(package, "KIND", ModelKind), key=lambda k: (k.order, k.name))
        by_variant: dict[str, tuple[ModelKind, Variant]] = {}
        for k in found:
            for v in k.variants:
                if v.name in by_variant:
                    raise RuntimeError(f"kinds {by_variant[v.name][0].name} and {k.name} both name an experiment "
                                       f"{v.name!r}")
                by_variant[v.name] = (k, v)
        if len({k.name for k in found}) != len(found):
            raise RuntimeError(f"two kind modules declare the same kind name: {sorted(k.name for k in found)}")
        _KINDS, _VARIANTS = {k.name: k for k in found}, by_variant
    return _KINDS


def variants() -> dict[str, Variant]:
    """Every experiment of every kind, by name, in table order."""
    kinds()
    return {name: v for name, (_, v) in _VARIANTS.items()}


def variant(name: str) -> Variant:
    """The experiment called ``name`` (the inverse of a kind's naming); a :class:`ParameterError` lists them."""
    kinds()
    try:
        return _VARIANTS[name][1]
    except KeyError:
        raise ParameterError(f"unknown model {name!r}; choose from {', '.join(_VARIANTS)}") from None


def kind(name: str) -> ModelKind:
    """The kind of the experiment (or kind) called ``name``."""
    found = kinds().get(name)
    if found is not None:
        return found
    variant(name)
    return _VARIANTS[name][0]


def recipes() -> tuple[str, ...]:
    """The finetuning recipes some kind's experiments belong to, in declaration order."""
    return tuple(dict.fromkeys(v.recipe for v in variants().values() if v.recipe is not None))


def optional() -> tuple[str, ...]:
    """Names of the experiments that run only when asked (their kind's ``default`` is False)."""
    kinds()
    return tuple(name for name, (k, _) in _VARIANTS.items() if not k.default)


def check_models(models: Iterable[str]) -> tuple[str, ...]:
    """``models`` (opt-in experiments to add) checked: each must be an :func:`optional` experiment."""
    models = tuple(dict.fromkeys(models))
    for name in models:
        if name not in optional():
            raise ParameterError(f"--models +{name}: not a model to add; choose from "
                                 f"{', '.join(optional()) or '(none)'} (the others run by default)")
    return models


def plan(run_recipes: Iterable[str] = ("paper",), extra: Iterable[str] = ()) -> tuple[Variant, ...]:
    """The experiments a run trains, in Table 1 order: every default experiment without a recipe (and those of
    ``extra``), then each of ``run_recipes``' experiments.

    Examples
    --------
    >>> [v.name for v in plan(("paper",))]
    ['naive_bayes', 'logreg', 'convmlp_random', 'convmlp_pretrained']
    """
    extra = set(extra)
    kinds()
    chosen = [v for k, v in _VARIANTS.values() if k.default or v.name in extra]
    out = [v for v in chosen if v.recipe is None]
    for r in run_recipes:
        if r not in recipes():
            raise ParameterError(f"recipe {r!r}: choose from {', '.join(recipes())}")
        out += [v for v in chosen if v.recipe == r]
    return tuple(out)


def table_rows(run_recipes: Iterable[str] = ("paper",), extra: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """(experiment, block) rows of Table 1: each block's rows in :func:`plan` order.

    Examples
    --------
    >>> table_rows(("beatdbn",))[2]
    ('convmlp_random_beatdbn', 'final')
    """
    chosen = plan(tuple(run_recipes), extra)
    return tuple((v.name, b) for b in BLOCKS for v in chosen if b in v.blocks)


def labels() -> dict[str, str]:
    """Experiment name -> its Table 1 row label."""
    return {name: v.label for name, v in variants().items()}
