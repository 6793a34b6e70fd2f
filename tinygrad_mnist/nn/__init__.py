"""Layers, containers and losses with torch.nn's names; `functional` and `init` as in torch.nn.

    from tinygrad_mnist import nn
    import tinygrad_mnist.nn.functional as F

    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss = nn.CrossEntropyLoss()(model(x), y)        # or F.cross_entropy(model(x), y)
"""

from . import functional, init
from .modules import (
    ACTIVATIONS,
    GELU,
    INITS,
    MLP,
    AvgPool2d,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Identity,
    IncompatibleKeys,
    L1Loss,
    Lambda,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    Module,
    ModuleDict,
    ModuleList,
    MSELoss,
    NLLLoss,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)

__all__ = [
    "ACTIVATIONS", "GELU", "INITS", "MLP", "AvgPool2d", "BCELoss", "BCEWithLogitsLoss", "Conv2d", "CrossEntropyLoss",
    "Dropout", "Flatten", "Identity", "IncompatibleKeys", "L1Loss", "Lambda", "LeakyReLU", "Linear", "LogSoftmax",
    "MSELoss", "MaxPool2d", "Module", "ModuleDict", "ModuleList", "NLLLoss", "Parameter", "ReLU", "Sequential",
    "Sigmoid", "Softmax", "Tanh", "functional", "init",
]
