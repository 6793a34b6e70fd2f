"""Layers, containers and losses with torch.nn's names; `functional` and `init` as in torch.nn.

    from tinygrad_mnist import nn
    import tinygrad_mnist.nn.functional as F

    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss = nn.CrossEntropyLoss()(model(x), y)        # or F.cross_entropy(model(x), y)
"""

from . import functional, init, utils
from .attention import MultiheadAttention
from .modules import (
    ACTIVATIONS,
    ELU,
    GELU,
    INITS,
    MLP,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    BCELoss,
    BCEWithLogitsLoss,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Flatten,
    Identity,
    IncompatibleKeys,
    L1Loss,
    Lambda,
    LayerNorm,
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
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "ACTIVATIONS", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "BCELoss", "BCEWithLogitsLoss", "Conv2d",
    "CrossEntropyLoss", "Dropout", "ELU", "Embedding", "Flatten", "functional", "GELU", "Identity",
    "IncompatibleKeys", "init", "INITS", "L1Loss", "Lambda", "LayerNorm", "LeakyReLU", "Linear", "LogSoftmax",
    "MaxPool2d", "MLP", "Module", "ModuleDict", "ModuleList", "MSELoss", "NLLLoss", "Parameter", "ReLU", "Sequential",
    "Sigmoid", "SiLU", "Softmax", "Softplus", "Tanh", "utils", "GRU", "LSTM", "MultiheadAttention", "RNN",
    "GRUCell", "LSTMCell", "RNNCell",
]
