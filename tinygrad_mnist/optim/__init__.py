"""Optimizers with torch.optim's names and update rules; schedulers in optim.lr_scheduler.

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
"""

from . import lr_scheduler
from .lr_scheduler import CosineAnnealingLR, StepLR  # the demo's two, also at optim.* as before
from .optimizer import SGD, Adam, AdamW, Optimizer

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "Optimizer", "StepLR", "lr_scheduler"]
