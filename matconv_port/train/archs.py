"""Nets to train, as :class:`~matconv_port.netspec.NetSpec` (params in MatConvNet layout).

* :func:`vgg16` / :func:`demo`: built from scratch, DagNN-style (vars ``input``,
  ``x1``...; params ``<layer>f``/``<layer>b``; filters ``H x W x Cin x Cout``, biases
  ``1 x Cout``), ending like the original single-stream scripts leave a net: the
  classifier, a ``softmaxlog`` loss (output ``objective``, label var ``label``), then
  ``top1error``/``top5error``. Layer names follow VGG-16's (``conv5_3``, ``relu5_3``,
  ``pool5``, ``fc6``...) so the fusion surgery finds its layers in both.
* :func:`init_from_imagenet`: what ``cnn_ucf101_spatial.m``/``_temporal.m`` do to an
  ImageNet model (classifier replacement, cross-modality conv1 for flow, dropout,
  losses, ``setLrWd``).

Initialisation of new filters: ``randn * sqrt(2 / (H*W*Cin))`` (MatConvNet's
``xavierimproved``), biases 0; replaced classifiers ``0.01 * randn`` as the scripts.
"""
from __future__ import annotations

import numpy as np

from matconv_port.errors import ModelFormatError
from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec
from matconv_port.fusion import surgery as S

LR_WD_FILTERS = (1.0, 1.0)
LR_WD_BIASES = (2.0, 0.0)
IMAGENET_CLASSES = 1000


#: VGG-16's conv blocks: (block, convs in it, width)
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
#: initialisations of new filters (biases are zeros): ``xavierimproved`` (MatConvNet's,
#: ``randn * sqrt(2 / (H*W*Cin))``, drawn in double; the classifier ``0.01 * randn``, as
#: the scripts replace it), ``he32`` (the same scale drawn in single, classifier
#: included: the fusion fixtures' streams), ``shape`` (zero-strided read-only zeros: the
#: structure without memory, for counting)
INITS = ("xavierimproved", "he32", "shape")

_RELU = {"useShortCircuit": True, "leak": 0.0, "opts": []}


class _Builder:
    """Appends layers to a chain, naming vars ``x1``, ``x2``... after ``input``; blocks
    hold what ``saveobj`` writes (doubles, ``opts``). With ``numbered``, dropout and
    classifier layers are named ``layer<k>`` (k = position, as ``fromSimpleNN`` names
    unnamed SimpleNN layers) and the loss ``loss<k>``."""

    def __init__(self, seed: int, channels: int, init: str = "xavierimproved", numbered: bool = False):
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, not {init!r}")
        self.rng = np.random.default_rng(seed)
        self.init = init
        self.numbered = numbered
        self.layers: list[LayerSpec] = []
        self.params: dict[str, ParamSpec] = {}
        self.var = "input"
        self.n = 0
        self.channels = channels

    def _next(self) -> str:
        self.n += 1
        return f"x{self.n}"

    def _name(self, name: str) -> str:
        return f"layer{self.n + 1}" if self.numbered else name

    def _value(self, shape: tuple[int, ...], classifier: bool) -> np.ndarray:
        if self.init == "shape":
            return np.broadcast_to(np.float32(0), shape)
        fan_in = shape[0] * shape[1] * shape[2]
        if self.init == "he32":
            return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        std = 0.01 if classifier else float(np.sqrt(2.0 / fan_in))
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def add(self, name: str, type_: str, block: dict, params: list[str] | None = None) -> None:
        out = self._next()
        self.layers.append(LayerSpec(name, type_, [self.var], [out], list(params or []), block))
        self.var = out

    def conv(self, name: str, k: int | tuple[int, int], cout: int, pad: int = 0, stride: int = 1,
             classifier: bool = False) -> None:
        kh, kw = (k, k) if isinstance(k, int) else k
        shape = (kh, kw, self.channels, cout)
        name = self._name(name) if classifier else name
        self.params[name + "f"] = ParamSpec(name + "f", self._value(shape, classifier), *LR_WD_FILTERS)
        bias = np.broadcast_to(np.float32(0), (1, cout)) if self.init == "shape" else np.zeros((1, cout), np.float32)
        self.params[name + "b"] = ParamSpec(name + "b", bias, *LR_WD_BIASES)
        self.add(name, "dagnn.Conv", {"size": [float(s) for s in shape], "hasBias": True, "opts": [],
                                      "pad": [float(pad)] * 4, "stride": [float(stride)] * 2}, [name + "f", name + "b"])
        self.channels = cout

    def relu(self, name: str) -> None:
        self.add(name, "dagnn.ReLU", dict(_RELU))

    def pool(self, name: str, size: int = 2, stride: int = 2) -> None:
        self.add(name, "dagnn.Pooling", {"method": "max", "poolSize": [float(size)] * 2, "opts": [],
                                         "pad": [0.0] * 4, "stride": [float(stride)] * 2})

    def dropout(self, name: str, rate: float) -> None:
        if rate > 0:
            self.add(self._name(name), "dagnn.DropOut", {"rate": float(rate), "frozen": False})

    def finish(self, meta: dict, source: str = "") -> NetSpec:
        pred = self.var
        name, out = (f"loss{self.n + 1}", f"x{self.n + 1}") if self.numbered else ("loss", "objective")
        self.layers.append(LayerSpec(name, "dagnn.Loss", [pred, "label"], [out], [], {"loss": "softmaxlog", "opts": []}))
        _add_error_layers(self.layers, pred)
        spec = NetSpec(layers=self.layers, params=self.params, meta=meta, source_format="dagnn", source=source)
        spec.rebuild_vars()
        return spec


def _add_error_layers(layers: list[LayerSpec], pred: str, suffix: str = "") -> None:
    layers.append(LayerSpec("top1error" + suffix, "dagnn.Loss", [pred, "label"], ["top1error" + suffix], [],
                            {"loss": "classerror", "opts": []}))
    layers.append(LayerSpec("top5error" + suffix, "dagnn.Loss", [pred, "label"], ["top5error" + suffix], [],
                            {"loss": "topkerror", "opts": ["topK", 5.0]}))


def stream_meta(stream: str, image_size: tuple[int, int], classes: list[str]) -> dict:
    """``net.meta`` of a single stream: normalisation (per-channel mean: ImageNet's RGB
    mean for ``rgb``, 128 for the 20 flow channels) and class names."""
    if stream == "flow":
        channels, mean = 20, np.full((1, 1, 20), 128.0, np.float32)
    elif stream == "rgb":
        channels, mean = 3, np.array([122.7717, 115.9465, 102.9801], np.float32).reshape(1, 1, 3)
    else:
        raise ValueError(f"stream must be rgb or flow, not {stream!r}")
    h, w = image_size
    return {"normalization": {"imageSize": [float(h), float(w), float(channels)], "averageImage": mean,
                              "border": [float(256 - h), float(256 - w)], "interpolation": "bilinear",
                              "keepAspect": True},
            "classes": {"name": list(classes), "description": list(classes)}}


def _paper_meta(channels: int, image_size: tuple[int, int], classes: list[str]) -> dict:
    """``net.meta`` of the paper's converted stream models (ImageNet's VGG-16 mean for RGB)."""
    mean = np.full((1, 1, channels), 128.0) if channels != 3 else \
        np.array([123.68, 116.779, 103.939], dtype=np.float32).reshape(1, 1, 3)
    return {"inputs": {"name": "data"},
            "normalization": {"imageSize": [float(image_size[0]), float(image_size[1]), float(channels)],
                              "averageImage": mean, "rgbVariance": []},
            "classes": {"name": list(classes)}}


def _tag(spec: NetSpec, arch: str) -> NetSpec:
    spec.meta["trainArch"] = arch  # lets `train fusion` pick the matching recipe
    return spec


def _channels(stream: str) -> int:
    return 20 if stream == "flow" else 3


def vgg16(num_classes: int, stream: str = "rgb", classes: list[str] | None = None, dropout: float = 0.5,
          seed: int = 0, image_size: tuple[int, int] = (224, 224), *, widths: tuple[int, ...] | None = None,
          fc_width: int = 4096, fc6_size: int | None = None, init: str = "xavierimproved",
          layout: str = "train") -> NetSpec:
    """VGG-16 (``imagenet-vgg-verydeep-16``) for ``stream`` (3 or 20 input channels) with
    ``num_classes`` outputs: ``conv1_1`` .. ``relu5_3``, ``pool5``, ``fc6``, ``relu6``,
    dropout, ``fc7``, ``relu7``, dropout, the classifier, a ``softmaxlog`` loss,
    ``top1error``, ``top5error`` (no dropout layers at rate 0). ``widths`` overrides the
    five conv block widths, ``fc_width`` fc6/fc7's, ``fc6_size`` fc6's kernel (default
    ``image_size / 32``); ``init`` one of :data:`INITS`.

    ``layout="train"``: a net to train (``drop6``, ``drop7``, ``fc8``, loss ``loss`` ->
    ``objective``; :func:`stream_meta`). ``layout="paper"``: laid out like the paper's
    stream models (``cnn_ucf101_spatial.m`` / ``_temporal.m`` after
    ``replace_last_layer`` and ``fromSimpleNN``): ``layer34``, ``layer37`` (DropOut),
    ``layer38`` (the new fc8), ``loss39`` -> ``x39``; source ``vgg16-<C>ch``."""
    if layout not in ("train", "paper"):
        raise ValueError(f"layout must be train or paper, not {layout!r}")
    channels = _channels(stream)
    b = _Builder(seed, channels, init, numbered=layout == "paper")
    for (block, reps, _), width in zip(VGG16_BLOCKS, widths or [w for _, _, w in VGG16_BLOCKS]):
        for r in range(1, reps + 1):
            b.conv(f"conv{block}_{r}", 3, width, pad=1)
            b.relu(f"relu{block}_{r}")
        b.pool(f"pool{block}")
    b.conv("fc6", fc6_size or image_size[0] // 32, fc_width)
    b.relu("relu6")
    b.dropout("drop6", dropout)
    b.conv("fc7", 1, fc_width)
    b.relu("relu7")
    b.dropout("drop7", dropout)
    b.conv("fc8", 1, num_classes, classifier=True)
    names = classes or [f"class{i + 1}" for i in range(num_classes)]
    if layout == "paper":
        return b.finish(_paper_meta(channels, image_size, names), source=f"vgg16-{channels}ch")
    return _tag(b.finish(stream_meta(stream, image_size, names)), "vgg16")


DEMO_IMAGE_SIZE = (48, 48)
DEMO_WIDTHS = (16, 32, 64, 128)


def demo(num_classes: int, stream: str = "rgb", classes: list[str] | None = None, dropout: float = 0.5,
         seed: int = 0, image_size: tuple[int, int] = DEMO_IMAGE_SIZE, widths: tuple[int, ...] = DEMO_WIDTHS) -> NetSpec:
    """A small VGG-like net for the bundled synthetic data (48 x 48 crops of 64 x 80 frames):
    ``conv1_1 relu1_1 pool1 conv2_1 relu2_1 pool2 conv5_3 relu5_3 pool5 fc6 relu6 drop6 fc8``
    (3x3 convs, pad 1; 2x2 max pools; ``fc6`` covers the pool5 map), so the fusion
    surgery's defaults (``relu5_3``, ``pool5``) apply to it."""
    b = _Builder(seed, _channels(stream))
    c1, c2, c3, c4 = widths
    b.conv("conv1_1", 3, c1, pad=1)
    b.relu("relu1_1")
    b.pool("pool1")
    b.conv("conv2_1", 3, c2, pad=1)
    b.relu("relu2_1")
    b.pool("pool2")
    b.conv("conv5_3", 3, c3, pad=1)
    b.relu("relu5_3")
    b.pool("pool5")
    b.conv("fc6", (image_size[0] // 8, image_size[1] // 8), c4)
    b.relu("relu6")
    b.dropout("drop6", dropout)
    b.conv("fc8", 1, num_classes, classifier=True)
    return _tag(b.finish(stream_meta(stream, image_size, classes or [f"class{i + 1}" for i in range(num_classes)])), "demo")


ARCHS = {"demo": demo, "vgg16": vgg16}


def remove_layers(spec: NetSpec, names: set[str]) -> None:
    """``removeLayer`` each named layer (in layer order); readers of a removed
    single-input, single-output layer read its input instead."""
    for layer in [l for l in spec.layers if l.name in names]:
        S.remove_layer(spec, layer.name, chain_inputs=len(layer.inputs) == 1 and len(layer.outputs) == 1)


def init_from_imagenet(spec: NetSpec, stream: str, num_classes: int, classes: list[str] | None = None,
                       dropout: float = 0.5, seed: int = 0) -> NetSpec:
    """Prepare an ImageNet model (SimpleNN VGG or DagNN ResNet, any NetSpec) as
    ``cnn_ucf101_spatial.m`` (``stream="rgb"``) or ``cnn_ucf101_temporal.m`` (``"flow"``) do.

    * Classifier: every param with a 1000-sized dimension is replaced, the 1000 becoming
      ``num_classes``: filters (3+ dims) by ``0.01 * randn``, biases by zeros.
    * Flow, cross-modality init: a SimpleNN net's conv1 filters are averaged over the 3
      RGB channels and repeated over 20 (``repmat(mean(w,3), [1 1 20 1])``); a DagNN
      net's first param is padded to 20 channels with ``padarray(..., 'symmetric', 'post')``
      (RGBBGRRGB...), as the script does for each format. Mean: 128 per flow channel.
    * Dropout at ``dropout``: existing DropOut layers get the rate (removed if 0);
      otherwise SimpleNN nets get one after each of the two ReLUs before the classifier
      (``replace_last_layer``), DagNN nets one after the last Pooling layer.
    * SoftMax and ``*err*`` layers removed; a ``softmaxlog`` loss on the classifier if
      none exists (``insertLossLayers``); ``top1error``/``top5error`` added;
      ``setLrWd``; the first var renamed ``input``;
      ``normalization.border = [256 256] - imageSize(1:2)``.
    """
    if stream not in ("rgb", "flow"):
        raise ValueError(f"stream must be rgb or flow, not {stream!r}")
    spec = spec.copy()
    rng = np.random.default_rng(seed)
    simplenn = spec.source_format == "simplenn"
    norm = dict(spec.meta.get("normalization") or {})
    image_size = [float(v) for v in np.asarray(norm.get("imageSize", [224, 224, 3]), dtype=float).ravel()]
    # ---- classifier
    replaced = []
    for name, p in spec.params.items():
        value = np.asarray(p.value)
        if IMAGENET_CLASSES in value.shape:
            shape = tuple(num_classes if s == IMAGENET_CLASSES else s for s in value.shape)
            p.value = (0.01 * rng.standard_normal(shape)).astype(value.dtype) if value.ndim > 2 else np.zeros(shape, value.dtype)
            replaced.append(name)
    if not replaced:
        raise ModelFormatError(f"{spec.source or 'model'}: no 1000-way ImageNet classifier to replace")
    # ---- flow: cross-modality conv1
    if stream == "flow" and (len(image_size) < 3 or image_size[2] == 3):
        first = next((l for l in spec.layers if l.params), None)
        pname = first.params[0] if simplenn and first is not None else next(iter(spec.params))
        w = np.asarray(spec.params[pname].value)
        if w.ndim < 3 or w.shape[2] != 3:
            raise ModelFormatError(f"{spec.source or 'model'}: first filter {pname!r} is not H x W x 3 x C")
        if simplenn:
            w20 = np.repeat(w.mean(axis=2, keepdims=True, dtype=np.float64).astype(w.dtype), 20, axis=2)
        else:
            from matconv_port.eval.matlab import padarray_symmetric_post

            w20 = w[:, :, padarray_symmetric_post(list(range(3)), 17)]
        spec.params[pname].value = np.ascontiguousarray(w20)
        image_size = image_size[:2] + [20.0]
        norm["averageImage"] = np.full((1, 1, 20), 128.0, np.float32)
    norm["imageSize"] = image_size
    norm["border"] = [256.0 - image_size[0], 256.0 - image_size[1]]
    spec.meta = dict(spec.meta)
    spec.meta["normalization"] = norm
    names = list(classes or [f"class{i + 1}" for i in range(num_classes)])
    spec.meta["classes"] = {"name": names, "description": names}
    # ---- softmax / error layers out
    remove_layers(spec, {l.name for l in spec.layers if l.type == "dagnn.SoftMax" or S.is_error_layer(l)})
    classifier = next(l for l in reversed(spec.layers) if any(p in replaced for p in l.params))
    # ---- dropout
    drops = [l for l in spec.layers if l.type == "dagnn.DropOut"]
    if drops:
        if dropout > 0:
            S.set_dropout(spec, dropout)
        else:
            remove_layers(spec, {l.name for l in drops})
    elif dropout > 0:
        if simplenn:
            ci = spec.layers.index(classifier)
            relus = [l for l in spec.layers[:ci] if l.type == "dagnn.ReLU"][-2:]
            targets = relus
        else:
            targets = [l for l in spec.layers if l.type == "dagnn.Pooling"][-1:]
        for t in targets:  # readers of t's output read the new DropOut's
            name = f"drop_{t.name}"
            for other in spec.layers:
                other.inputs = [name if v == t.outputs[0] else v for v in other.inputs]
            S.add_layer_at(spec, spec.layers.index(t), name, "dagnn.DropOut", {"rate": float(dropout)},
                           [t.outputs[0]], [name])
    # ---- losses
    pred = classifier.outputs[0]
    if not S.objective_losses(spec.layers):
        spec.layers.append(LayerSpec(f"loss_{classifier.name}", "dagnn.Loss", [pred, "label"],
                                     [f"objective_{classifier.name}"], [], {"loss": "softmaxlog"}))
    pred = S.objective_losses(spec.layers)[-1].inputs[0]
    _add_error_layers(spec.layers, pred)
    S.set_lr_wd(spec)
    spec.rebuild_vars()
    first_var = spec.input_vars()[0] if spec.input_vars() else None
    if first_var and first_var != "input":
        S.rename_var(spec, first_var, "input")
    return spec
