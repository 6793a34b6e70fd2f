"""torch.cuda's questions, answered for an engine that runs on the CPU only.

    device = tinygrad_mnist.device("cuda" if tinygrad_mnist.cuda.is_available() else "cpu")   # -> "cpu"
"""


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def manual_seed(seed: int) -> None:
    """Nothing to seed without a GPU (as torch.cuda.manual_seed on a machine without one)."""


manual_seed_all = manual_seed
