"""Pretraining command: greedy layer-wise training of the convolutional DBN."""

from __future__ import annotations
