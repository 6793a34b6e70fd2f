"""torch.Generator: a stream of random numbers of its own (NumPy's PCG64), and the default one.

    g = tinygrad_mnist.Generator().manual_seed(2147483647)
    W = tinygrad_mnist.randn(27, 27, generator=g)     # the same W on every run
    ix = tinygrad_mnist.multinomial(p, 1, replacement=True, generator=g)

Every random function and method takes `generator=`; without one it draws from the default stream,
`default_generator`, which `manual_seed` seeds.  A generator never touches another's stream.  Draws go
through the recorded random primitive (ops.Random), which reads the generator when the op runs, so a
compiled step that draws from a generator replays fresh numbers from it, in eager order.  The numbers
are NumPy's: the same seed gives other values than PyTorch's generator.
"""

from __future__ import annotations

import json

import numpy as np

from . import engine
from .engine import Tensor, _check_device

_SEED_MIN, _SEED_MAX = -(2 ** 63), 2 ** 64 - 1  # PyTorch's range: a negative seed wraps to 2**64 + seed


def _seed_value(seed, op: str) -> int:
    if isinstance(seed, Tensor):
        seed = seed.item()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{op}: the seed must be an int, got {type(seed).__name__} {seed!r}")
    seed = int(seed)
    if not _SEED_MIN <= seed <= _SEED_MAX:
        raise ValueError(f"{op}: seed {seed} is out of range [-2**63, 2**64 - 1]")
    return seed % 2 ** 64


def _fresh_seed() -> int:
    """A nondeterministic 64-bit seed from the OS's entropy (as torch.seed())."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])


class Generator:
    """An independent stream of random numbers, as torch.Generator (device "cpu" only)."""

    def __init__(self, device="cpu"):
        _check_device(device, "Generator")
        self.manual_seed(_fresh_seed())

    @property
    def device(self):
        from .tensor_methods.attributes import _CPU  # (the surface imports this module: not at load)

        return _CPU

    def manual_seed(self, seed) -> Generator:
        """Restart the stream from `seed`; returns the generator (so `Generator().manual_seed(s)` reads well)."""
        self._seed = _seed_value(seed, "manual_seed")
        self._np = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Reseed from the OS's entropy; returns the new seed."""
        s = _fresh_seed()
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> Tensor:
        """The stream's position, as a uint8 tensor (torch's ByteTensor): hand it to set_state to go back."""
        text = json.dumps(self._np.bit_generator.state, sort_keys=True)
        return Tensor._const(np.frombuffer(text.encode(), np.uint8).copy())

    def set_state(self, new_state) -> Generator:
        arr = new_state.data if isinstance(new_state, Tensor) else np.asarray(new_state)
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise TypeError(f"set_state: expected the 1-D uint8 tensor get_state() returns, got "
                            f"{arr.dtype} of shape {arr.shape}")
        try:
            state = json.loads(arr.tobytes().decode())
            self._np.bit_generator.state = state
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"set_state: not a state from get_state() ({e})") from None
        return self

    def __repr__(self) -> str:
        return f"<tinygrad_mnist.Generator object, seed {self._seed}>"


class _DefaultGenerator(Generator):
    """The library's own stream (engine.rng()): what manual_seed seeds and every draw without generator= uses."""

    def __init__(self):
        self.manual_seed(_fresh_seed())  # a known seed, so initial_seed() can tell it

    @property
    def _np(self) -> np.random.Generator:
        return engine._rng  # read at each draw: compile's replay check swaps it for a while

    def manual_seed(self, seed) -> Generator:
        self._seed = _seed_value(seed, "manual_seed")
        engine.manual_seed(self._seed)
        return self

    def __repr__(self) -> str:
        return f"<tinygrad_mnist.default_generator, seed {self._seed}>"


default_generator = _DefaultGenerator()


def manual_seed(seed) -> Generator:
    """Seed the default stream (randn, rand, dropout, nn initializers without generator=); returns it."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Reseed the default stream from the OS's entropy; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    """The seed the default stream started from."""
    return default_generator.initial_seed()


def check_generator(generator, op: str):
    """None or a Generator pass; anything else is a clear error (a NumPy generator is not one)."""
    if generator is not None and not isinstance(generator, Generator):
        raise TypeError(f"{op}: generator must be a tinygrad_mnist.Generator (or None for the default stream), "
                        f"got {type(generator).__name__}")
    return generator


def numpy_rng(generator) -> np.random.Generator:
    """The NumPy generator a draw reads when it runs: the given Generator's, else the default stream."""
    return engine._rng if generator is None else generator._np
