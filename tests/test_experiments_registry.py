"""experiments/registry: every model kind is one module; names map both ways; reproduce's plan, the sweep's
jobs, Table 1's rows, the cost and the projection follow it."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from beatdbn.evaluate.table import MODELS, ROWS, Table1
from beatdbn.exceptions import ParameterError
from beatdbn.experiments import registry
from beatdbn.experiments.kinds.convmlp import INITS, RECIPES, model_name
from beatdbn.metrics.results import ExperimentResult
from beatdbn.pipeline.reproduce import EXPERIMENTS, ReproduceConfig, experiments, parse_models
from beatdbn.pipeline.sweep import _rates, plan_jobs, settings_of


def test_every_kind_is_a_module_and_every_name_maps_back_without_parsing():
    assert [n for n, k in registry.kinds().items() if k.default] == ["naive_bayes", "logreg", "convmlp"]
    for recipe in RECIPES:
        for init in INITS:
            v = registry.variant(model_name(init, recipe))
            assert (v.params["init"], v.recipe) == (init, recipe)
            assert registry.kind(v.name).name == "convmlp" and registry.kind(v.name).needs_dbn
    assert registry.variant("naive_bayes").epochs is False and registry.kind("logreg").name == "logreg"
    assert set(MODELS) == set(registry.variants())  # Table 1's row names come from the kinds
    with pytest.raises(ParameterError, match="unknown model 'convmlp_pretrained_adam'; choose from naive_bayes"):
        registry.variant("convmlp_pretrained_adam")


def test_the_default_plan_and_rows_are_the_papers():
    assert EXPERIMENTS == ("naive_bayes", "logreg", "convmlp_random", "convmlp_pretrained")
    assert registry.table_rows(("paper",)) == ROWS == (
        ("naive_bayes", "final"), ("logreg", "final"), ("convmlp_random", "final"), ("convmlp_pretrained", "final"),
        ("convmlp_random", "early"), ("convmlp_pretrained", "early"))
    both = [v.name for v in registry.plan(("paper", "beatdbn"))]
    assert both == list(EXPERIMENTS) + ["convmlp_random_beatdbn", "convmlp_pretrained_beatdbn"]
    assert not set(registry.optional()) & set(both)  # an opt-in kind never joins the default plan
    with pytest.raises(ParameterError, match="recipe 'adam'"):
        registry.plan(("adam",))


def test_rates_cost_and_projection_come_from_the_kinds():
    config = ReproduceConfig.make(quick=True, recipe="both")
    assert _rates("naive_bayes", config) == (None,)  # one job is the whole experiment
    assert _rates("logreg", config) == config.baselines.learning_rates
    assert _rates("convmlp_random_beatdbn", config) == config.finetune_beatdbn.learning_rates
    assert settings_of("convmlp_pretrained", config) is config.finetune
    ft = config.finetune
    runs = ft.epochs * len(ft.learning_rates)  # training on the beats, and evaluating 1/8 of them, each epoch
    assert registry.kind("convmlp").cost(ft, 1000, tracks=2, task="genre") == pytest.approx(1.2 * (1000 + 125) * runs)
    assert registry.kind("naive_bayes").cost(config.baselines, 1000, tracks=2, task="genre") == 0.02 * 1000
    full = ReproduceConfig.make()
    got = registry.kind("logreg").project(10.0, beats=1000, paper_beats=2000, here=config.baselines,
                                          full=full.baselines)
    assert got == pytest.approx(10.0 / 1000 * 2000 * (30 * 5) / (10 * 2))


def test_plan_jobs_split_only_swept_kinds_into_rates(tmp_path):
    config = ReproduceConfig.make(quick=True)
    jobs = plan_jobs(tmp_path, ["key"], experiments(config), config)
    assert [(j.model, j.lr) for j in jobs] == (
        [("naive_bayes", None)] + [("logreg", lr) for lr in config.baselines.learning_rates]
        + [(m, lr) for m in ("convmlp_random", "convmlp_pretrained") for lr in config.finetune.learning_rates])


def test_added_models_are_opt_in_and_recorded_only_when_given():
    assert "models" not in ReproduceConfig.make().to_dict()  # a run folder of an older beatdbn still resumes
    assert parse_models("") == () and parse_models(None) == ()
    with pytest.raises(ParameterError, match=r"--models logreg: name a model to add with a '\+'"):
        parse_models("logreg")
    with pytest.raises(ParameterError, match=r"--models \+logreg: not a model to add"):
        parse_models("+logreg")
    with pytest.raises(ParameterError, match="not a model to add"):
        ReproduceConfig.make(models=("convmlp_random",))


def test_table1_shows_an_opt_in_row_only_when_it_has_a_result():
    """A registered opt-in kind's result gets a row (after the epochless ones, without a block label);
    without one, Table 1 keeps the paper's rows."""
    if not registry.optional():
        pytest.skip("no opt-in kind is registered")
    name = registry.optional()[0]

    def result(model, acc, epoch):
        r = ExperimentResult("key", model, classes=["C", "D"], chance=0.5)
        r.runs.append({"learning_rate": None if epoch == 0 else 0.01, "epoch": epoch, "valid_accuracy": acc,
                       "test_accuracy": acc})
        return r

    base = [result("naive_bayes", 0.6, 0), result("logreg", 0.7, 30)]
    assert Table1(base).rows == ROWS
    table = Table1(base + [result(name, 0.65, 0)])
    assert table.rows[:3] == (("naive_bayes", "final"), (name, "final"), ("logreg", "final"))
    assert table.cell(name, "final", "key").text == "65.00%"
    label, shown, _ = table._lines()[2]
    assert (label, shown) == ("", MODELS[name])  # epochless: no block label, no epoch
    assert table.to_dict()["rows"][1]["epoch"] is None


def test_a_kind_is_frozen_and_its_trainer_an_entry_point():
    k = registry.kind("convmlp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.name = "other"  # type: ignore[misc]
    for kind in registry.kinds().values():
        module, sep, function = kind.trainer.partition(":")
        assert sep and callable(getattr(importlib.import_module(module), function))
