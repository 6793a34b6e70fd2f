"""compile against ordinary training code that changes things between calls (issue 17).

Each case builds the same model, optimizer and step twice from one seed, runs one copy eagerly and the
other through `tinygrad_mnist.compile` (default: fallback to eager on a refusal), applies the same
change to both before chosen calls, and after EVERY call asserts bit-identical returned values,
parameters and buffers (state_dict), `.grad`s and optimizer state.  A case also says what compile must
do: replay after the change ("replay"), fall back to eager with one warning naming the reason
("fallback"), or raise exactly the error eager raises ("raise").  A silent difference fails.
"""

from __future__ import annotations

import sys
import threading
import warnings

import numpy as np
import pytest

import tinygrad_mnist as tg
from tinygrad_mnist import Tensor, nn, no_grad, optim

N_CALLS = 8
LOSS_WEIGHT = 1.0  # a module-level Python number a step reads (changed by a case)
CONFIG = {"scale": 1.0}  # a module-level dict of plain values
COUNTER = 0


# ---------------------------------------------------------------------------
# the harness
# ---------------------------------------------------------------------------


def batch(i, n=8, dtype=np.float32):
    rng = np.random.default_rng(100 + i)
    return rng.standard_normal((n, 6)).astype(dtype), rng.integers(0, 3, n)


def mlp(dropout=0.0, bn=False, depth=1):
    layers = [nn.Linear(6, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(dropout))
    for _ in range(depth - 1):
        layers += [nn.Linear(8, 8), nn.Tanh()]
    layers.append(nn.Linear(8, 3))
    return nn.Sequential(*layers)


class Setup:
    """One copy of a training setup: model, optimizer and a step written as users write them."""

    def __init__(self, model=mlp, opt=lambda m: optim.SGD(m.parameters(), lr=0.1), step=None, **extra):
        tg.manual_seed(0)
        self.model = model()
        self.opt = opt(self.model)
        self.__dict__.update(extra)
        self.step = (step or plain_step)(self)


def plain_step(s):
    def step(x, y):
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def flat(v):
    """A comparable form of outputs and state: arrays (bytes, dtype, shape), numbers, nested containers."""
    if isinstance(v, Tensor):
        return ("T", flat(v.data))
    if isinstance(v, np.ndarray):
        return ("A", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, dict):
        return {k if not isinstance(k, Tensor) else id(k): flat(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [flat(x) for x in v]
    return v


def state(s: Setup):
    grads = [None if p.grad is None else flat(p.grad) for p in s.model.parameters()]
    return {"model": flat(s.model.state_dict()), "grads": grads, "opt": flat(s.opt.state_dict()),
            "training": [m.training for m in s.model.modules()]}


def run_case(change=None, calls=N_CALLS, data=batch, thread_safe=True, **setup):
    """Run eager and compiled copies side by side; returns (compiled step, warnings seen, errors)."""
    eager, comp = Setup(**setup), Setup(**setup)
    compiled = tg.compile(comp.step)
    errors = []
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for i in range(calls):
            if change is not None:
                change(eager, i)
                change(comp, i)
            args = data(i)
            out = []
            for fn in (eager.step, compiled):
                tg.manual_seed(1000 + i)  # random ops draw the same numbers in both
                try:
                    out.append(("ok", flat(fn(*args))))
                except Exception as e:  # noqa: BLE001  (compared with eager's below)
                    out.append(("error", type(e), str(e)))
            assert out[0] == out[1], f"call {i}: compiled returned/raised something else than eager"
            if out[0][0] == "error":
                errors.append(out[0][1:])
            assert state(eager) == state(comp), f"call {i}: the state after the compiled call differs from eager's"
    return compiled, [w for w in seen if "compile" in str(w.message)], errors


def expect(outcome, compiled, seen, match=None):
    if outcome == "replay":
        assert not seen, f"unexpected warning: {seen[0].message}"
        assert compiled.replays > 0 and compiled.refused is None
    elif outcome == "fallback":
        assert len(seen) == 1, f"{len(seen)} warnings, expected one"
        assert compiled.refused is not None
        if match:
            assert match in str(seen[0].message), str(seen[0].message)


def at(call, fn):
    """A change made before call `call` (to both copies)."""
    return lambda s, i: fn(s) if i == call else None


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------


def set_lr(s, i):
    for g in s.opt.param_groups:
        g["lr"] = 0.1 * 0.7 ** i


CASES = {
    # modes
    "dropout train->eval": (dict(model=lambda: mlp(dropout=0.3), change=at(4, lambda s: s.model.eval())), "replay"),
    "dropout eval->train": (dict(model=lambda: mlp(dropout=0.3).eval(), change=at(4, lambda s: s.model.train())),
                            "replay"),
    "batchnorm train->eval": (dict(model=lambda: mlp(bn=True), change=at(4, lambda s: s.model.eval())), "replay"),
    "batchnorm toggled every call": (dict(model=lambda: mlp(bn=True, dropout=0.2),
                                          change=lambda s, i: s.model.train(i % 2 == 0)), "replay"),
    "one layer eval": (dict(model=lambda: mlp(dropout=0.5), change=at(3, lambda s: s.model[2].eval())), "replay"),
    "dropout p changed": (dict(model=lambda: mlp(dropout=0.5), change=at(4, lambda s: setattr(s.model[2], "p", 0.1))),
                          "replay"),
    "batchnorm momentum changed": (dict(model=lambda: mlp(bn=True),
                                        change=at(4, lambda s: setattr(s.model[1], "momentum", 0.5))), "replay"),
    # freezing
    "freeze first layer": (dict(change=at(4, lambda s: s.model[0].requires_grad_(False))), "replay"),
    "freeze then unfreeze": (dict(change=lambda s, i: s.model[0].requires_grad_(not 2 <= i < 5)), "replay"),
    "freeze one bias": (dict(change=at(3, lambda s: s.model[2].bias.requires_grad_(False))), "replay"),
    # hyperparameters
    "lr every call": (dict(change=set_lr), "replay"),
    "momentum changed": (dict(opt=lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
                              change=at(4, lambda s: s.opt.param_groups[0].update(momentum=0.5))), "replay"),
    "momentum switched on": (dict(change=at(4, lambda s: s.opt.param_groups[0].update(momentum=0.9))),
                             "fallback"),
    "nesterov switched on": (dict(opt=lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
                                  change=at(3, lambda s: s.opt.param_groups[0].update(nesterov=True))), "replay"),
    "weight decay switched on": (dict(change=at(4, lambda s: s.opt.param_groups[0].update(weight_decay=0.01))),
                                 "replay"),
    "adam betas changed": (dict(opt=lambda m: optim.Adam(m.parameters(), lr=0.01),
                                change=at(4, lambda s: s.opt.param_groups[0].update(betas=(0.5, 0.9)))), "replay"),
    "adamw weight decay changed": (dict(opt=lambda m: optim.AdamW(m.parameters(), lr=0.01),
                                        change=at(3, lambda s: s.opt.param_groups[0].update(weight_decay=0.5))),
                                   "replay"),
    "scheduler outside the step": (dict(change=lambda s, i: attach_sched(s) if i == 0 else s.sched.step()),
                                   "replay"),
    "scheduler inside the step": (dict(step=lambda s: sched_inside(s)), "fallback"),
    # Python values the step reads
    "global loss weight": (dict(step=lambda s: weighted_step(s), change=at(4, lambda s: set_global(0.5))), "replay"),
    "global dict value": (dict(step=lambda s: config_step(s), change=at(4, lambda s: CONFIG.update(scale=3.0))),
                          "replay"),
    "closure value": (dict(step=lambda s: closure_step(s), change=at(4, lambda s: s.set_weight(0.25))), "replay"),
    "closure of a loss function the step calls": (dict(step=lambda s: nested_closure_step(s),
                                                       change=at(4, lambda s: s.set_weight(3.0))), "replay"),
    "attribute of a plain object": (dict(step=lambda s: attr_step(s), change=at(4, lambda s: setattr(s, "w", 2.0)),
                                         w=1.0), "replay"),
    "global counter in the step": (dict(step=lambda s: counter_step(s)), "fallback"),
    "Python value changing every call": (dict(step=lambda s: weighted_step(s),
                                              change=lambda s, i: set_global(1.0 + i)), "any"),
    # state replaced or loaded
    "model load_state_dict": (dict(change=lambda s, i: load_model(s, i)), "replay"),
    "optimizer load_state_dict": (dict(opt=lambda m: optim.Adam(m.parameters(), lr=0.01),
                                       change=lambda s, i: load_opt(s, i)), "replay"),
    "parameter replaced": (dict(change=at(4, lambda s: replace_weight(s))), "replay"),
    "parameter replaced with a new optimizer": (dict(change=at(4, lambda s: replace_weight(s, new_opt=True))),
                                                "replay"),
    "layer replaced in Sequential": (dict(change=at(3, lambda s: replace_layer(s))), "replay"),
    "model replaced": (dict(change=at(4, lambda s: replace_model(s))), "replay"),
    "param group added": (dict(model=lambda: mlp(depth=2),
                               opt=lambda m: optim.SGD(list(m.parameters())[:4], lr=0.1),
                               change=at(4, lambda s: s.opt.add_param_group(
                                   {"params": list(s.model.parameters())[4:], "lr": 0.05}))), "replay"),
    "dtype changed to float64": (dict(change=at(4, lambda s: s.model.double()),
                                      data=lambda i: batch(i, dtype=np.float64 if i >= 4 else np.float32)),
                                 "fallback"),
    # gradients
    "zero_grad set_to_none=False": (dict(step=lambda s: zero_step(s, False)), "replay"),
    "zero_grad toggled outside the step": (dict(step=lambda s: no_zero_step(s),
                                                change=lambda s, i: s.opt.zero_grad(set_to_none=i % 3 == 0)),
                                           "any"),
    "grads accumulate across calls": (dict(step=lambda s: no_zero_step(s)), "replay"),
    "micro-batch accumulation": (dict(step=lambda s: micro_step(s)), "replay"),
    "no_grad block inside": (dict(step=lambda s: no_grad_step(s)), "replay"),
    "clip_grad_norm_": (dict(step=lambda s: clip_step(s, "norm")), "replay"),
    "clip_grad_norm_ inf, foreach": (dict(step=lambda s: clip_step(s, "inf")), "replay"),
    "clip_grad_norm_ error_if_nonfinite": (dict(step=lambda s: clip_step(s, "check")), "replay"),
    "clip_grad_value_": (dict(step=lambda s: clip_step(s, "value")), "replay"),
    "clip max_norm from a global": (dict(step=lambda s: clip_step(s, "global"),
                                         change=at(4, lambda s: set_global(0.05))), "replay"),
    # randomness
    "random noise in the step": (dict(step=lambda s: noise_step(s)), "replay"),
    "dropout with reseeding outside": (dict(model=lambda: mlp(dropout=0.5)), "replay"),
    "manual_seed inside the step": (dict(model=lambda: mlp(dropout=0.5), step=lambda s: reseed_step(s)), "fallback"),
    "draws from a Generator": (dict(step=lambda s: generator_step(s)), "replay"),
    "Generator reseeded between calls": (dict(step=lambda s: generator_step(s),
                                              change=lambda s, i: i % 3 == 0 and s.gen.manual_seed(i)), "replay"),
    "Generator reseeded inside the step": (dict(step=lambda s: generator_step(s, reseed=True)), "fallback"),
    # inputs
    "short last batch": (dict(data=lambda i: batch(i, n=5 if i == N_CALLS - 1 else 8)), "replay"),
    "non-contiguous inputs": (dict(data=lambda i: (np.asfortranarray(batch(i)[0]) if i % 2 else batch(i)[0],
                                                   batch(i)[1])), "replay"),
    "NaN inputs on a replayed call": (dict(data=lambda i: (np.full((8, 6), np.nan, np.float32) if i == 5
                                                           else batch(i)[0], batch(i)[1])), "replay"),
    "label out of range on a replayed call": (dict(data=lambda i: (batch(i)[0], np.where(
        np.arange(8) == 2, 7 if i == 5 else 1, batch(i)[1]))), "raise"),
    "negative label on a replayed call": (dict(data=lambda i: (batch(i)[0], np.where(
        np.arange(8) == 2, -1 if i == 5 else 1, batch(i)[1]))), "raise"),
    "label out of range, Tensor.cross_entropy": (dict(step=lambda s: method_loss_step(s), data=lambda i: (
        batch(i)[0], np.where(np.arange(8) == 2, 3 if i == 6 else 1, batch(i)[1]))), "raise"),
    # step code
    "in-place ops": (dict(step=lambda s: inplace_step(s)), "replay"),
    "data-dependent shape": (dict(step=lambda s: masked_step(s)), "fallback"),
    ".item() inside the step": (dict(step=lambda s: item_step(s)), "fallback"),
    "model.train() inside, eval() outside": (dict(model=lambda: mlp(dropout=0.3), step=lambda s: train_inside(s),
                                                  change=lambda s, i: s.model.eval()), "replay"),
    "returns several values": (dict(step=lambda s: multi_step(s)), "replay"),
    "label smoothing changed": (dict(step=lambda s: loss_module_step(s),
                                     change=at(4, lambda s: setattr(s.loss_fn, "label_smoothing", 0.1))), "replay"),
}


def set_global(v):
    global LOSS_WEIGHT
    LOSS_WEIGHT = v


def weighted_step(s):
    def step(x, y):
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y) * LOSS_WEIGHT
        loss.backward()
        s.opt.step()
        return loss

    return step


def config_step(s):
    def step(x, y):
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)) * CONFIG["scale"], y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def closure_step(s):
    weight = 1.0

    def set_weight(v):
        nonlocal weight
        weight = v

    def step(x, y):
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y) * weight
        loss.backward()
        s.opt.step()
        return loss

    s.set_weight = set_weight
    return step


def nested_closure_step(s):
    weight = 1.0

    def set_weight(v):
        nonlocal weight
        weight = v

    def loss_fn(out, y):
        return nn.functional.cross_entropy(out, y) * weight

    def step(x, y):
        s.opt.zero_grad()
        loss = s.loss_fn(s.model(tg.from_numpy(x)), y)
        loss.backward()
        s.opt.step()
        return loss

    s.set_weight, s.loss_fn = set_weight, loss_fn
    return step


def attr_step(s):
    def step(x, y):
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y) * s.w
        loss.backward()
        s.opt.step()
        return loss

    return step


def counter_step(s):
    def step(x, y):
        global COUNTER
        COUNTER += 1
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def sched_inside(s):
    sched = optim.lr_scheduler.StepLR(s.opt, step_size=1, gamma=0.5)

    def step(x, y):
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y)
        loss.backward()
        s.opt.step()
        sched.step()
        return loss

    return step


def zero_step(s, set_to_none):
    def step(x, y):
        s.opt.zero_grad(set_to_none=set_to_none)
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def no_zero_step(s):
    def step(x, y):
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def micro_step(s):
    def step(x, y):
        s.opt.zero_grad()
        total = 0.0
        xt, yt = tg.from_numpy(x), tg.from_numpy(y)
        for k in range(2):
            part = nn.functional.cross_entropy(s.model(xt[4 * k:4 * k + 4]), yt[4 * k:4 * k + 4]) / 2
            part.backward()
            total = part.detach() + total
        s.opt.step()
        return total

    return step


def no_grad_step(s):
    def step(x, y):
        s.opt.zero_grad()
        out = s.model(tg.from_numpy(x))
        loss = nn.functional.cross_entropy(out, y)
        loss.backward()
        with no_grad():
            correct = (out.argmax(1) == tg.from_numpy(y)).sum()
        s.opt.step()
        return loss, correct

    return step


def clip_step(s, how):
    def step(x, y):
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y) * 5.0
        loss.backward()
        if how == "norm":
            norm = nn.utils.clip_grad_norm_(s.model.parameters(), max_norm=0.5)
        elif how == "inf":
            norm = nn.utils.clip_grad_norm_(s.model.parameters(), 0.05, norm_type=float("inf"), foreach=True)
        elif how == "check":
            norm = nn.utils.clip_grad_norm_(s.model.parameters(), 0.5, error_if_nonfinite=True)
        elif how == "global":
            norm = nn.utils.clip_grad_norm_(s.model.parameters(), LOSS_WEIGHT)
        else:
            norm = nn.utils.clip_grad_value_(s.model.parameters(), 0.01, foreach=False)
        s.opt.step()
        return loss, norm

    return step


def noise_step(s):
    def step(x, y):
        s.opt.zero_grad()
        xt = tg.from_numpy(x)
        loss = nn.functional.cross_entropy(s.model(xt + tg.randn(*x.shape) * 0.1), y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def generator_step(s, reseed=False):
    s.gen = tg.Generator().manual_seed(3)

    def step(x, y):
        if reseed:
            s.gen.manual_seed(4)
        s.opt.zero_grad()
        noise = tg.randn(*x.shape, generator=s.gen) * 0.1
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x) + noise), y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def reseed_step(s):
    def step(x, y):
        tg.manual_seed(7)
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def inplace_step(s):
    def step(x, y):
        s.opt.zero_grad()
        h = s.model[0](tg.from_numpy(x))
        h.relu_()
        h.mul_(2.0)
        loss = nn.functional.cross_entropy(s.model[4](s.model[3](s.model[2](h))) if len(s.model) > 4
                                           else s.model[2](h), y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def masked_step(s):
    def step(x, y):
        s.opt.zero_grad()
        out = s.model(tg.from_numpy(x))
        loss = out[out > 0].sum() * 0.01 + nn.functional.cross_entropy(out, y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def item_step(s):
    def step(x, y):
        s.opt.zero_grad()
        loss = nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y)
        loss.backward()
        if loss.item() < 100:
            s.opt.step()
        return loss

    return step


def train_inside(s):
    inner = plain_step(s)

    def step(x, y):
        s.model.train()
        return inner(x, y)

    return step


def multi_step(s):
    def step(x, y):
        s.opt.zero_grad()
        out = s.model(tg.from_numpy(x))
        loss = nn.functional.cross_entropy(out, y)
        loss.backward()
        s.opt.step()
        return {"loss": loss, "logits": out.detach(), "n": len(y)}

    return step


def loss_module_step(s):
    s.loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        s.opt.zero_grad()
        loss = s.loss_fn(s.model(tg.from_numpy(x)), tg.from_numpy(y))
        loss.backward()
        s.opt.step()
        return loss

    return step


def method_loss_step(s):
    def step(x, y):
        s.opt.zero_grad()
        loss = s.model(tg.from_numpy(x)).cross_entropy(y)
        loss.backward()
        s.opt.step()
        return loss

    return step


def load_model(s, i):
    if i == 2:
        s.saved = s.model.state_dict()
    if i == 5:
        s.model.load_state_dict(s.saved)


def load_opt(s, i):
    if i == 2:
        s.saved = s.opt.state_dict()
    if i == 5:
        s.opt.load_state_dict(s.saved)


def replace_weight(s, new_opt=False):
    old = s.model[0].weight
    s.model[0].weight = nn.Parameter(old.data * 0.5)
    if new_opt:
        s.opt = optim.SGD(s.model.parameters(), lr=0.05)


def replace_layer(s):
    tg.manual_seed(3)
    s.model[0] = nn.Linear(6, 8)
    s.opt = optim.SGD(s.model.parameters(), lr=0.1)


def replace_model(s):
    tg.manual_seed(5)
    s.model = mlp()
    s.opt = optim.SGD(s.model.parameters(), lr=0.1)


@pytest.mark.parametrize("name", list(CASES))
def test_eager_and_compiled_agree(name):
    global LOSS_WEIGHT, COUNTER
    LOSS_WEIGHT, COUNTER = 1.0, 0
    CONFIG["scale"] = 1.0
    kwargs, outcome = CASES[name]
    kwargs = dict(kwargs)
    change, data = kwargs.pop("change", None), kwargs.pop("data", batch)
    compiled, seen, errors = run_case(change=change, data=data, **kwargs)
    if outcome == "raise":
        assert errors and all("out of range" in msg for _, msg in errors), errors
        assert compiled.replays > 0
    else:
        assert not errors, errors
        expect(outcome, compiled, seen)


def attach_sched(s):
    s.sched = optim.lr_scheduler.StepLR(s.opt, step_size=1, gamma=0.7)


def test_suite_is_large_enough():
    assert len(CASES) >= 40


def test_fallback_warning_names_the_op_and_how_to_fix():
    s = Setup(step=item_step)
    compiled = tg.compile(s.step)
    with pytest.warns(RuntimeWarning, match=r"(?s)\.item\(\).*Return the tensor from the step.*runs eagerly"):
        compiled(*batch(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning only: later calls run eagerly in silence
        for i in range(1, 4):
            compiled(*batch(i))
    assert compiled.replays == 0 and compiled.eager_calls == 4


def test_strict_mode_raises_instead():
    s = Setup(step=item_step)
    compiled = tg.compile(s.step, fallback=False)
    with pytest.raises(tg.CaptureError, match=r"\.item\(\)"):
        compiled(*batch(0))


def test_guards_view_names_what_is_guarded():
    s = Setup(model=lambda: mlp(dropout=0.3), step=weighted_step)
    compiled = tg.compile(s.step)
    for i in range(3):
        compiled(*batch(i))
    text = "\n".join(compiled.guards)
    for part in ("Dropout.training is True", "Dropout.p is 0.3", "global LOSS_WEIGHT", "requires_grad",
                 "Linear.weight is the same Parameter", "grad mode", "parameters of SGD's group 0"):
        assert part in text, f"{part!r} not in\n{text}"


def test_python_state_that_keeps_changing_stops_recording_after_the_limit():
    s = Setup(step=weighted_step)
    compiled = tg.compile(s.step)
    with pytest.warns(RuntimeWarning, match="LOSS_WEIGHT"):
        for i in range(compiled.max_rerecords + 4):
            set_global(1.0 + i)
            compiled(*batch(i))
    assert compiled.refused is not None and compiled.replays == 0
    set_global(1.0)


def test_two_threads_calling_one_step():
    eager, comp = Setup(), Setup()
    compiled = tg.compile(comp.step)
    order, lock = [], threading.Lock()

    def worker(k):
        for i in range(6):
            with lock:  # serialised here so that eager can follow the same order
                order.append((k, i))
                compiled(*batch(10 * k + i))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, i in order:
        eager.step(*batch(10 * k + i))
    assert state(eager) == state(comp) and compiled.replays > 0


def test_two_steps_sharing_a_model():
    eager, comp = Setup(), Setup()

    def eval_step_of(s):
        def eval_step(x, y):
            with no_grad():
                return nn.functional.cross_entropy(s.model(tg.from_numpy(x)), y)

        return eval_step

    train_c, eval_c = tg.compile(comp.step), tg.compile(eval_step_of(comp))
    eval_e = eval_step_of(eager)
    for i in range(8):
        assert flat(eager.step(*batch(i))) == flat(train_c(*batch(i)))
        assert flat(eval_e(*batch(50 + i))) == flat(eval_c(*batch(50 + i)))
        assert state(eager) == state(comp)
    assert train_c.replays and eval_c.replays


def test_step_called_under_no_grad_raises_as_eager_does():
    eager, comp = Setup(), Setup()
    compiled = tg.compile(comp.step)
    for i in range(4):
        eager.step(*batch(i))
        compiled(*batch(i))
    errors = []
    for fn in (eager.step, compiled):
        with no_grad(), pytest.raises(RuntimeError) as e:
            fn(*batch(4))
        errors.append(str(e.value))
    assert errors[0] == errors[1]
    assert state(eager) == state(comp)
    assert flat(eager.step(*batch(5))) == flat(compiled(*batch(5))) and state(eager) == state(comp)


def test_manual_seed_inside_a_step_without_random_ops_falls_back():
    """Reseeding in the step changes the random numbers drawn after it, outside: replay would not reseed."""
    eager, comp = Setup(step=reseed_step), Setup(step=reseed_step)
    compiled = tg.compile(comp.step)
    with pytest.warns(RuntimeWarning, match="manual_seed"):
        for i in range(5):
            draws = []
            for fn in (eager.step, compiled):
                tg.manual_seed(i)
                fn(*batch(i))
                draws.append(tg.randn(3).numpy().tobytes())
            assert draws[0] == draws[1]
    assert state(eager) == state(comp) and compiled.refused is not None


def test_recording_leaves_no_hooks_behind():
    """Module reads and writes and the Python tracer are watched only while a step records."""
    trace_before = sys.gettrace()
    for name in ("item_step", "weighted_step", "plain_step"):
        s = Setup(model=lambda: mlp(dropout=0.2), step=globals()[name])
        compiled = tg.compile(s.step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(4):
                compiled(*batch(i))
        assert "__getattribute__" not in nn.Module.__dict__ and "__setattr__" not in nn.Module.__dict__
        assert sys.gettrace() is trace_before
