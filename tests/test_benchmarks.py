"""The benchmark harness's own check, run as a test: every engine spelling of every W1-W5 workload starts
from the references' weights and agrees with hand-written NumPy on the first steps (no timing here)."""

from __future__ import annotations

import pytest

from benchmarks import run
from benchmarks.workloads import WORKLOADS, init_params, make_batches


@pytest.mark.parametrize("key", sorted(WORKLOADS))
def test_engine_agrees_with_numpy_in_every_spelling(key):
    w = WORKLOADS[key]
    systems = run.load_systems()
    systems.pop("torch")  # the reference here is NumPy; PyTorch is compared when the harness runs
    names = [n for n in run.system_names(w) if n != "torch"]
    checks = run.check_workload(w, init_params(w), make_batches(w, 3), systems, names)
    for name in names:
        assert checks[name]["ok"], (name, checks[name])
    assert len(names) == (4 if key == "W3" else 2)
