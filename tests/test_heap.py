"""The heap policy (beatdbn.utils.heap): freed tensors are reused, not refaulted from the OS, and a user's
malloc settings are respected. Each check runs in a subprocess (the policy changes its process)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"),
    reason="the heap policy applies to glibc's malloc only")

_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def _python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in _ENV}
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_training_steps_stop_faulting_in_fresh_pages():
    """The reason for the policy: a conv MLP step loop takes hundreds of page faults a step with glibc's
    defaults (its tensors come back as new pages) and few once freed memory is kept."""
    out = _python("""
import json, resource, torch
torch.set_num_threads(1)
from beatdbn.models.convmlp import ConvMLP, MLPConfig
from beatdbn.utils.heap import keep_heap
torch.manual_seed(0)
m = ConvMLP(MLPConfig(n_classes=4)); opt = torch.optim.SGD(m.parameters(), 0.01)
x = torch.rand(8, 24, 200); y = torch.randint(0, 4, (8,))
def faults():
    def step():
        logits, l4 = m(x); loss = ConvMLP.loss(logits, l4, y); opt.zero_grad(); loss.backward(); opt.step()
    for _ in range(3):
        step()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 10
before = faults()
kept = keep_heap()
print(json.dumps({"before": before, "after": faults(), "kept": kept}))
""")
    r = json.loads(out)
    assert r["kept"] is True
    assert r["before"] > 50, r  # the cost exists at these shapes (measured ~300 a step)
    assert r["after"] < r["before"] / 5, r


def test_sets_the_children_environment_and_respects_the_users():
    code = "import os, json; from beatdbn.utils.heap import keep_heap; ok = keep_heap(); " \
           "print(json.dumps([ok, os.environ.get('MALLOC_MMAP_THRESHOLD_'), os.environ.get('MALLOC_TRIM_THRESHOLD_')]))"
    assert json.loads(_python(code)) == [True, str(32 << 20), str(512 << 20)]
    assert json.loads(_python(code, MALLOC_TRIM_THRESHOLD_="131072")) == [True, str(32 << 20), "131072"]


def test_the_cli_entry_applies_it():
    code = "import os, beatdbn.cli; print(os.environ.get('MALLOC_MMAP_THRESHOLD_'))"
    assert _python(code).strip() == str(32 << 20)
