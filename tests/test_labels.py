"""Issue 24, item 5 (and 13, part): labels are applied on rerun, conflicts and missing files are reported,
a BOM never hides a track id, and the readers answer any text with a mapping or one DataError/ParameterError line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from beatdbn.cli import app
from beatdbn.exceptions import DataError, ParameterError
from beatdbn.labels import KEY_NAMES_24, NO_KEY, read_label_csv, read_tagtraum
from beatdbn.store.extract import extract
from beatdbn.store.reader import FeatureStore
from beatdbn.synth.corpus import make_track
from beatdbn.synth.msd_writer import write_track
from beatdbn.tasks.build import build_tasks
from beatdbn.tasks.duplicates import read_duplicates
from beatdbn.tasks.registry import TaskConfig
from beatdbn.train.pretrain import read_exclusion

runner = CliRunner()
BOM = "\ufeff"


def test_the_shared_label_constants_stay():
    assert NO_KEY == "no key" and KEY_NAMES_24[0] == "C major" and KEY_NAMES_24[-1] == "B minor"


def _tones(folder: Path, n: int) -> list[Path]:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        t = np.arange(int(1.5 * 22050)) / 22050
        y = 0.3 * np.sin(2 * np.pi * (220 + 55 * i) * t) * (1 + (t % 0.5 < 0.05))
        sf.write(folder / f"tone{i}.wav", y.astype(np.float32), 22050)
        out.append(folder / f"tone{i}.wav")
    return out


def _run_extract(src: Path, store: Path, labels: Path):
    r = runner.invoke(app, ["extract", str(src), "--out", str(store), "--scheduler", "sync", "--labels", str(labels)])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    return r


def _by_title(store: Path) -> dict:
    fs = FeatureStore.open(store)
    return {rec.meta["title"]: (rec.meta, rec.features.tobytes()) for rec in fs}


def test_a_corrected_labels_csv_is_applied_on_rerun_without_extracting_again(tmp_path):
    _tones(tmp_path / "in", 2)
    labels = tmp_path / "in" / "labels.csv"
    labels.write_text("path,genre,key,artist\ntone0.wav,rock,C,Ann\ntone1.wav,pop,D minor,Bob\n")
    _run_extract(tmp_path / "in", tmp_path / "s", labels)
    before = _by_title(tmp_path / "s")
    h5 = {p.name: p.read_bytes() for p in (tmp_path / "s" / "shards").glob("*.h5")}
    labels.write_text("path,genre,key,artist\ntone0.wav,jazz,C,Ann\ntone1.wav,pop,E major,Cy\n")  # corrected
    r = _run_extract(tmp_path / "in", tmp_path / "s", labels)
    assert "labels changed for 2 tracks already in the store" in r.output and "2 inputs already done" in r.output
    after = _by_title(tmp_path / "s")
    assert after["tone0"][0]["genre"] == "jazz" and after["tone0"][0]["key"] == 0
    assert (after["tone1"][0]["key"], after["tone1"][0]["mode"], after["tone1"][0]["artist_name"]) == (4, 1, "Cy")
    assert after["tone1"][0]["artist_id"] != before["tone1"][0]["artist_id"]
    assert all(after[t][1] == before[t][1] for t in before)  # the same features
    assert {p.name: p.read_bytes() for p in (tmp_path / "s" / "shards").glob("*.h5")} == h5  # not re-extracted
    assert runner.invoke(app, ["check", str(tmp_path / "s")]).exit_code == 0
    r = _run_extract(tmp_path / "in", tmp_path / "s", labels)
    assert "labels changed" not in r.output  # nothing left to change


def test_label_rows_naming_missing_files_are_reported(tmp_path):
    _tones(tmp_path / "in", 1)
    labels = tmp_path / "labels.csv"
    rows = "".join(f"in/gone{i}.wav,rock\n" for i in range(5))
    labels.write_text(f"path,genre\nin/tone0.wav,pop\n{rows}")
    r = _run_extract(tmp_path / "in", tmp_path / "s", labels)
    assert "5 label rows name files that do not exist" in r.output and "gone0.wav" in r.output, r.output
    assert "and 2 more" in r.output and "gone4.wav" not in r.output  # the count and the first few only


def test_a_folder_label_overridden_by_the_csv_is_named(tmp_path):
    _tones(tmp_path / "in" / "rock", 1)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,genre\nin/rock/tone0.wav,pop\n")
    report = extract([tmp_path / "in"], tmp_path / "s", scheduler="sync", folder_label="genre",
                     labels=read_label_csv(labels))
    assert any("overrides 1 folder labels" in n and "'rock' (folder) -> 'pop'" in n for n in report.notes)


def test_two_rows_of_one_csv_giving_one_file_two_labels_is_an_error(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("path,genre\na.wav,rock\nb.wav,pop\n./a.wav,jazz\n")
    with pytest.raises(DataError, match=r"labels.csv:4: './a.wav' also on line 2 with other labels"):
        read_label_csv(f)
    f.write_text("path,genre\na.wav,rock\na.wav,rock\n")  # the same row twice is no conflict
    assert list(read_label_csv(f).values()) == [{"genre": "rock"}]


def test_an_unbalanced_quote_names_the_file_and_line_not_the_rest(tmp_path):
    f = tmp_path / "labels.csv"
    rest = "".join(f"secret{i}.wav,pop\n" for i in range(50))
    f.write_text(f'path,genre\na.wav,rock\nb.wav,"pop\n{rest}')
    with pytest.raises(DataError) as err:
        read_label_csv(f)
    msg = str(err.value)
    assert "labels.csv:3: unbalanced quote" in msg and "secret" not in msg and "\n" not in msg
    r = runner.invoke(app, ["extract", str(tmp_path), "--out", str(tmp_path / "s"), "--labels", str(f)])
    assert r.exit_code == 1 and "secret" not in r.output and "unbalanced quote" in r.output


def test_a_bom_never_hides_a_track_id(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(f"{BOM}path,genre\na.wav,rock\n", encoding="utf-8")
    assert list(read_label_csv(labels).values()) == [{"genre": "rock"}]
    tags = tmp_path / "tagtraum.cls"
    tags.write_text(f"{BOM}TRAAAAAAAAAAAAAAAA\tRock\nTRBBBBBBBBBBBBBBBB\tPop\n", encoding="utf-8")
    assert read_tagtraum(tags) == {"TRAAAAAAAAAAAAAAAA": "Rock", "TRBBBBBBBBBBBBBBBB": "Pop"}
    exclude = tmp_path / "exclude.txt"
    exclude.write_text(f"{BOM}TRHELDOUT000000001\nTRHELDOUT000000002\n", encoding="utf-8")
    assert read_exclusion(exclude) == {"TRHELDOUT000000001", "TRHELDOUT000000002"}  # the first held-out id too
    dups = tmp_path / "dups.txt"
    dups.write_text(f"{BOM}%1 group\nTRA\nTRB\n", encoding="utf-8")
    assert read_duplicates(dups) == [["TRA", "TRB"]]


def test_a_bom_in_exclude_txt_keeps_the_track_out_of_pretraining(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        t = make_track(track_id=f"TRBOMTEST000000{i:03d}", n_beats=30, seed=i)
        write_track(folder / f"{t.track_id}.h5", t)
    extract([folder], tmp_path / "s", scheduler="sync")
    fs = FeatureStore.open(tmp_path / "s")
    (tmp_path / "exclude.txt").write_text(f"{BOM}TRBOMTEST000000000\n", encoding="utf-8")
    kept = fs.select_rows(exclude=read_exclusion(tmp_path / "exclude.txt", known_ids=fs.track_ids))
    assert "TRBOMTEST000000000" not in {fs.track_ids[i] for i in kept} and len(kept) == 2


def test_tagtraum_conflicts_and_empty_files_say_what_is_wrong(tmp_path):
    f = tmp_path / "t.cls"
    f.write_text("TRAAAAAAAAAAAAAAAA\tRock\nTRBBBBBBBBBBBBBBBB\tPop\nTRAAAAAAAAAAAAAAAA\tJazz\n")
    with pytest.raises(DataError, match=r"t.cls:3: track TRAAAAAAAAAAAAAAAA labelled 'Jazz' here and 'Rock' on line 1"):
        read_tagtraum(f)
    for text in ("", "# only a comment\n\n"):
        f.write_text(text)
        with pytest.raises(DataError, match=r"t.cls: no genre labels \(the file is empty"):
            read_tagtraum(f)


def _genre_table(n: int, genre=None) -> pa.Table:
    return pa.table({"track_id": [f"TRGENRE{i:011d}" for i in range(n)],
                     "genre": [genre(i) if genre else None for i in range(n)],
                     "artist_id": [f"AR{i % 7}" for i in range(n)],
                     "mbtags": pa.array([[] for _ in range(n)], pa.list_(pa.string())),
                     "mbtags_count": pa.array([[] for _ in range(n)], pa.list_(pa.int32())),
                     "representation": ["audio"] * n})


def test_an_unknown_only_tagtraum_file_names_the_problem(tmp_path):
    config = TaskConfig(tasks=("genre",), scale="auto")
    _, errors, _ = build_tasks(_genre_table(40), config, genre_labels={"TROTHERCORPUS00001": "Rock",
                                                                       "TROTHERCORPUS00002": "Pop"})
    assert "none of the 2 track ids of the genre label file is in the store" in errors["genre"]
    assert "fewer than two" not in errors["genre"]
    _, errors, _ = build_tasks(_genre_table(40), config, genre_labels={f"TRGENRE{i:011d}": "Rock" for i in range(40)})
    assert "give 1 genre(s)" in errors["genre"] and "Rock (40)" in errors["genre"]


def test_labels_csv_and_tagtraum_disagreeing_is_an_error_naming_the_track():
    table = _genre_table(40, genre=lambda i: "rock" if i % 2 else "pop")
    tagtraum = {f"TRGENRE{i:011d}": ("Rock" if i % 2 else "Pop") for i in range(40)}
    tasks, errors, _ = build_tasks(table, TaskConfig(tasks=("genre",), scale="auto"), genre_labels=tagtraum)
    assert "genre" in tasks  # the same genres (case aside): no conflict
    tagtraum["TRGENRE00000000004"] = "Jazz"
    with pytest.raises(DataError, match=r"conflict for 1 tracks: TRGENRE00000000004: 'pop' \(given at extraction\) "
                                        r"vs 'Jazz' \(genre label file\)"):
        build_tasks(table, TaskConfig(tasks=("genre",), scale="auto"), genre_labels=tagtraum)


# -- property tests: arbitrary text in, a mapping or one DataError/ParameterError out --------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
_CSVISH = st.lists(st.sampled_from(["path", "genre", "key", "artist", ",", '"', "\n", "\r\n", "a.wav", "C#", "x",
                                    "minor", "../", "\ufeff", "\x00", " ", "\t", "13", "/"]), max_size=60).map("".join)
_CLSISH = st.lists(st.sampled_from(["TRAAAAAAAAAAAAAAAA", "TRBBBBBBBBBBBBBBBB", "\t", "\n", "Rock", "Pop", "#", " ",
                                    "\ufeff", "\r", "TR", "x"]), max_size=40).map("".join)
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _answers(reader, path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    try:
        out = reader(path)
    except (DataError, ParameterError) as exc:
        assert "\n" not in str(exc) or "\n" in text  # one line unless the file's own text is quoted
        assert len(str(exc)) < 600
        return
    assert isinstance(out, dict)


@_SETTINGS
@given(text=st.one_of(_TEXT, _CSVISH))
def test_label_csv_reader_answers_any_text(tmp_path, text):
    _answers(read_label_csv, tmp_path / "labels.csv", text)


@_SETTINGS
@given(text=st.one_of(_TEXT, _CLSISH))
def test_tagtraum_reader_answers_any_text(tmp_path, text):
    _answers(read_tagtraum, tmp_path / "t.cls", text)


def test_the_store_report_records_label_notes(tmp_path):
    _tones(tmp_path / "in", 1)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,genre\nin/tone0.wav,pop\nin/missing.wav,rock\n")
    _run_extract(tmp_path / "in", tmp_path / "s", labels)
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert any("1 label rows name files that do not exist" in n for n in report["notes"])
