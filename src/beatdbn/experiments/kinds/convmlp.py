"""The convolutional MLP (the paper's section 6): finetuned from the pretrained DBN or from random weights,
with a named finetuning recipe; one job per learning rate of the sweep.

The recipes (``'paper'``, ``'beatdbn'``: :meth:`~beatdbn.train.finetune_config.FinetuneConfig.for_recipe`)
and the inits (``'random'``, ``'pretrained'``) are this kind's parameters: each pair is one experiment,
named by :func:`model_name` (``convmlp_<init>`` for the paper's recipe, ``convmlp_<init>_<recipe>``
otherwise). Trained by :func:`beatdbn.train.finetune.run_convmlp`; its run loads for inference as a conv
MLP (:func:`beatdbn.inference.runs.load_run`).
"""

from __future__ import annotations

from pathlib import Path

from beatdbn.experiments.registry import ModelKind, Variant, sweep_scaled

__all__ = ["RECIPES", "INITS", "model_name", "updates_per_epoch", "KIND"]

#: Named finetuning recipes, in Table 1 order.
RECIPES = ("paper", "beatdbn")
#: Initializations (the random control draws from the pretrained layers' weight statistics).
INITS = ("pretrained", "random")
_LABELS = {("paper", "random"): ("conv. MLP without pretraining", "conv. MLP, random init"),
           ("paper", "pretrained"): ("conv. MLP with pretraining", "conv. MLP, pretrained"),
           ("beatdbn", "random"): ("conv. MLP (beatdbn recipe), random init", "conv. MLP (beatdbn), random init"),
           ("beatdbn", "pretrained"): ("conv. MLP (beatdbn recipe), pretrained", "conv. MLP (beatdbn), pretrained")}


def model_name(init: str, recipe: str = "paper") -> str:
    """The experiment name of a conv MLP: ``convmlp_<init>`` (paper recipe) or ``convmlp_<init>_<recipe>``.

    Examples
    --------
    >>> model_name("random", "beatdbn")
    'convmlp_random_beatdbn'
    """
    return f"convmlp_{init}" if recipe == "paper" else f"convmlp_{init}_{recipe}"


def updates_per_epoch(n_tracks: int, config) -> int:
    """SGD/Adam steps in one epoch: one pass of ``ceil(n / batch)``, or more to reach ``min_updates`` overall."""
    one_pass = -(-n_tracks // config.batch_size)
    return max(one_pass, -(-config.min_updates // config.epochs))


def _sweep_crops(n_train: int, config) -> int:
    """Training crops a whole learning-rate sweep processes on ``n_train`` training tracks (updates x batch)."""
    return (updates_per_epoch(n_train, config) * config.epochs * len(config.learning_rates)
            * min(config.batch_size, n_train))


def _cost(settings, beats: int, *, tracks: int = 0, task: str = "") -> float:
    """Relative cost of one sweep, in conv-MLP beat-epochs (the ETAs and the sweep's job order).

    Training costs its tracks' ``beats`` every epoch, or, with fixed-size crops (the ``beatdbn`` recipe), its
    crops (:func:`_sweep_crops` of its ``tracks``: at least ``min_updates`` updates however small the task);
    each epoch also evaluates the validation tracks (about ``beats / 8`` at 80/10/10), 12 times over on the key
    task when the recipe averages the 12 transpositions. On ``make real``'s 878 tracks (3 seeds, 2 workers, a
    loaded machine) the measured seconds per unit of each seed's 12 conv-MLP experiments lay within 0.65-1.9x
    of the seed's median; counting only the beats, 0.54-16x (the genre task's 32 tracks train 1,500 updates
    of 32 crops all the same).

    Examples
    --------
    >>> from beatdbn.train.finetune_config import FinetuneConfig
    >>> crops = FinetuneConfig.for_recipe("beatdbn")
    >>> _cost(crops, 16_000, tracks=32, task="genre") > 5 * _cost(FinetuneConfig(), 16_000, tracks=32, task="genre")
    True
    """
    runs = settings.epochs * len(settings.learning_rates)
    train = _sweep_crops(tracks, settings) * settings.crop if settings.crop and tracks else beats * runs
    views = 12 if task == "key" and settings.augment in ("auto", "transpose") else 1
    return 1.2 * (train + beats / 8 * views * runs)


def _project(seconds: float, *, beats: float, paper_beats: float, here, full, tracks: int | None = None,
             paper_tracks: int | None = None) -> float:
    """A recipe that trains on fixed-size crops (``beatdbn``) costs its crops (updates x batch), so its time
    scales with the crops it would train on at the paper's task size; whole tracks scale by beats."""
    if here.crop and tracks:
        return seconds * _sweep_crops(paper_tracks, full) / _sweep_crops(tracks, here)
    return sweep_scaled(seconds, beats=beats, paper_beats=paper_beats, here=here, full=full)


def _rate_done(lr_dir: Path, settings) -> bool:
    # a rate is trained when its last epoch's snapshot is saved (just before the last checkpoint: a rate killed
    # between the two trains its last epoch again in its experiment's assembly)
    return (lr_dir / f"epoch-{settings.epochs}" / "model.pt").exists()


KIND = ModelKind(
    name="convmlp",
    order=30,
    variants=tuple(Variant(model_name(init, recipe), *_LABELS[(recipe, init)], params={"init": init},
                           recipe=recipe, blocks=("final", "early"), compare=True,
                           curve=init if recipe == "paper" else f"{init} {recipe}")
                   for recipe in RECIPES for init in ("random", "pretrained")),
    settings=lambda config, variant: config.finetune_for(variant.recipe),
    rates=lambda settings: settings.learning_rates,
    rate_done=_rate_done,
    cost=_cost,
    project=_project,
    trainer="beatdbn.train.kinds:convmlp",
    needs_dbn=True,
    help="convolutional MLP from the pretrained DBN or random weights, per finetuning recipe",
)
