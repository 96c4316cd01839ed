"""Whether a device computes bfloat16 natively (for ``FinetuneConfig.precision='bf16'``)."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["bf16_supported"]


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively (CPU: AVX-512 BF16 or AMX, per oneDNN / ``/proc/cpuinfo``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return True
    except (AttributeError, RuntimeError):
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
