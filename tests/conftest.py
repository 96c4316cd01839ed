"""Shared fixtures: where the real data lives (skip when absent).

The real data (MSD track files in ``msd/``, recordings in ``audio/``) is looked up in one place:
:func:`shared_data`, the folder named by the environment variable ``BEATDBN_SHARED_DATA``, by default
``../shared/data`` beside the repository. Tests that need a file from it skip, naming the variable
(:func:`missing`), when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The environment variable that points the real-data tests at another copy of ``shared/data``.
SHARED_DATA_ENV = "BEATDBN_SHARED_DATA"


def shared_data(environ=os.environ) -> Path:
    """The real-data folder: ``$BEATDBN_SHARED_DATA`` when set (``~`` expanded; relative to the current
    folder), else ``../shared/data`` beside the repository."""
    given = environ.get(SHARED_DATA_ENV, "").strip()
    return Path(given).expanduser() if given else ROOT.parent / "shared" / "data"


def missing(path: Path) -> str:
    """The skip reason of a test whose real-data file or folder ``path`` is absent."""
    return (f"{path} is not present (real data: set {SHARED_DATA_ENV} to a folder holding msd/ and audio/; "
            f"default ../shared/data beside the repository)")


SHARED_DATA = shared_data()
SHARED_MSD = SHARED_DATA / "msd"
SHARED_AUDIO = SHARED_DATA / "audio"
RICK = SHARED_MSD / "TRAXLZU12903D05F94.h5"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """CLI commands run in-process set the process's thread policy (as `beatdbn` does): restore it after each test."""
    import torch

    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


@pytest.fixture
def shared_msd() -> Path:
    """The folder of ten real MSD track files; skips the test when absent."""
    if not RICK.exists():
        pytest.skip(missing(RICK))
    return SHARED_MSD


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> dict:
    """A small synthetic corpus, extracted and split into tasks, shared by the whole session.

    600 tracks of 60 artists; tasks: artist (4 artists x 20 tracks), genre
    (6 tracks x 20 genres), key (16 per key), decade (10 per decade). Returns
    ``{"msd": folder of .h5 files, "store": store folder, "tasks": tasks folder}``.
    Read-only: tests that write must write elsewhere.
    """
    from beatdbn.store.extract import extract
    from beatdbn.store.reader import FeatureStore
    from beatdbn.synth.corpus import generate_corpus
    from beatdbn.tasks.build import TaskConfig, build_tasks, write_tasks

    root = tmp_path_factory.mktemp("demo")
    generate_corpus(root / "msd", 600, seed=0, n_artists=60)
    extract([root / "msd"], root / "store", scheduler="sync", shard_size=64)
    store = FeatureStore.open(root / "store")
    config = TaskConfig(artists=4, per_artist=20, per_genre=6, per_key=16, per_decade=10, seed=0)
    built, errors, stats = build_tasks(store.metadata, config)
    assert set(built) == {"artist", "genre", "key", "decade"}, errors
    write_tasks(root / "tasks", built, config=config, errors=errors, stats=stats, dropped=set(),
                store=str(root / "store"))
    return {"msd": root / "msd", "store": root / "store", "tasks": root / "tasks"}


@pytest.fixture(scope="session")
def ranks_store(tmp_path_factory) -> Path:
    """24 short tracks of varied lengths (60-451 beats) in 3 shards, for multi-rank pretraining tests.
    Read-only: tests that write must write elsewhere."""
    from beatdbn.store.extract import extract
    from beatdbn.synth.corpus import make_track
    from beatdbn.synth.msd_writer import write_track

    root = tmp_path_factory.mktemp("ranks")
    for i in range(24):
        tid = f"TRRANK{i:012d}"
        write_track(root / "msd" / f"{tid}.h5", make_track(track_id=tid, n_beats=60 + 17 * i, seed=i))
    extract([root / "msd"], root / "store", scheduler="sync", shard_size=8)
    return root / "store"
