"""The one graph executor (``network.GraphExecutor``): where vars die, where a layer
may overwrite its input, the frozen prefix, and that forward, training and the shape
check all go through it."""
from __future__ import annotations

import numpy as np
import torch

from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec
from matconv_port.network import MatConvNetModel
from matconv_port.shapecheck import infer_var_shapes


def _chain() -> MatConvNetModel:
    """input -> conv1 -> relu1 -> conv2 -> relu2 (x4); relu1's output also feeds sum."""
    rng = np.random.default_rng(0)
    layers = [LayerSpec("conv1", "dagnn.Conv", ["input"], ["x1"], ["f1", "b1"], {"pad": [1, 1, 1, 1]}),
              LayerSpec("relu1", "dagnn.ReLU", ["x1"], ["x2"], [], {}),
              LayerSpec("conv2", "dagnn.Conv", ["x2"], ["x3"], ["f2", "b2"], {"pad": [1, 1, 1, 1]}),
              LayerSpec("sum", "dagnn.Sum", ["x3", "x2"], ["x4"], [], {}),
              LayerSpec("relu2", "dagnn.ReLU", ["x4"], ["x5"], [], {})]
    params = {"f1": rng.standard_normal((3, 3, 2, 4)), "b1": rng.standard_normal((4, 1)),
              "f2": rng.standard_normal((3, 3, 4, 4)), "b2": rng.standard_normal((4, 1))}
    spec = NetSpec(layers=layers, params={k: ParamSpec(k, v.astype(np.float32)) for k, v in params.items()},
                   vars=[VarSpec(v) for v in ("input", "x1", "x2", "x3", "x4", "x5")])
    return MatConvNetModel(spec)


def _record(model, **kwargs):
    calls = []

    def call(step, values, overwrite):
        calls.append((step.name, overwrite))
        values.update({o: torch.zeros(1) for o in step.outputs})

    values = model.executor.run({"input": torch.zeros(1)}, call, given=["input"], **kwargs)
    return calls, values


def test_release_plan_and_overwrite_where_inputs_die():
    model = _chain()
    plan = model.executor.releases(["x5"])
    assert [dies for dies, _ in plan] == [("input",), ("x1",), (), ("x3", "x2"), ("x4",)]
    with torch.no_grad():
        calls, values = _record(model, keep=["input"], wanted=["x5"])
    # the caller's input is never overwritten; relu1's input dies there; conv2 leaves x2 alive
    assert calls == [("conv1", False), ("relu1", True), ("conv2", False), ("sum", True), ("relu2", True)]
    assert set(values) == {"input", "x5"}


def test_no_overwrite_with_autograd_on_or_without_a_plan():
    model = _chain()
    calls, values = _record(model, wanted=["x5"])
    assert not any(o for _, o in calls)
    with torch.no_grad():
        calls, values = _record(model)
    assert not any(o for _, o in calls) and set(values) == {"input", "x1", "x2", "x3", "x4", "x5"}


def test_frozen_prefix_runs_without_autograd_and_may_overwrite():
    model = _chain()
    x = torch.randn(2, 2, 5, 5)
    values, _ = model.execute({"input": x}, training=True, frozen_upto=1, keep=["input"], wanted=["x5"])
    assert set(values) == {"input", "x5"} and values["x5"].requires_grad
    values, _ = model.execute({"input": x}, training=True, frozen_upto=1)
    assert not values["x1"].requires_grad and not values["x2"].requires_grad and values["x3"].requires_grad
    full = model.forward_vars({"input": x})
    with torch.no_grad():
        freed = model.forward_vars({"input": x}, outputs=["x5"])
    assert set(freed) == {"x5"} and torch.equal(freed["x5"], full["x5"])


def test_shape_check_walks_the_same_steps():
    model = _chain()
    shapes = infer_var_shapes(model, {"input": (2, 2, 5, 5)})
    assert shapes["x5"] == (2, 4, 5, 5) and list(shapes) == ["input", "x1", "x2", "x3", "x4", "x5"]
