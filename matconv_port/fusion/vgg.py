"""Full-size VGG-16 single-stream NetSpecs laid out like the paper's stream models
(``cnn_ucf101_spatial.m`` / ``_temporal.m`` after ``replace_last_layer`` and
``fromSimpleNN``): layers ``conv1_1`` .. ``relu5_3``, ``pool5``, ``fc6``, ``relu6``,
``layer34`` (DropOut), ``fc7``, ``relu7``, ``layer37`` (DropOut), ``layer38`` (the
new fc8), ``loss39`` (softmaxlog), ``top1error``, ``top5error``; vars ``input``,
``x1`` .. ``x39``, ``label``. For parameter counting and benchmarks (random or
zero weights); not a trained model.

``values="shape"`` gives zero-strided read-only views (``np.broadcast_to``): the
full 138M-parameter structure costs no memory, for counting.
"""
from __future__ import annotations

import numpy as np

from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec, VarSpec

#: (block, convs per block, width)
VGG16_BLOCKS = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]


def vgg16_stream_netspec(in_channels: int = 3, num_classes: int = 101, *, widths: list[int] | None = None,
                         fc_width: int = 4096, fc6_size: int = 7, values: str = "random", seed: int = 0,
                         dropout: float = 0.85, source: str = "") -> NetSpec:
    """A VGG-16 stream net (``in_channels`` = 3 for RGB, 20 for flow).

    ``values``: ``"random"`` (float32, He-scaled normal filters, zero biases),
    ``"shape"`` (zero-strided zeros: shapes only). ``widths`` overrides the five conv
    block widths (default 64, 128, 256, 512, 512)."""
    rng = np.random.default_rng(seed)
    widths = widths or [w for _, _, w in VGG16_BLOCKS]

    def value(shape: tuple, bias: bool) -> np.ndarray:
        if values == "shape":
            return np.broadcast_to(np.float32(0), shape)
        if bias:
            return np.zeros(shape, np.float32)
        fan_in = int(np.prod(shape[:3]))
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in)))

    layers: list[LayerSpec] = []
    params: list[ParamSpec] = []
    var = ["input"]
    counter = [0]

    def nxt() -> str:
        counter[0] += 1
        return f"x{counter[0]}"

    def conv(name: str, shape: tuple, pad: int) -> None:
        out = nxt()
        layers.append(LayerSpec(name, "dagnn.Conv", [var[0]], [out], [f"{name}f", f"{name}b"],
                                {"size": [float(s) for s in shape], "hasBias": True, "opts": [],
                                 "pad": [float(pad)] * 4, "stride": [1.0, 1.0]}))
        params.append(ParamSpec(f"{name}f", value(shape, False), 1.0, 1.0))
        params.append(ParamSpec(f"{name}b", value((1, shape[3]), True), 2.0, 0.0))
        var[0] = out

    def simple(name: str, mcn_type: str, block: dict) -> None:
        out = nxt()
        layers.append(LayerSpec(name, mcn_type, [var[0]], [out], [], block))
        var[0] = out

    relu = {"useShortCircuit": True, "leak": 0.0, "opts": []}
    pool = {"method": "max", "poolSize": [2.0, 2.0], "opts": [], "pad": [0.0] * 4, "stride": [2.0, 2.0]}
    cin = in_channels
    for (b, n, _), width in zip(VGG16_BLOCKS, widths):
        for k in range(1, n + 1):
            conv(f"conv{b}_{k}", (3, 3, cin, width), 1)
            cin = width
            simple(f"relu{b}_{k}", "dagnn.ReLU", dict(relu))
        simple(f"pool{b}", "dagnn.Pooling", dict(pool))
    conv("fc6", (fc6_size, fc6_size, cin, fc_width), 0)
    simple("relu6", "dagnn.ReLU", dict(relu))
    simple(f"layer{counter[0] + 1}", "dagnn.DropOut", {"rate": float(dropout), "frozen": False})
    conv("fc7", (1, 1, fc_width, fc_width), 0)
    simple("relu7", "dagnn.ReLU", dict(relu))
    simple(f"layer{counter[0] + 1}", "dagnn.DropOut", {"rate": float(dropout), "frozen": False})
    conv(f"layer{counter[0] + 1}", (1, 1, fc_width, num_classes), 0)
    pred = var[0]
    loss_out = f"x{counter[0] + 1}"
    layers.append(LayerSpec(f"loss{counter[0] + 1}", "dagnn.Loss", [pred, "label"], [loss_out], [],
                            {"loss": "softmaxlog", "opts": []}))
    layers.append(LayerSpec("top1error", "dagnn.Loss", [pred, "label"], ["top1error"], [],
                            {"loss": "classerror", "opts": []}))
    layers.append(LayerSpec("top5error", "dagnn.Loss", [pred, "label"], ["top5error"], [],
                            {"loss": "topkerror", "opts": ["topK", 5.0]}))
    names: list[str] = []
    for l in layers:
        for v in l.inputs + l.outputs:
            if v not in names:
                names.append(v)
    mean = np.full((1, 1, in_channels), 128.0) if in_channels != 3 else \
        np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape(1, 1, 3)
    meta = {"inputs": {"name": "data"},
            "normalization": {"imageSize": [224.0, 224.0, float(in_channels)], "averageImage": mean,
                              "rgbVariance": []},
            "classes": {"name": [f"class{i + 1}" for i in range(num_classes)]}}
    return NetSpec(layers=layers, params={p.name: p for p in params}, vars=[VarSpec(n) for n in names], meta=meta,
                   source_format="dagnn", source=source or f"vgg16-{in_channels}ch")
