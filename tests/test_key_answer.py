"""beatdbn.inference.key_answer: spelling, Camelot codes, "no key", 12-tonic models, failure paths."""

from __future__ import annotations

import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.inference.key_answer import ascii_key, camelot_code, key_answer, key_classes, spell_key
from beatdbn.labels import KEY_NAMES, KEY_NAMES_24, NO_KEY

# internal class name -> (spelling, Camelot), written out by hand from a key chart (not computed)
TABLE = {
    "C major": ("C major", "8B"), "A minor": ("A minor", "8A"),
    "G major": ("G major", "9B"), "E minor": ("E minor", "9A"),
    "D major": ("D major", "10B"), "B minor": ("B minor", "10A"),
    "A major": ("A major", "11B"), "F# minor": ("F♯ minor", "11A"),
    "E major": ("E major", "12B"), "C# minor": ("C♯ minor", "12A"),
    "B major": ("B major", "1B"), "G# minor": ("G♯ minor", "1A"),
    "F# major": ("F♯ major", "2B"), "D# minor": ("D♯ minor", "2A"),
    "C# major": ("D♭ major", "3B"), "A# minor": ("B♭ minor", "3A"),
    "G# major": ("A♭ major", "4B"), "F minor": ("F minor", "4A"),
    "D# major": ("E♭ major", "5B"), "C minor": ("C minor", "5A"),
    "A# major": ("B♭ major", "6B"), "G minor": ("G minor", "6A"),
    "F major": ("F major", "7B"), "D minor": ("D minor", "7A"),
}
ASCII = {"B♭ major": "Bb major", "F♯ minor": "F# minor", "D♭ major": "Db major", "C major": "C major"}


def test_the_table_covers_the_24_keys():
    assert set(TABLE) == set(KEY_NAMES_24)
    assert len({c for _, c in TABLE.values()}) == 24


@pytest.mark.parametrize("name", KEY_NAMES_24)
def test_every_key_is_spelled_and_coded_as_the_chart(name):
    spelled, code = TABLE[name]
    posterior = np.full(24, 0.2 / 23)
    posterior[KEY_NAMES_24.index(name)] = 0.8
    a = key_answer(KEY_NAMES_24, posterior)
    assert (a["key"], a["camelot"]) == (spelled, code)
    assert a["tonic"] == spelled.split(" ")[0] and a["mode"] == name.split(" ")[1]
    assert a["key_ascii"] == spelled.replace("♭", "b").replace("♯", "#")
    assert a["confidence"] == pytest.approx(0.8) and a["tonal"] is True and a["reason"] is None
    assert a["no_key_probability"] is None
    tonic, mode = name.split(" ")
    assert spell_key(KEY_NAMES.index(tonic), mode) == spelled and camelot_code(KEY_NAMES.index(tonic), mode) == code


def test_ascii_form():
    for uni, asc in ASCII.items():
        assert ascii_key(uni) == asc
    assert ascii_key(None) is None


def test_alternatives_are_the_top_keys_with_spelling_and_codes():
    classes = [*KEY_NAMES_24, NO_KEY]
    p = np.zeros(25)
    p[KEY_NAMES_24.index("A# major")] = 0.6
    p[KEY_NAMES_24.index("G minor")] = 0.25
    p[KEY_NAMES_24.index("F major")] = 0.1
    p[24] = 0.05
    a = key_answer(classes, p, tonal_threshold=0.5, top_k=2)
    assert a["key"] == "B♭ major" and a["camelot"] == "6B" and a["confidence"] == pytest.approx(0.6)
    assert a["no_key_probability"] == pytest.approx(0.05) and a["tonal"] is True
    assert a["alternatives"] == [
        {"key": "B♭ major", "key_ascii": "Bb major", "camelot": "6B", "probability": pytest.approx(0.6)},
        {"key": "G minor", "key_ascii": "G minor", "camelot": "6A", "probability": pytest.approx(0.25)}]
    every = key_answer(classes, p, tonal_threshold=0.5, top_k=0)["alternatives"]
    assert len(every) == 24 and all(x["key"] for x in every)  # keys only: "no key" is not an alternative


def test_no_key_at_or_above_the_threshold_is_never_a_key():
    classes = [*KEY_NAMES_24, NO_KEY]
    p = np.full(25, 0.07 / 24)
    p[24] = 0.93
    a = key_answer(classes, p, tonal_threshold=0.5)
    assert a["key"] is None and a["tonal"] is False and a["camelot"] is None and a["mode"] is None
    assert a["tonic"] is None and a["key_ascii"] is None
    assert a["reason"] == "no tonal centre: P(no key) 0.93 ≥ threshold 0.50"
    assert a["confidence"] == pytest.approx(0.93) and len(a["alternatives"]) == 3
    # exactly at the threshold: no key; "no key" below the threshold but not the top class either way
    p = np.zeros(25)
    p[24], p[0] = 0.4, 0.6
    assert key_answer(classes, p, tonal_threshold=0.4)["key"] is None
    assert key_answer(classes, p, tonal_threshold=0.41)["key"] == "C major"
    # a threshold below the top key's probability still refuses: the threshold decides, not the argmax
    assert key_answer(classes, p, tonal_threshold=0.3)["tonal"] is False


def test_without_a_threshold_no_key_is_the_top_class():
    classes = [*KEY_NAMES_24, NO_KEY]
    p = np.zeros(25)
    p[24], p[7] = 0.55, 0.45
    a = key_answer(classes, p)
    assert a["key"] is None and not a["tonal"] and "most probable" in a["reason"]
    p[24], p[7] = 0.45, 0.55
    assert key_answer(classes, p)["key"] == "G major"


def test_a_threshold_means_nothing_to_a_model_without_no_key():
    p = np.full(24, 0.5 / 23)
    p[0] = 0.5
    a = key_answer(KEY_NAMES_24, p, tonal_threshold=0.01)
    assert a["key"] == "C major" and a["tonal"] and a["no_key_probability"] is None


def test_twelve_tonic_models_give_the_tonic_without_mode_or_camelot():
    p = np.full(12, 0.1 / 11)
    p[10] = 0.9
    a = key_answer(KEY_NAMES, p, top_k=2)
    assert a["key"] == "B♭" and a["key_ascii"] == "Bb" and a["tonic"] == "B♭"
    assert a["mode"] is None and a["camelot"] is None and a["tonal"] and a["confidence"] == pytest.approx(0.9)
    assert [x["key"] for x in a["alternatives"]] == ["B♭", "C"] and a["alternatives"][0]["camelot"] is None
    assert [spell_key(i) for i in range(12)] == ["C", "D♭", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭",
                                                 "B"]


def test_a_subset_of_the_keys_is_a_key_model():
    """A task where some keys have no track trains a model with fewer classes."""
    a = key_answer(["C", "G", "A#"], [0.2, 0.3, 0.5])
    assert a["key"] == "B♭" and [x["key"] for x in a["alternatives"]] == ["B♭", "G", "C"]


def test_classes_that_are_not_keys_and_bad_arguments_are_refused():
    assert key_classes(["rock", "jazz"]) is None
    assert key_classes(["C", "C major"]) is None  # tonics mixed with keys
    assert key_classes([NO_KEY]) is None
    assert key_classes(["H major"]) is None and key_classes(["C dorian"]) is None
    with pytest.raises(ParameterError, match="not a key model"):
        key_answer(["rock", "jazz"], [0.5, 0.5])
    with pytest.raises(ParameterError, match="3 values for 2 classes"):
        key_answer(["C", "D"], [0.2, 0.3, 0.5])
    with pytest.raises(ParameterError, match="top_k"):
        key_answer(["C", "D"], [0.5, 0.5], top_k=-1)
    with pytest.raises(ParameterError, match="pitch class"):
        spell_key(12, "major")
    with pytest.raises(ParameterError, match="Camelot"):
        camelot_code(0, None)
