"""Inference: loading a finished run, posteriors of tracks (per track and over time), predicting files, embeddings.

Training (:mod:`beatdbn.train`) and the evaluate/predict/serve/embed commands
all use this package; it imports nothing above :mod:`beatdbn.data`.

Modules, one job each:

* :mod:`~beatdbn.inference.runs`: :func:`load_run` (conv MLP or baseline run,
  dispatched on ``config.json``'s ``"model"``) gives a :class:`Run` whose
  ``predict_proba(features, *, over_time)`` answers for any model,
  :func:`shipped_model`, representation checks;
* :mod:`~beatdbn.inference.classifier`: the one validity check of a track
  (:func:`admit`) and the one classifier protocol (conv MLP: steps and track
  posterior from one pass; window baselines);
* :mod:`~beatdbn.inference.answer`: the one answer built from posteriors
  (``predict``, ``serve``, the report's examples);
* :mod:`~beatdbn.inference.posteriors`: :func:`split_posteriors`,
  :func:`step_posteriors`, :func:`predict_features`;
* :mod:`~beatdbn.inference.steps`: the beats and seconds of each layer-4 step;
* :mod:`~beatdbn.inference.inputs`: files and folders (recursive) to input files;
* :mod:`~beatdbn.inference.files`: :func:`predict_files`, :func:`iter_predictions`;
* :mod:`~beatdbn.inference.rows`: CSV / JSON Lines output rows;
* :mod:`~beatdbn.inference.analysis`: one file, every model, for a page;
* :mod:`~beatdbn.inference.encoders`, :mod:`~beatdbn.inference.embed`,
  :mod:`~beatdbn.inference.embed_writers`: layer-4 embeddings to Parquet/NPZ.
"""

import sys
import types

# Names are imported on first use (PEP 562): importing a module of this package (e.g. beatdbn.inference.files
# for a one-song predict with the shipped model's numpy forward) then never loads torch through this file.
_WHERE = {
    "runs": ["REPRESENTATION_NAMES", "SHIPPED_MODELS", "Posteriors", "Run", "label_names", "load_run",
             "needed_model_kind", "representation_mismatch", "shipped_model", "shipped_model_dir"],
    "posteriors": ["predict_features", "split_posteriors", "step_posteriors"],
    "steps": ["step_beat_ranges", "step_times"],
    "inputs": ["iter_inputs"],
    "files": ["iter_predictions", "predict_files"],
    "rows": ["ROW_COLUMNS", "answer_row", "row_writer"],
    "analysis": ["analyse_file"],
}  # and embed: a property of the package's module type (_Package, below)
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = ["Run", "Posteriors", "load_run",
           "label_names", "shipped_model", "shipped_model_dir", "representation_mismatch",
           "needed_model_kind", "SHIPPED_MODELS", "REPRESENTATION_NAMES", "predict_features", "split_posteriors",
           "step_posteriors", "step_beat_ranges", "step_times", "iter_inputs", "iter_predictions", "predict_files",
           "ROW_COLUMNS", "answer_row", "row_writer", "analyse_file", "embed"]


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'beatdbn.inference' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"beatdbn.inference.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package's module type. ``embed`` names both a submodule and the function in it; importing the
    submodule makes the import system set the package's ``embed`` to the module, after which the module-level
    ``__getattr__`` above is never asked. The property keeps ``beatdbn.inference.embed`` the function, as an
    eager ``from beatdbn.inference.embed import embed`` here always did (``from beatdbn.inference.embed import
    ...`` reads the submodule from ``sys.modules`` and is not affected)."""

    @property
    def embed(self):
        from beatdbn.inference.embed import embed  # reason: lazy, torch (see the note above _WHERE)

        return embed

    @embed.setter
    def embed(self, value) -> None:  # the import system binding the submodule: the function stays the answer
        pass


sys.modules[__name__].__class__ = _Package
