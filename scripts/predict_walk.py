"""The walk of one MSD file through ``beatdbn predict``: beatdbn modules visited, moves between them, checks done.

Usage::

    .venv/bin/python scripts/predict_walk.py [MSD_FILE] [--over-time]

A small conv MLP run (random weights, echonest) is written to a temporary folder; the command is run once
untraced (imports done), then traced with :func:`sys.settrace`. Printed:

* ``modules``: the beatdbn modules whose functions were called, in first-call order;
* ``moves``: calls whose callee is in another beatdbn module than the caller's last beatdbn frame;
* ``shape checks``: calls of the functions that check a track's shape (``(n_beats, 24)``, ``(batch, 24, T)``);
* ``forward passes``: calls of ``ConvMLP._logits`` (one batched forward each; 12 rotations in one).
"""

from __future__ import annotations

import json
import sys
import threading
import tempfile
from collections import Counter
from pathlib import Path

#: (module, function) of every shape check of a track's features on the predict path, before and after.
SHAPE_CHECKS = {("beatdbn.inference.files", "_track_answer"), ("beatdbn.inference.runs", "check_tracks"),
                ("beatdbn.inference.classifier", "admit"), ("beatdbn.models.layout", "prepare_input")}
FORWARD = ("beatdbn.models.convmlp", "_logits")


def _run_dir(root: Path) -> Path:
    from beatdbn.labels import KEY_NAMES
    from beatdbn.models.convmlp import ConvMLP, MLPConfig

    model = ConvMLP(MLPConfig(n_classes=12, classes=tuple(KEY_NAMES), task="key", n_maps_1a=8, n_maps_1b=8,
                              n_maps_3=8))
    model.save(root / "model")
    (root / "config.json").write_text(json.dumps({"task": "key", "model": "convmlp_random",
                                                  "representation": "echonest"}))
    return root


def main(argv: list[str]) -> None:
    from typer.testing import CliRunner

    from beatdbn.cli import app

    over_time = "--over-time" in argv
    files = [a for a in argv if not a.startswith("--")]
    msd = Path(files[0]) if files else Path(__file__).resolve().parents[2] / "shared/data/msd/TRAXLZU12903D05F94.h5"
    with tempfile.TemporaryDirectory() as tmp:
        run = _run_dir(Path(tmp))
        args = ["predict", str(run), str(msd), "--json"] + (["--over-time"] if over_time else [])
        first = CliRunner().invoke(app, args)  # imports and lazy imports happen here, untraced
        assert first.exit_code == 0, first.output
        order: dict[str, None] = {}
        calls: Counter = Counter()
        moves = 0
        inside = threading.Event()  # counting starts when the predict command's function is entered

        def tracer(frame, event, arg):
            nonlocal moves
            if event != "call":
                return None
            mod = frame.f_globals.get("__name__", "")
            if not mod.startswith("beatdbn"):
                return None
            if mod == "beatdbn.cli.predict" and frame.f_code.co_name == "predict":
                inside.set()
            if not inside.is_set():
                return None
            order.setdefault(mod, None)
            calls[(mod, frame.f_code.co_name)] += 1
            caller = frame.f_back
            while caller is not None and not caller.f_globals.get("__name__", "").startswith("beatdbn"):
                caller = caller.f_back
            if caller is not None and caller.f_globals["__name__"] != mod:
                moves += 1
            return None

        sys.settrace(tracer)
        threading.settrace(tracer)  # the first file is read ahead in a thread
        try:
            res = CliRunner().invoke(app, args)
        finally:
            sys.settrace(None)
            threading.settrace(None)
        assert res.exit_code == 0, res.output
    mods = list(order)
    print(f"predict {msd.name}{' --over-time' if over_time else ''}")
    print(f"modules visited: {len(mods)}")
    for m in mods:
        print(f"  {m}: {sum(n for (mm, _), n in calls.items() if mm == m)} calls")
    print(f"moves between modules: {moves}")
    checks = {f"{m}.{f}": calls[(m, f)] for m, f in sorted(SHAPE_CHECKS) if calls[(m, f)]}
    print(f"shape checks: {sum(checks.values())} {checks}")
    print(f"forward passes (ConvMLP._logits): {calls[FORWARD]}")


if __name__ == "__main__":
    main(sys.argv[1:])
