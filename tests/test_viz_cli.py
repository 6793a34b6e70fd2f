"""`python -m tinygrad_mnist graph`: every option changes what it says it changes."""

from __future__ import annotations

import re
import shutil

import pytest

from tinygrad_mnist import cli


def draw(tmp_path, capsys, *args, model="cnn", name="g.dot"):
    path = tmp_path / name
    rc = cli.main(["graph", "--model", model, "-o", str(path), *map(str, args)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert f"wrote {path}" in out
    return path.read_text()


def labels(text) -> list:
    return re.findall(r'label="([^"]*)"', text) + re.findall(r"label=(\w+)", text)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    import io
    from contextlib import redirect_stdout
    path = tmp_path_factory.mktemp("base") / "g.dot"
    with redirect_stdout(io.StringIO()):
        assert cli.main(["graph", "--model", "cnn", "-o", str(path)]) == 0
    return path.read_text()


def test_default_cnn_step(base):
    assert base.lstrip().startswith("digraph")
    assert "x\\n(4, 1, 28, 28) float32" in base and "labels\\n(4,) int64" in base
    assert "conv1 · Conv2d" in base and "max_pool2d" in base and "cross_entropy" in base
    assert "‖grad‖" in base and "legend [label=<" in base
    assert "rankdir=TB" in base


def test_model(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, model="nielsen")
    assert text != base and "conv1" not in text and "0 · Linear" in text


def test_output_format(tmp_path, capsys):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")
    svg = draw(tmp_path, capsys, name="g.svg")
    assert "<svg" in svg


def test_batch_size(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--batch-size", 2)
    assert "(2, 1, 28, 28)" in text and "(4, 1, 28, 28)" not in text


def test_expand_module(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--expand", "conv1")
    assert text != base
    assert "mod_conv1" not in text and "mod_conv2" in text
    assert "label=Conv2d " in text and "label=Conv2d " not in base  # conv1's conv2d call drawn as its op
    assert 'label="conv1 · Conv2d"' in text  # now a cluster


def test_expand_call(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--expand", "max_pool2d")
    assert text.count("label=max_pool2d") == 2  # the two call clusters
    assert text.count("label=MaxPool2d ") == 2 and "label=MaxPool2d " not in base


def test_expand_all(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--expand")
    assert "mod_" not in text and "\tcall" not in text


def test_depth_and_no_fold_on_the_mlp(tmp_path, capsys):
    # the demo models have no nested modules and no repeated blocks, so these two change nothing there
    # (tests/test_viz_features.py draws a 12-block residual MLP for them)
    default = draw(tmp_path, capsys, model="mlp")
    assert draw(tmp_path, capsys, "--depth", 1, model="mlp") == default
    assert draw(tmp_path, capsys, "--no-fold", model="mlp") == default


def test_depth_and_no_fold_change_a_nested_model(tmp_path, capsys, monkeypatch):
    from test_viz_features import ResMLP

    from tinygrad_mnist import models, train
    monkeypatch.setitem(models.MODELS, "mlp", lambda: ResMLP(d=16, n=3, n_in=784, n_out=10))
    default = draw(tmp_path, capsys, model="mlp")
    assert "Block × 3" in default
    no_fold = draw(tmp_path, capsys, "--no-fold", model="mlp")
    assert "Block × 3" not in no_fold and "blocks.2 · Block" in no_fold
    depth1 = draw(tmp_path, capsys, "--depth", 1, "--no-fold", model="mlp")
    assert "blocks · Sequential\\n" in depth1 and "blocks.2 · Block" not in depth1
    assert train.RECIPES["mlp"].model == "mlp"


def test_no_grads(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--no-grads")
    assert "‖grad‖" not in text and "‖grad‖" in base


def test_values(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--values")
    assert "mean " in "".join(labels(text)) and "mean " not in "".join(labels(base))


def test_saved(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--saved")
    assert "saved for backward: " in text and "saved for backward: " not in base
    assert "drawn after backward()" not in text  # drawn before the backward frees the saved arrays


def test_highlight(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--highlight", "conv1.weight")
    assert "#e7298a" in text and "#e7298a" not in base


def test_backward_order(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--backward-order")
    assert re.search(r"\[1\] cross_entropy", text) and "[1]" not in base


def test_direction(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--direction", "backward")
    assert "cross_entropy backward" in text and "cross_entropy backward" not in base
    assert "x\\n(4, 1, 28, 28)" not in text  # the data needs no gradient: not in the backward pass


def test_rankdir(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--rankdir", "LR")
    assert "rankdir=LR" in text and text.replace("rankdir=LR", "rankdir=TB") == base


def test_max_nodes(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--max-nodes", 10)
    assert "more ops" in text and "more ops" not in base


def test_no_legend(tmp_path, capsys, base):
    text = draw(tmp_path, capsys, "--no-legend")
    assert "legend" not in text and text != base


@pytest.mark.parametrize("args,msg", [(["--expand", "nope"], "nope"), (["--highlight", "nope"], "nope"),
                                      (["--batch-size", "0"], "positive"), (["--max-nodes", "2"], "at least 3")])
def test_bad_values_are_one_line_errors(tmp_path, capsys, args, msg):
    try:
        rc = cli.main(["graph", "--model", "nielsen", "-o", str(tmp_path / "g.dot"), *args])
    except SystemExit as e:  # argparse
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and "Traceback" not in err
