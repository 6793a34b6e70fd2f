"""Integration: real training runs reach real accuracies, are reproducible, and free their graphs.

No wall-clock limits here: speed is for the benchmarks; these tests only check what training achieves.
"""

from __future__ import annotations

import gc
import os
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinygrad_mnist import Tensor, data, manual_seed, nn, optim
from tinygrad_mnist.train import EVAL_BATCH, RECIPES, Recipe, build_model, evaluate, fit, predict_logits

REPO = Path(__file__).resolve().parent.parent


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def sample():
    return data.load_sample()


def full_mnist() -> data.Dataset:
    """The full MNIST from $TINYGRAD_MNIST_DATA or ../shared/data/mnist beside the checkout, else skip."""
    places = [p for p in (os.environ.get(data.ENV_VAR), REPO.parent / "shared" / "data" / "mnist") if p]
    for place in places:
        try:
            return data.load_mnist(place, verbose=False)
        except data.DataError:
            continue
    pytest.skip(f"full MNIST not found (looked in ${data.ENV_VAR} and {REPO.parent / 'shared/data/mnist'}); "
                f"get it with: {data.DOWNLOAD_HINT}")


def small_mlp_run(ds: data.Dataset, epochs: int, batch_size: int):
    manual_seed(0)
    model = nn.MLP([784, 128, 10], activation="relu", init="kaiming")
    recipe = Recipe("mlp", epochs=epochs, batch_size=batch_size, lr=1e-3, optimizer="adam")
    history = fit(model, ds, recipe, progress=False, log=quiet)
    return model, history


def test_small_mlp_on_the_bundled_sample(sample):
    model, history = small_mlp_run(sample, epochs=3, batch_size=32)
    acc = evaluate(model, sample.x_test, sample.y_test)
    assert acc == history.epochs[-1].eval_acc
    assert acc >= 0.90, f"784-128-10 Adam, 3 epochs on 10,000 digits: {acc:.4f} on the sample's 2,000 test digits"
    losses = [e.train_loss for e in history.epochs]
    assert losses == sorted(losses, reverse=True), f"training loss should fall every epoch: {losses}"


def test_small_mlp_on_full_mnist():
    ds = full_mnist()
    assert len(ds.y_train) == 60_000 and len(ds.y_test) == 10_000
    model, _ = small_mlp_run(ds, epochs=1, batch_size=32)
    acc = evaluate(model, ds.x_test, ds.y_test)
    assert acc >= 0.95, f"784-128-10 Adam, 1 epoch on 60,000 digits: {acc:.4f} on the 10,000 test digits"


def live_tensors() -> int:
    return sum(issubclass(type(o), Tensor) for o in gc.get_objects())  # type(): no attribute lookups


def test_training_frees_every_graph(sample):
    manual_seed(0)
    model = nn.MLP([784, 32, 10], activation="relu", init="kaiming")
    opt = optim.Adam(model.parameters(), lr=1e-3)
    batches = data.iterate_minibatches(sample.x_train, sample.y_train, 4, seed=0)
    gc.collect()
    # With the cycle collector off, anything a step leaves in a reference cycle piles up and shows in the
    # count; plain reference counting must free each step's graph on its own.
    gc.disable()
    try:
        previous_loss = None
        for step in range(1, 301):
            xb, yb = next(batches)
            logits = model(Tensor(xb))
            loss = logits.cross_entropy(yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            # backward released the graph: the logits live on only through our own variable
            logits_ref = weakref.ref(logits)
            del logits
            assert logits_ref() is None, f"step {step}: backward kept the graph alive"
            if previous_loss is not None:
                assert previous_loss() is None, f"step {step}: the loss of step {step - 1} is still alive"
            previous_loss = weakref.ref(loss)
            if step == 10:
                at_10 = live_tensors()
        at_300 = live_tensors()
    finally:
        gc.enable()
    assert at_300 <= at_10, f"live Tensors grew from {at_10} after step 10 to {at_300} after step 300"


def test_nielsen_recipe_is_reproducible(sample):
    def run(seed):
        manual_seed(seed)
        model = build_model("nielsen")
        return fit(model, sample, replace(RECIPES["nielsen"], epochs=3, seed=seed), progress=False, log=quiet)

    a, b = run(0), run(0)
    assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]
    assert [e.eval_acc for e in a.epochs] == [e.eval_acc for e in b.epochs]
    accs = [e.eval_acc for e in a.epochs]
    # N(0, 1) sigmoid units start saturated: about 68% after one epoch of the 10k sample, 84% after three
    # (on the full MNIST: about 91% after one epoch, as in Nielsen's book)
    assert accs[0] > 0.6 and accs[-1] > 0.8, accs
    c = run(1)
    assert [e.train_loss for e in c.epochs] != [e.train_loss for e in a.epochs]  # the seed matters
    assert np.isfinite([e.train_loss for e in c.epochs]).all()


def test_evaluation_does_not_depend_on_its_batch_size(sample):
    """The fast recipe's batch norm evaluates with its running statistics, so the logits of an image are the
    same in any evaluation batch, down to one image (the CLI's evaluation batches are EVAL_BATCH images,
    training's 256; float32 tolerance: OpenBLAS's small-matrix paths may round the last bits differently),
    and evaluating leaves the model in training mode with its running statistics untouched."""
    manual_seed(0)
    model = build_model("fast")
    small = replace(sample, x_train=sample.x_train[:512], y_train=sample.y_train[:512])
    fit(model, small, replace(RECIPES["fast"], epochs=1), x_eval=sample.x_test[:10], y_eval=sample.y_test[:10],
        progress=False, log=quiet)
    stats = [b.data.copy() for b in model.buffers()]
    x = sample.x_test[:300]
    whole = predict_logits(model, x, batch_size=300)
    for size in (EVAL_BATCH, 7, 1):
        np.testing.assert_allclose(predict_logits(model, x, batch_size=size), whole, rtol=1e-5, atol=1e-5)
    assert model.training
    for before, b in zip(stats, model.buffers()):
        np.testing.assert_array_equal(b.data, before)
    default = predict_logits(model, x)  # EVAL_BATCH at a time
    assert evaluate(model, x, sample.y_test[:300]) == float((default.argmax(1) == sample.y_test[:300]).mean())
