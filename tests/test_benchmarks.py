"""The benchmark harness's own check, run as a test: every engine spelling of every workload starts from
the references' weights and agrees with hand-written NumPy (or PyTorch, for W7) on the first steps."""

from __future__ import annotations

import pytest

from benchmarks import run
from benchmarks.workloads import WORKLOADS, init_params, make_batches
from tests.helpers import HAVE_TORCH


@pytest.mark.parametrize("key", sorted(WORKLOADS))
def test_engine_agrees_with_the_reference_in_every_spelling(key):
    w = WORKLOADS[key]
    systems = run.load_systems()
    names = run.system_names(w)
    if w.numpy_ref:
        names.remove("torch")  # PyTorch is compared when the harness runs
    elif not HAVE_TORCH:
        pytest.skip("this workload's reference is PyTorch, which is not installed")
    checks = run.check_workload(w, init_params(w), make_batches(w, 3), systems, names)
    for name in names:
        assert checks[name]["ok"], (name, checks[name])
    assert sum(n.startswith("engine") for n in names) == len(w.spellings)
