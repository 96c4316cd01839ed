"""cli.options.model_and_inputs: `[RUN_DIR] FILES...` read against --task once, for predict and embed."""

from __future__ import annotations

import json

import pytest

from beatdbn.cli.options import check_model_task, model_and_inputs
from beatdbn.exceptions import ParameterError


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": "key"}))
    return run


def test_a_model_folder_first_is_the_model_with_or_without_task(run_dir, tmp_path):
    song = tmp_path / "song.mp3"
    assert model_and_inputs([run_dir, song], None, command="predict") == (run_dir, [song])
    assert model_and_inputs([run_dir, song], "key", command="embed") == (run_dir, [song])
    assert model_and_inputs([run_dir / "model.pt", song], None, command="predict")[0] == run_dir / "model.pt"
    assert model_and_inputs([song, tmp_path / "b.h5"], "key", command="predict") == (None, [song, tmp_path / "b.h5"])


def test_what_cannot_work_is_one_line_naming_the_command(run_dir, tmp_path):
    with pytest.raises(ParameterError, match=r"song.mp3: not a run directory .*`beatdbn embed DBN_OR_RUN FILES...`, "
                                             r"or `beatdbn embed --task key FILES...`"):
        model_and_inputs([tmp_path / "song.mp3"], None, command="embed", model="DBN_OR_RUN")
    with pytest.raises(ParameterError, match=r"no inputs after .*run: give `beatdbn predict RUN_DIR"):
        model_and_inputs([run_dir], None, command="predict")
    with pytest.raises(ParameterError, match=r"no inputs after"):
        model_and_inputs([run_dir], "key", command="predict")
    with pytest.raises(ParameterError, match="for task 'genre', not --task 'key'"):
        check_model_task(run_dir, "genre", "key")
    check_model_task(run_dir, "key", "key")
    check_model_task(run_dir, "genre", None)
