"""metrics/scores: accuracy, confusion, per-class accuracy and chance, on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from beatdbn.exceptions import ParameterError
from beatdbn.metrics.scores import accuracy, chance_level, confusion_matrix, per_class_accuracy


def test_scores_on_a_hand_made_case():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    assert accuracy(y_true, y_pred) == pytest.approx(0.6)
    conf = confusion_matrix(y_true, y_pred, 4)
    assert conf.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    per = per_class_accuracy(y_true, y_pred, 4)
    assert per[:3].tolist() == [0.5, 1.0, 0.0] and math.isnan(per[3])  # a class with no track: NaN
    assert chance_level(np.array([0, 0, 0, 1]), 2) == pytest.approx(0.75)  # the most frequent training class


def test_mismatched_inputs_are_refused():
    with pytest.raises(ParameterError):
        accuracy(np.array([0, 1]), np.array([0]))
