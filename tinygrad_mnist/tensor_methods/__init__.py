"""The PyTorch surface of Tensor: its methods, grouped by kind, one module per group.

    attributes.py       size(), numel(), item(), tolist(), numpy(), repr, device
    creation.py         factories (zeros, randn, arange, ...), casts (float(), to()), clone(), from_numpy
    arithmetic.py       + - * / ** @, comparisons, logical ops, exp/log/relu/..., where, matmul, linear
    reductions.py       sum, mean, max/min, var/std, logsumexp, argmax, prod, cumsum, norm, median, ...
    shape.py            reshape, permute, expand, x[i], split, gather, index_select, sort, cat, stack, ...
    nn_functions.py     softmax, log_softmax, cross_entropy, conv2d, max/avg pools, dropout
    inplace_methods.py  x[i] = v, add_, -=, zero_, ... (their autograd rules are in inplace.py)
    common.py, composite.py  what the groups share (dims, dtype promotion, composite calls for viz)

Each group is written as a class body, so `self`, properties, classmethods and staticmethods
read as in any class.  `attach` copies every member onto engine.Tensor, once, when the package
is imported (tinygrad_mnist/__init__.py): the core defines Tensor without importing any of this,
and afterwards each method sits in Tensor.__dict__ itself, so a call costs what it did when the
methods were written inside the class, and help(Tensor.sum) shows the method's own docstring.
"""

from __future__ import annotations

from .arithmetic import Arithmetic
from .attributes import Attributes
from .creation import Creation
from .inplace_methods import InPlace
from .nn_functions import NNFunctions
from .reductions import Reductions
from .shape import Shape

GROUPS = (Attributes, Creation, Arithmetic, Reductions, Shape, NNFunctions, InPlace)

# what every class body has of its own (a group with __eq__ even gets __hash__ = None): never copied
_CLASS_ONLY = {"__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__hash__"}


def attach(cls, groups=GROUPS) -> None:
    """Copy the members of every group onto `cls` (engine.Tensor); a name defined twice is an error."""
    for group in groups:
        for name, member in vars(group).items():
            if name in _CLASS_ONLY:
                continue
            if name in vars(cls):
                raise RuntimeError(f"tensor_methods: {group.__name__}.{name} would replace {cls.__name__}.{name}")
            # the function behind a method, property, classmethod, staticmethod or where's descriptor
            fn = getattr(member, "__func__", None) or getattr(member, "fget", None) or getattr(member, "fn", member)
            if getattr(fn, "__name__", None) == name:  # (an alias keeps its target's name)
                fn.__qualname__ = f"{cls.__name__}.{name}"  # help() and tracebacks say Tensor.sum
            setattr(cls, name, member)
