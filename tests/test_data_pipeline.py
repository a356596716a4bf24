"""The one input pipeline: frame paths and the JPEG reader (``data/frames.py``) and the
one reading of ``meta.normalization.averageImage`` (``data/average_image.py``), checked
through every caller (evaluation, training, the clip model, the fusion build) for
every stored shape. What MATLAB gives: ``mean(mean(avg, 1), 2)`` of the stored array
(a ``1 x 3`` row -> one value); the callers read such a vector as 3 channel means,
except evaluation, which keeps the original test code's one value."""
from __future__ import annotations

import pickle
import types

import cv2
import numpy as np
import pytest

from matconv_port.data import frames
from matconv_port.data.average_image import channel_means, mean_hw, mean_image
from matconv_port.errors import DataError, ModelFormatError

RGB = np.array([10.0, 20.0, 30.0], np.float32)
_PATTERN = np.array([[1.0, -2.0, 3.0, 0.5, -2.5], [-1.0, 2.0, -3.0, -0.5, 2.5],
                     [0.25, -0.25, 0.75, -0.75, 0.0], [-0.25, 0.25, -0.75, 0.75, 0.0]], np.float32)  # mean 0

#: stored averageImage -> (what every caller but eval subtracts, what eval subtracts)
SHAPES = {
    "1x1x3": (RGB.reshape(1, 1, 3), RGB, RGB),
    "4x5x3": (RGB.reshape(1, 1, 3) + _PATTERN[:, :, None], RGB, RGB),
    "1x3": (RGB.reshape(1, 3), RGB, np.full(3, 20.0)),
    "3x1": (RGB.reshape(3, 1), RGB, np.full(3, 20.0)),
    "3 (1-D)": (RGB.copy(), RGB, RGB),
    "4x5": (np.float32(7.0) + _PATTERN, np.full(3, 7.0), np.full(3, 7.0)),
    "scalar": (np.float32(7.0), np.full(3, 7.0), np.full(3, 7.0)),
    "1x1": (np.full((1, 1), 7.0, np.float32), np.full(3, 7.0), np.full(3, 7.0)),
    "empty": (np.zeros((0, 0)), np.zeros(3), np.zeros(3)),
    "absent": (None, np.zeros(3), np.zeros(3)),
}


def _meta(avg, channels=3):
    norm = {"imageSize": [8.0, 8.0, float(channels)]}
    if avg is not None:
        norm["averageImage"] = avg
    return {"normalization": norm}


# ----------------------------------------------------------------------------- the reading
def test_mean_hw_is_matlabs_mean_of_means_in_single():
    """Single stays single and rows are summed in order (MATLAB/Octave), which can
    differ from numpy's pairwise float64 mean in the last bit."""
    rng = np.random.default_rng(0)
    avg = (120 + 10 * rng.standard_normal((224, 224, 3))).astype(np.float32)
    m = mean_hw(avg)
    assert m.shape == (1, 1, 3) and m.dtype == np.float32
    acc = np.zeros((224, 3), np.float32)
    for row in avg:
        acc = acc + row
    rows = acc / np.float32(224)
    acc = np.zeros(3, np.float32)
    for col in rows:
        acc = acc + col
    np.testing.assert_array_equal(m.ravel(), acc / np.float32(224))
    np.testing.assert_allclose(m.ravel(), avg.mean(axis=(0, 1), dtype=np.float64), rtol=1e-6)
    assert mean_hw(avg.astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_the_shared_functions(name):
    avg, ours, matlab = SHAPES[name]
    np.testing.assert_allclose(channel_means(avg, 3), ours, rtol=1e-6)
    np.testing.assert_allclose(channel_means(avg, 3, vector_as_channels=False), matlab, rtol=1e-6)
    img = mean_image(avg)
    if name == "4x5x3":
        np.testing.assert_array_equal(img, np.asarray(avg).transpose(2, 0, 1))
    elif name == "4x5":
        assert img.shape == (1, 4, 5)
    else:
        assert img is None


def test_wrong_channel_count_is_one_line():
    with pytest.raises(ModelFormatError, match=r"averageImage has 3 channels, not the 20 of the net's input$"):
        channel_means(RGB.reshape(1, 1, 3), 20)


# ----------------------------------------------------------------------------- every caller
def _eval_model(avg, channels=3):
    return types.SimpleNamespace(input_vars=["x0"], meta=_meta(avg, channels), prediction_vars=["pred"],
                                 layer_specs=[], frames_per_clip=None)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_eval(name):
    from matconv_port.eval.model_io import describe_model

    avg, _, matlab = SHAPES[name]
    streams = describe_model(_eval_model(avg))
    assert streams.kind == "rgb"
    np.testing.assert_allclose(streams.norm.rgb_mean, matlab, rtol=1e-6)
    if name == "4x5x3":  # crop protocols subtract the full image pixel-wise (the original's bsxfun)
        np.testing.assert_array_equal(streams.norm.rgb_mean_image, np.asarray(avg).transpose(2, 0, 1))


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_train(name, tmp_path):
    from matconv_port.train.data import BatchAssembler

    avg, ours, _ = SHAPES[name]
    asm = BatchAssembler(str(tmp_path), "rgb", _meta(avg), {"rgb": "input"})
    try:
        assert asm.mean.dtype == np.float32
        np.testing.assert_allclose(asm.mean, ours, rtol=1e-6)
    finally:
        asm.close()


def _tiny_fused(avg):
    """input (3 ch) and input_flow (20 ch) through 1x1 convs, summed: a two-stream net."""
    from matconv_port.netspec import LayerSpec, NetSpec, ParamSpec

    conv = {"size": [1, 1, 3, 2], "pad": [0, 0, 0, 0], "stride": [1, 1], "hasBias": True}
    layers = [LayerSpec("c_spatial", "dagnn.Conv", ["input"], ["a"], ["wa", "ba"], dict(conv)),
              LayerSpec("c_temporal", "dagnn.Conv", ["input_flow"], ["b"], ["wb", "bb"], dict(conv, size=[1, 1, 20, 2])),
              LayerSpec("sum", "dagnn.Sum", ["a", "b"], ["pred"], [], {}),
              LayerSpec("loss", "dagnn.Loss", ["pred", "label"], ["objective"], [], {"loss": "softmaxlog"})]
    params = {"wa": ParamSpec("wa", np.ones((1, 1, 3, 2), np.float32)), "ba": ParamSpec("ba", np.zeros((1, 2), np.float32)),
              "wb": ParamSpec("wb", np.ones((1, 1, 20, 2), np.float32)), "bb": ParamSpec("bb", np.zeros((1, 2), np.float32))}
    spec = NetSpec(layers=layers, params=params, meta=_meta(avg, 23))
    spec.rebuild_vars()
    return spec


FLOW = np.linspace(100, 140, 20).astype(np.float32)


@pytest.mark.parametrize("name", ["1x1x23", "4x5x23", "23 (1-D)", "1x23", "23x1", "scalar", "empty"])
def test_every_shape_clip_model(name):
    from matconv_port.fusion import TwoStreamClipModel
    from matconv_port.network import MatConvNetModel

    both = np.concatenate([FLOW, RGB])
    avg = {"1x1x23": both.reshape(1, 1, 23), "4x5x23": both.reshape(1, 1, 23) + _PATTERN[:, :, None],
           "23 (1-D)": both, "1x23": both.reshape(1, 23), "23x1": both.reshape(23, 1),
           "scalar": np.float32(7.0), "empty": np.zeros((0, 0))}[name]
    want = {"scalar": np.full(23, 7.0), "empty": np.zeros(23)}.get(name, both)
    clip = TwoStreamClipModel(MatConvNetModel(_tiny_fused(avg)))
    np.testing.assert_allclose(clip.flow_mean.flatten().numpy(), want[:20], rtol=1e-6)
    np.testing.assert_allclose(clip.rgb_mean.flatten().numpy(), want[20:], rtol=1e-6)


@pytest.mark.parametrize("name", ["1x1x3", "4x5x3", "1x3", "3x1", "3 (1-D)", "empty"])
def test_every_shape_fusion_build(name):
    """cnn_ucf101_fusion.m l. 139-141: cat(3, mean(mean(flow avg)), mean(mean(rgb avg)))."""
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.train.archs import demo

    avg, ours, _ = SHAPES[name]
    a = demo(2, "rgb", seed=1, image_size=(16, 16), widths=(4, 6, 8, 8))
    b = demo(2, "flow", seed=2, image_size=(16, 16), widths=(4, 6, 8, 8))
    a.meta["normalization"]["averageImage"] = avg
    fused = build_fused_netspec(a, b, FusionOptions())
    got = np.asarray(fused.meta["normalization"]["averageImage"])
    assert got.dtype == np.float32 and got.shape == ((1, 1, 20) if name == "empty" else (1, 1, 23))
    np.testing.assert_allclose(got.ravel()[:20], 128.0)
    if name != "empty":
        np.testing.assert_allclose(got.ravel()[20:], ours, rtol=1e-6)


# ----------------------------------------------------------------------------- frames
def test_paths_and_reader(tmp_path):
    root = str(tmp_path)
    assert frames.rgb_path(root, "v", 7) == str(tmp_path / "jpegs_256" / "v" / "frame000007.jpg")
    assert frames.flow_path(root, "v", "v", 7) == str(tmp_path / "tvl1_flow" / "v" / "v" / "frame000007.jpg")
    with pytest.raises(ValueError, match="'w'"):
        frames.flow_path(root, "w", "v", 1)
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    for path, img in ((frames.rgb_path(root, "v", 1), bgr), (frames.flow_path(root, "u", "v", 1), bgr[:, :, 0])):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(path, img)
    decoded = cv2.imread(frames.rgb_path(root, "v", 1))
    reader = frames.FrameReader(root, cache=4)
    np.testing.assert_array_equal(reader.rgb("v", 1), decoded[:, :, ::-1])
    np.testing.assert_array_equal(frames.read_jpeg(frames.rgb_path(root, "v", 1), False), decoded[:, :, ::-1])
    assert reader.flow("u", "v", 1).shape == (6, 9)
    assert reader.read(frames.rgb_path(root, "v", 1), False) is reader.read(frames.rgb_path(root, "v", 1), False)
    assert frames.frame_size(root, "v") == (6, 9)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.root == root and clone.cache == 4 and not clone._store


def test_bad_frames_are_one_line(tmp_path):
    root = str(tmp_path)
    with pytest.raises(DataError, match=r"frame000001\.jpg: frame missing \(video nope\)$"):
        frames.frame_size(root, "nope")
    bad = tmp_path / "jpegs_256" / "v" / "frame000001.jpg"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"frame000001\.jpg: not a readable JPEG image$"):
        frames.FrameReader(root).rgb("v", 1)
