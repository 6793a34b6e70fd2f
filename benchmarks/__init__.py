"""Benchmarks: this engine against hand-written NumPy and PyTorch eager (see benchmarks/README.md).

Run with ``python -m benchmarks`` or ``python benchmarks/run.py``.
"""
