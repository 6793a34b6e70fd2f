"""The pytest plugin of tinygrad_mnist (entry point `pytest11: tinygrad_mnist`).

Active in every pytest run once the package is installed; `pytest -p no:tinygrad_mnist` switches it
off, `pytest -p tinygrad_mnist.testing.plugin` switches it on in a checkout that is not installed
(not both: when installed it is already registered).  It adds:

- a `seed` fixture: seeds the engine (tinygrad_mnist.manual_seed) for the test and returns the seed.
  By default each test gets its own fixed seed (from its id), so runs repeat; `--tinygrad-seed=N`
  gives every test N, `--tinygrad-seed=random` a fresh one each run.  A failing test that used the
  fixture reports its seed and how to rerun it;
- under a test that fails with a GradcheckError (gradcheck, gradgradcheck, compare_with_reference,
  assert_module_matches), a section with the got/want values around the first differing element.

Nothing changes for tests that pass or that use neither.
"""

from __future__ import annotations

import secrets
import zlib

import pytest

from ..gradcheck import GradcheckError

SEED_KEY = pytest.StashKey[int]()


def pytest_addoption(parser) -> None:
    group = parser.getgroup("tinygrad_mnist")
    group.addoption("--tinygrad-seed", dest="tinygrad_seed", default=None, metavar="N|random",
                    help="seed for the `seed` fixture: an integer for every test, or 'random' for a fresh one "
                         "each test (default: a fixed seed per test, from its id)")


def pytest_configure(config) -> None:
    value = config.getoption("tinygrad_seed")
    if value not in (None, "random"):
        try:
            int(value)
        except ValueError:
            raise pytest.UsageError(f"--tinygrad-seed: expected an integer or 'random', got {value!r}") from None


@pytest.fixture
def seed(request) -> int:
    """The engine's seed for this test (tinygrad_mnist.manual_seed was called with it); shown if the test fails."""
    from .. import manual_seed

    option = request.config.getoption("tinygrad_seed")
    if option is None:
        value = zlib.crc32(request.node.nodeid.encode())
    elif option == "random":
        value = secrets.randbelow(2**32)
    else:
        value = int(option)
    manual_seed(value)
    request.node.stash[SEED_KEY] = value
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    if call.excinfo is not None and isinstance(call.excinfo.value, GradcheckError):
        table = call.excinfo.value.table()
        if table:
            report.sections.append((f"gradient check: {call.excinfo.value.what or 'values'}", table))
    if report.when == "call" and SEED_KEY in item.stash:
        value = item.stash[SEED_KEY]
        report.sections.append(("tinygrad_mnist seed", f"this test ran with seed={value} "
                                f"(tinygrad_mnist.manual_seed({value})); rerun it with --tinygrad-seed={value}"))
