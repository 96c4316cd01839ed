"""Model commands: finetune, evaluate, predict."""

from __future__ import annotations
