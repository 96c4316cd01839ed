"""The task registry: every classification task is one module in :mod:`beatdbn.tasks.kinds`.

A task module defines ``TASK = TaskSpec(...)``: its name, its title in Table 1,
its options (the paper's scale as defaults; the CLI turns each into a flag),
how a track's label is read from the store's metadata (``build``: rows in,
:class:`~beatdbn.tasks.selection.Task` out, using the shared selection and
split helpers) and, where the paper has one, its column of the paper's
Table 1. ``tasks``, ``reproduce``, the CLI options, Table 1, the report and
the metrics all read the registry, so adding a task is adding one module
(and its test)::

    # src/beatdbn/tasks/kinds/mood.py
    TASK = TaskSpec(name="mood", title="mood", order=40, options=(TaskOption("per_mood", 100, "..."),),
                    columns=("mood",), build=_build)

Modules are found by :func:`specs` (every module of ``beatdbn.tasks.kinds``
that defines ``TASK``); order in tables and summaries is ``TaskSpec.order``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from beatdbn.exceptions import ParameterError
from beatdbn.tasks.selection import held_out
from beatdbn.utils.modules import declared

__all__ = ["TaskSpec", "TaskOption", "PaperColumn", "TaskConfig", "specs", "spec", "task_names", "all_options", "SCALES"]

SCALES = ("paper", "auto", "auto-all-classes")
#: ``--scale auto``: the default of ``min_test_per_class``, the test tracks a class needs (2 at 80/10/10: 20 tracks
#: per class), so that an accuracy means something; ``--min-per-class`` overrides it.
MIN_TEST_PER_CLASS = 2


@dataclass(frozen=True)
class TaskOption:
    """One setting of a task: ``name`` is the config key and the CLI flag (``per_genre`` → ``--per-genre``).

    ``check(value)`` raises :class:`ParameterError` for a bad value (ints must be >= ``minimum`` anyway).
    A bool option becomes an on/off flag.
    """

    name: str
    default: Any
    help: str
    minimum: int | None = None
    check: Callable[[Any], None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def validate(self, value: Any) -> None:
        if self.minimum is not None and (not isinstance(value, int) or value < self.minimum):
            raise ParameterError(f"{self.name} must be an int >= {self.minimum}, got {value!r}")
        if self.check is not None:
            self.check(value)


@dataclass(frozen=True)
class PaperColumn:
    """The task's column of the paper's Table 1.

    ``results``: (model, block) -> (test accuracy, chosen learning rate);
    ``classes`` × ``per_class``: the paper's scale; ``train_tracks``: its
    training tracks (for the projected time at the paper's scale).
    """

    classes: int
    per_class: int
    train_tracks: int
    results: Mapping[tuple[str, str], tuple[float, float | None]]


@dataclass(frozen=True)
class TaskSpec:
    """A classification task (see the module docstring).

    ``build(rows, config, context) -> Task`` draws classes, tracks and splits:
    ``rows`` is the store's metadata as a dict of column lists (duplicates
    dropped), ``config`` the :class:`TaskConfig`, ``context`` a dict with
    ``"genre_labels"`` (external labels, or None) and ``"stats"`` (a dict the
    task may add its label counts to). It raises
    :class:`~beatdbn.tasks.selection.TaskScaleError` when the corpus is too
    small. ``cap(config) -> (classes, per_class)``: the scale asked for (caps
    at ``scale='auto'``). ``min_per_class``: fewest tracks a class needs at
    ``scale='auto'`` (0: enough for one train, one valid and one test track).
    ``key_scores``: report the MIREX weighted key score.
    """

    name: str
    title: str
    order: int
    build: Callable[[dict, "TaskConfig", dict], Any]
    cap: Callable[["TaskConfig"], tuple[int, int]]
    options: tuple[TaskOption, ...] = ()
    columns: tuple[str, ...] = ()
    help: str = ""
    paper: PaperColumn | None = None
    min_per_class: int = 0
    key_scores: bool = False
    unit: str = "tracks per class"
    notes: tuple[str, ...] = field(default=())


_SPECS: dict[str, TaskSpec] | None = None


def specs() -> dict[str, TaskSpec]:
    """Every registered task, by name, in table order (imports each module of ``beatdbn.tasks.kinds`` once)."""
    global _SPECS
    if _SPECS is None:
        from beatdbn.tasks import kinds  # the package the task modules live in (same package: no cycle)

        found = declared(kinds, "TASK", TaskSpec)
        names = [t.name for t in found]
        if len(set(names)) != len(names):
            raise RuntimeError(f"two task modules declare the same task name: {sorted(names)}")
        _SPECS = {t.name: t for t in sorted(found, key=lambda t: (t.order, t.name))}
    return _SPECS


def task_names() -> tuple[str, ...]:
    """Names of every registered task, in table order."""
    return tuple(specs())


def spec(name: str) -> TaskSpec:
    """The task called ``name``; a :class:`ParameterError` lists the known ones."""
    try:
        return specs()[name]
    except KeyError:
        raise ParameterError(f"unknown task {name!r}; choose from {', '.join(specs())}") from None


def all_options() -> dict[str, tuple[TaskSpec, TaskOption]]:
    """Every option of every task: name -> (task, option)."""
    out: dict[str, tuple[TaskSpec, TaskOption]] = {}
    for s in specs().values():
        for o in s.options:
            if o.name in out:
                raise RuntimeError(f"tasks {out[o.name][0].name} and {s.name} both declare option {o.name!r}")
            out[o.name] = (s, o)
    return out


class TaskConfig:
    """Which tasks to build, at which scale, with which split protocol and seed (paper defaults).

    The shared settings are attributes; every option a task declares
    (``per_genre``, ``artists``, ``key_classes``, ``per_decade``, ...) is a
    keyword too, read back as an attribute (``config.per_genre``). With
    ``scale='auto'`` each task's scale numbers are caps and it takes the
    largest balanced scale the corpus supports.
    """

    _SHARED = ("valid_fraction", "test_fraction", "seed", "tasks", "scale", "min_per_class", "min_test_per_class")

    def __init__(self, *, valid_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                 tasks: tuple[str, ...] | None = None, scale: str = "paper", min_per_class: int = 0,
                 min_test_per_class: int = MIN_TEST_PER_CLASS, **options: Any) -> None:
        known = all_options()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ParameterError(f"unknown task option {unknown[0]!r}; the tasks' options are {', '.join(known)}")
        values = {name: opt.default for name, (_, opt) in known.items()}
        values.update(options)
        self.valid_fraction = valid_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.tasks = tuple(tasks) if tasks else task_names()
        self.scale = scale
        self.min_per_class = min_per_class
        self.min_test_per_class = min_test_per_class
        self.options = values
        for t in self.tasks:
            spec(t)
        for name, value in values.items():
            known[name][1].validate(value)
        if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
            raise ParameterError(
                f"valid/test fractions {valid_fraction}/{test_fraction} must be in [0, 1) and sum below 1")
        if scale not in SCALES:
            raise ParameterError(f"scale {scale!r}: choose 'paper' (the paper's sizes, the default), 'auto' "
                                 f"(the classes that use the most tracks, {min_test_per_class}+ test tracks per "
                                 f"class) or 'auto-all-classes' (every class above the floor, at the smallest's size)")
        if not isinstance(min_per_class, int) or min_per_class < 0:
            raise ParameterError(f"min_per_class={min_per_class!r}: must be an int >= 0 (0: the default)")
        if not isinstance(min_test_per_class, int) or min_test_per_class < 1:
            raise ParameterError(f"min_test_per_class={min_test_per_class!r}: must be an int >= 1 (default "
                                 f"{MIN_TEST_PER_CLASS}: 20 tracks per class at 80/10/10)")

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON): the shared settings and every task option."""
        d = {k: getattr(self, k) for k in self._SHARED}
        d["tasks"] = list(self.tasks)
        d.update(self.options)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TaskConfig":
        d = dict(d)
        if "tasks" in d:
            d["tasks"] = tuple(d["tasks"])
        return cls(**d)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TaskConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def replace(self, **changes: Any) -> "TaskConfig":
        return TaskConfig.from_dict({**self.to_dict(), **changes})

    def min_tracks(self, task: str) -> int:
        """Fewest tracks a class needs at ``scale='auto'``: ``min_per_class`` when set; else the task's own
        floor, or enough for one valid, one test and one training track (3 at 80/10/10)."""
        if self.min_per_class:
            return self.min_per_class
        if spec(task).min_per_class:
            return spec(task).min_per_class
        n = 1
        while not (held_out(n, self.valid_fraction) >= (self.valid_fraction > 0)
                   and held_out(n, self.test_fraction) >= (self.test_fraction > 0)
                   and n - held_out(n, self.valid_fraction) - held_out(n, self.test_fraction) >= 1):
            n += 1
        return n

    @property
    def is_auto(self) -> bool:
        """The scale is read from the corpus (``'auto'`` or ``'auto-all-classes'``)."""
        return self.scale != "paper"

    def auto_floor(self, task: str) -> int:
        """Fewest tracks a class needs at ``scale='auto'``: ``min_per_class`` when set; else the larger of
        :meth:`min_tracks` and ``ceil(min_test_per_class / test_fraction)`` (20 at 2 test tracks and 10 %: the
        class's expected test share, not its rounding, reaches the floor)."""
        if self.min_per_class or self.test_fraction <= 0:
            return self.min_tracks(task)
        return max(self.min_tracks(task), math.ceil(self.min_test_per_class / self.test_fraction - 1e-9))

    def cap(self, task: str) -> tuple[int, int]:
        """(classes, tracks per class) asked for (``scale='paper'``) or allowed at most (``'auto'``)."""
        return spec(task).cap(self)
