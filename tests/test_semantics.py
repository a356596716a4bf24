"""Where the paper's fork and stock MatConvNet v1.0-beta25 compute different things, the
choice is explicit (matconv_port.semantics): each difference against references of BOTH
code bases, computed under Octave by fixtures/mcn_extra/run.sh (export_fixtures.m:
stock_*.mat on stock beta25, fork_*.mat on the fork, same seeds so the same inputs and
weights), detection from evidence in the file, the option, and the stored choice.
dagnn.Loss instanceWeights / classWeights are checked here too (stock's and the fork's
vl_nnloss)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.io as sio
import torch

import matconv_port
from matconv_port.errors import MatConvPortError, ShapeError
from matconv_port.netspec import LayerSpec, NetSpec, VarSpec
from matconv_port.network import MatConvNetModel
from matconv_port.semantics import file_evidence, resolve_semantics
from parity_utils import FIXTURES, RTOL_FP32, load_case, relative_error

MX = os.path.join(FIXTURES, "mcn_extra")


def num(x) -> float:
    return float(np.asarray(x, dtype=np.float64).ravel()[0])


def fx(name: str) -> str:
    return os.path.join(MX, name)


def run(path: str, semantics: str = "auto", warn=None, training: bool | None = None, **kw):
    case = load_case(path)
    d = sio.loadmat(path)
    mode = str(np.asarray(d["mode"]).ravel()[0]) if "mode" in d else "test"
    model = matconv_port.load_model(path, semantics=semantics, warn=warn or (lambda m: None), **kw)
    values = model.forward_vars(dict(case.inputs), num_videos=case.num_videos,
                                training=(mode == "normal") if training is None else training)
    return case, model, values


def errors(case, model, values) -> dict[str, float]:
    return {n: relative_error(values[n], r) for n, r in case.expected.items() if n not in model.label_vars}


def assert_all_match(case, model, values, at_least: int = 3):
    errs = errors(case, model, values)
    bad = {n: e for n, e in errs.items() if not e <= RTOL_FP32}
    assert len(errs) >= at_least
    assert not bad, bad


# ------------------------------------------------------------------------- dagnn.Loss
def test_both_loss_files_hold_the_same_inputs():
    a, b = load_case(fx("stock_loss_spatial.mat")), load_case(fx("fork_loss_spatial.mat"))
    for k in ("scores", "label"):
        assert torch.equal(a.inputs[k], b.inputs[k])


def test_stock_loss_detected_and_matches_stock_vl_nnloss():
    case, model, values = run(fx("stock_loss_spatial.mat"))
    assert model.semantics == "stock" and model.semantics_choice.how == "detected"
    assert "ignoreAverage" in model.semantics_choice.describe()
    assert_all_match(case, model, values, at_least=10)


def test_fork_loss_matches_the_fork_with_semantics_fork():
    case, model, values = run(fx("fork_loss_spatial.mat"), semantics="fork")
    assert_all_match(case, model, values, at_least=10)


def test_error_losses_differ_between_fork_and_stock_and_each_side_matches_its_own():
    """Fork: classerror/topkerror averaged over the 3x2 map first (one count per item);
    stock: counted at every position. The same inputs under the other semantics
    give the other code base's numbers."""
    stock_case = load_case(fx("stock_loss_spatial.mat"))
    fork_case = load_case(fx("fork_loss_spatial.mat"))
    for name in ("obj_classerror", "obj_topk2"):
        assert num(stock_case.expected[name]) != num(fork_case.expected[name])
    _, m, v = run(fx("stock_loss_spatial.mat"), semantics="fork")
    assert m.semantics == "fork"
    assert_all_match(fork_case, m, v, at_least=10)
    _, m, v = run(fx("fork_loss_spatial.mat"), semantics="stock")
    assert_all_match(stock_case, m, v, at_least=10)


def test_instance_weights_are_applied_as_vl_nnloss_does():
    case, model, values = run(fx("stock_loss_spatial.mat"))
    plain = float(values["obj_softmaxlog"])
    for name in ("obj_softmaxlog_iw", "obj_softmaxlog_iwmap", "obj_mhinge_iw"):
        assert relative_error(values[name], case.expected[name]) <= RTOL_FP32
    assert abs(float(values["obj_softmaxlog_iw"]) - plain) > 0.1  # the weights matter


def test_binary_losses_with_instance_weights_match_stock():
    case, model, values = run(fx("stock_loss_binary.mat"))
    assert model.semantics == "stock"
    assert_all_match(case, model, values, at_least=4)


def test_class_weights_have_no_effect_and_say_so():
    said = []
    case, model, values = run(fx("stock_loss_spatial.mat"), warn=said.append)
    assert num(case.expected["obj_softmaxlog_cw"]) == num(case.expected["obj_softmaxlog"])  # MatConvNet ignores it
    assert float(values["obj_softmaxlog_cw"]) == float(values["obj_softmaxlog"])
    assert any("'l_cw'" in m and "classWeights has no effect" in m for m in said)


def _loss_net(loss: str, opts=(), extra: dict | None = None) -> NetSpec:
    block = {"loss": loss, "opts": list(opts), **(extra or {})}
    layer = LayerSpec("lo", "dagnn.Loss", ["x", "label"], ["obj"], [], block)
    return NetSpec(layers=[layer], vars=[VarSpec("x"), VarSpec("label"), VarSpec("obj")], source="t.mat")


def test_instance_weights_of_a_shape_that_does_not_broadcast_are_refused():
    net = _loss_net("softmaxlog", ["instanceWeights", np.ones((1, 1, 1, 3), np.float32)])
    model = MatConvNetModel(net, semantics="stock")
    with pytest.raises(ShapeError, match="'lo'.*instanceWeights of size 1x1x1x3"):
        model.forward_vars({"x": torch.randn(4, 5, 2, 2), "label": torch.tensor([1.0, 2, 3, 4])})


def test_post_beta25_normalise_divides_by_the_batch_size():
    """Semantic test against stock master's code (no Octave build of it here):
    vl_nnloss.m (after "Normalise loss", 2017) ends with ``y = y ./ size(x,4)`` when
    ``opts.normalise`` (default true) and x is 4-D; its dagnn.Loss blocks carry
    ``normalise``. Reference: the beta25 values of the same inputs, divided by N."""
    case = load_case(fx("stock_loss_spatial.mat"))
    x, label = case.inputs["scores"], case.inputs["label"]
    n = x.shape[0]
    plain = MatConvNetModel(_loss_net("softmaxlog", extra={"ignoreAverage": False}), semantics="auto")
    norm = MatConvNetModel(_loss_net("softmaxlog", extra={"ignoreAverage": False, "normalise": True}))
    off = MatConvNetModel(_loss_net("softmaxlog", ["normalise", False], extra={"normalise": True}))
    assert norm.semantics == "stock" and "'normalise'" in norm.semantics_choice.describe()
    ref = num(case.expected["obj_softmaxlog"])
    assert abs(float(plain.forward_vars({"x": x, "label": label})["obj"]) - ref) <= RTOL_FP32 * abs(ref)
    assert abs(float(norm.forward_vars({"x": x, "label": label})["obj"]) - ref / n) <= RTOL_FP32 * abs(ref)
    assert abs(float(off.forward_vars({"x": x, "label": label})["obj"]) - ref) <= RTOL_FP32 * abs(ref)


def test_stock_refuses_per_video_labels_and_top5classerror():
    model = MatConvNetModel(_loss_net("softmaxlog"), semantics="stock")
    with pytest.raises(ShapeError, match="2 labels for 6 items.*--semantics fork"):
        model.forward_vars({"x": torch.randn(6, 4, 1, 1), "label": torch.tensor([1.0, 2.0])}, num_videos=2)
    fork = MatConvNetModel(_loss_net("softmaxlog"), semantics="fork")
    fork.forward_vars({"x": torch.randn(6, 4, 1, 1), "label": torch.tensor([1.0, 2.0])}, num_videos=2)
    with pytest.raises(MatConvPortError, match="'top5classerror' does not exist in stock"):
        MatConvNetModel(_loss_net("top5classerror"), semantics="stock")


# ------------------------------------------------------------------------- dagnn.Concat
def test_concat_of_different_sizes_stock_refuses_fork_pads():
    d = sio.loadmat(fx("stock_concat_mismatch.mat"))
    assert "cat" in str(np.asarray(d["matconvnet_error"]).ravel()[0])  # stock MatConvNet refused it
    case = load_case(fx("stock_concat_mismatch.mat"))
    inputs = {k: case.inputs[k] for k in ("a", "b")}
    stock = matconv_port.load_model(fx("stock_concat_mismatch.mat"), semantics="stock")
    with pytest.raises(ShapeError, match="'cat'.*stock MatConvNet semantics.*--semantics fork"):
        stock.forward_vars(inputs)
    fork = matconv_port.load_model(fx("stock_concat_mismatch.mat"), semantics="fork")
    y = fork.forward_vars(inputs)["y"]
    a = torch.nn.functional.pad(inputs["a"], (0, 2, 0, 2))  # zero-padded at the bottom/right (padarray 'post')
    assert torch.equal(y, torch.cat([a, inputs["b"]], dim=1))
    # the fork's own output for this quirk: generated/dagnn_concat_pad.mat (tests/test_parity_reference.py)
    pad_case = load_case(os.path.join(FIXTURES, "generated", "dagnn_concat_pad.mat"))
    m = matconv_port.load_model(os.path.join(FIXTURES, "generated", "dagnn_concat_pad.mat"), semantics="fork")
    assert_all_match(pad_case, m, m.forward_vars(dict(pad_case.inputs), num_videos=pad_case.num_videos))
    with pytest.raises(ShapeError):
        matconv_port.load_model(os.path.join(FIXTURES, "generated", "dagnn_concat_pad.mat"),
                                semantics="stock").forward_vars(dict(pad_case.inputs), num_videos=pad_case.num_videos)


def test_convert_shape_check_refuses_mismatched_concat_under_stock(tmp_path):
    from matconv_port.convert import convert_file

    out = tmp_path / "c.pt"
    with pytest.raises(ShapeError, match="stock MatConvNet semantics"):
        convert_file(os.path.join(FIXTURES, "generated", "dagnn_concat_pad.mat"), str(out), log=lambda m: None,
                     semantics="stock")
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------------- BatchNorm epsilon
@pytest.mark.parametrize("base", ["stock", "fork"])
def test_bnorm_training_forward_matches_each_code_base(base):
    case, model, values = run(fx(f"{base}_bnorm_train.mat"), semantics=base)
    assert_all_match(case, model, values, at_least=3)
    eps = [m.epsilon for m in model.layers]
    assert eps == [{"stock": 1e-5, "fork": 1e-4}[base], 1e-2]  # the class default, then the block's own


@pytest.mark.parametrize("base", ["stock", "fork"])
def test_bnorm_default_epsilon_when_the_block_has_none(base):
    """A block without epsilon takes that MatConvNet's class default (stock 1e-5, fork 1e-4):
    the file's bn1 used the default, so dropping it must still reproduce bn1."""
    from matconv_port.converters import load_netspec

    case = load_case(fx(f"{base}_bnorm_train.mat"))
    spec = load_netspec(fx(f"{base}_bnorm_train.mat"))
    for layer in spec.layers:
        if layer.name == "bn1":
            layer.block.pop("epsilon")
    for sem, ok in ((base, True), ({"stock": "fork", "fork": "stock"}[base], False)):
        model = MatConvNetModel(spec.copy(), semantics=sem)
        values = model.forward_vars(dict(case.inputs), training=True)
        err = relative_error(values["b1"], case.expected["b1"])
        assert (err <= RTOL_FP32) == ok, (sem, err)


def test_simplenn_bnorm_epsilon_stock_uses_the_layers_fork_ignores_it():
    stock_case, model, values = run(fx("stock_simplenn_bnorm_train.mat"))
    assert model.semantics == "stock" and "epsilon" in model.semantics_choice.describe()
    assert_all_match(stock_case, model, values)
    fork_case, model, values = run(fx("fork_simplenn_bnorm_train.mat"), semantics="fork")
    assert [m.epsilon for m in model.layers[1:]] == [1e-4, 1e-4]
    assert_all_match(fork_case, model, values)
    assert relative_error(values["x2"], stock_case.expected["x2"]) > 0.1  # the two really differ
    _, model, values = run(fx("fork_simplenn_bnorm_train.mat"), semantics="stock")
    assert relative_error(values["x2"], stock_case.expected["x2"]) <= RTOL_FP32


# ------------------------------------------------------------------------- detection, option, storage
def _spec(*layers, fmt="dagnn") -> NetSpec:
    return NetSpec(layers=[LayerSpec(n, t, ["x"], [n + "_y"], [], b) for n, t, b in layers], source_format=fmt,
                   source="f.mat")


@pytest.mark.parametrize("layers,fmt,want", [
    ([("l", "dagnn.Loss", {"loss": "softmaxlog", "ignoreAverage": False, "opts": []})], "dagnn", "stock"),
    ([("b", "dagnn.BatchNorm", {"numChannels": 3, "epsilon": 1e-5, "opts": ["NoCuDNN"]})], "dagnn", "stock"),
    ([("c", "dagnn.Conv", {"size": [1, 1, 3, 3], "dilate": [1, 1]})], "dagnn", "stock"),
    ([("t", "dagnn.ConvTranspose", {})], "dagnn", "stock"),
    ([("b", "dagnn.BatchNorm", {"simplennEpsilon": 1e-5})], "simplenn", "stock"),
    ([("c", "dagnn.Conv3D", {})], "dagnn", "fork"),
    ([("l", "dagnn.Loss", {"loss": "top5classerror", "opts": []})], "dagnn", "fork"),
    ([("c", "dagnn.Conv", {"size": [1, 1, 3, 3]}), ("l", "dagnn.Loss", {"loss": "log", "opts": []})], "dagnn", None),
    # a SimpleNN's blocks are the converter's: a 'dilate' there says nothing
    ([("c", "dagnn.Conv", {"size": [1, 1, 3, 3], "dilate": [1, 1]})], "simplenn", None),
])
def test_evidence(layers, fmt, want):
    spec = _spec(*layers, fmt=fmt)
    choice = resolve_semantics("auto", spec)
    assert choice.name == (want or "fork")
    assert choice.how == ("detected" if want else "default")
    assert resolve_semantics("stock", spec).name == "stock" and resolve_semantics("fork", spec).how == "option"


def test_conflicting_evidence_is_refused_in_auto():
    spec = _spec(("c", "dagnn.Conv3D", {}), ("b", "dagnn.BatchNorm", {"opts": []}))
    assert file_evidence(spec)["stock"] and file_evidence(spec)["fork"]
    with pytest.raises(MatConvPortError, match="--semantics fork or --semantics stock"):
        resolve_semantics("auto", spec)
    assert resolve_semantics("fork", spec).name == "fork"


def test_bad_semantics_name_is_refused():
    with pytest.raises(MatConvPortError, match="semantics 'beta25'"):
        matconv_port.load_model(fx("stock_loss_spatial.mat"), semantics="beta25")


def test_the_converted_file_keeps_the_choice(tmp_path):
    from matconv_port.convert import convert_file

    out = str(tmp_path / "l.pt")
    convert_file(fx("fork_loss_spatial.mat"), out, log=lambda m: None, semantics="stock", input_size=[3, 2, 5])
    model = matconv_port.load_model(out, warn=lambda m: None)
    assert model.semantics == "stock" and model.semantics_choice.how == "stored"
    assert "as asked" in model.semantics_choice.describe()
    case = load_case(fx("stock_loss_spatial.mat"))
    assert_all_match(case, model, model.forward_vars(dict(case.inputs), num_videos=case.num_videos), at_least=10)
    assert matconv_port.load_model(out, semantics="fork", warn=lambda m: None).semantics == "fork"
    out2 = str(tmp_path / "l2.pt")
    convert_file(out, out2, log=lambda m: None)  # re-saved: the original reason, not nested
    again = matconv_port.load_model(out2, warn=lambda m: None).semantics_choice
    assert again.name == "stock" and again.evidence == ["as asked"]


def test_cli_semantics_option(tmp_path):
    from click.testing import CliRunner

    from matconv_port.cli import main

    out = str(tmp_path / "c.pt")
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(main, list(args))

    p = cli("convert", fx("stock_loss_spatial.mat"), "-o", out, "--input-size", "3,2,5")
    assert p.exit_code == 0, p.output
    assert "semantics: stock (detected:" in p.stdout
    p = cli("inspect", out)
    assert p.exit_code == 0 and "semantics: stock (stored in the converted file" in p.stdout
    p = cli("inspect", "--semantics", "fork", out)
    assert p.exit_code == 0 and "semantics: fork (as asked)" in p.stdout
    p = cli("convert", "--semantics", "nope", fx("stock_loss_spatial.mat"))
    assert p.exit_code == 2 and "nope" in p.stderr


# ------------------------------------------------------------------------- SimpleNN loss layers
@pytest.mark.parametrize("base", ["stock", "fork"])
def test_simplenn_loss_layer_ignores_its_loss_field_as_vl_simplenn_does(base):
    """vl_simplenn runs ``vl_nnloss(res(i).x, l.class)``: softmaxlog even though the layer
    says 'classerror' (both code bases)."""
    said = []
    case, model, values = run(fx(f"{base}_simplenn_loss_field.mat"), semantics=base, warn=said.append)
    assert_all_match(case, model, values, at_least=3)
    assert model.layer_specs[-1].block["loss"] == "softmaxlog"
    assert any("'classerror'" in m and "vl_simplenn ignores that field" in m for m in said)
    x = values["x1"].detach().double().reshape(5, 6)
    labels = torch.tensor([4, 2, 6, 1, 3]) - 1
    softmaxlog = float((torch.logsumexp(x, 1) - x[torch.arange(5), labels]).sum())
    assert abs(num(case.expected["x2"]) - softmaxlog) <= 1e-5 * abs(softmaxlog)


def test_eval_passes_semantics_to_load_model(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from matconv_port.cli import main

    seen = {}

    def fake_load_model(path, **kw):
        seen.update(kw)
        raise MatConvPortError(f"{path}: stop here")

    monkeypatch.setattr(matconv_port, "load_model", fake_load_model)
    result = CliRunner().invoke(main, ["eval", "--model", fx("stock_loss_spatial.mat"), "--data-root", str(tmp_path),
                                       "--out", str(tmp_path / "o"), "--semantics", "stock", "--no-progress"])
    assert result.exit_code == 2 and "stop here" in result.stderr, result.output
    assert seen.get("semantics") == "stock"
