"""Baseline commands: naive Bayes and windowed logistic regression."""

from __future__ import annotations
