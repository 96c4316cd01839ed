"""Reproduction commands: reproduce (Table 1 end to end) and report."""

from __future__ import annotations
