"""Real MatConvNet models saved by MATLAB users (third-party files, read in place
from ../shared/real_matconvnet_models/, never copied): each converts and runs, or is
refused by name when its inference path uses a layer type that is not MatConvNet's;
trained models still do their job after conversion."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import matconv_port
from matconv_port.errors import UnknownLayerError
from parity_utils import REAL_MODELS, REAL_REFUSED as REFUSED

pytestmark = pytest.mark.skipif(not os.path.isdir(REAL_MODELS), reason=f"{REAL_MODELS} not present")

ALL = sorted(f for f in os.listdir(REAL_MODELS) if f.endswith(".mat")) if os.path.isdir(REAL_MODELS) else []


def _path(name: str) -> str:
    return os.path.join(REAL_MODELS, name)


def _image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth synthetic grey image in [0, 1] with a few flat discs (edges)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    im = 0.5 + 0.3 * np.sin(6 * x + 3 * y) * np.cos(4 * y)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, 20)
        im[(x * max(h, w) - cx) ** 2 + (y * max(h, w) - cy) ** 2 < r * r] = rng.uniform(0.1, 0.9)
    return im.astype(np.float32)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_all_fourteen_files_are_seen():
    assert len(ALL) == 14


@pytest.mark.parametrize("name", ALL)
def test_converts_and_runs_or_is_refused_by_name(name, tmp_path):
    from matconv_port.convert import convert_file
    from matconv_port.shapecheck import default_input_shapes

    out = tmp_path / "net.pt"
    if name in REFUSED:
        with pytest.raises(UnknownLayerError) as info:
            convert_file(_path(name), str(out), log=lambda m: None)
        assert set(info.value.unknown) == REFUSED[name]
        for t in REFUSED[name]:
            assert t in str(info.value)
        assert "--outputs" in str(info.value) and "--custom-layers" in str(info.value)
        assert not out.exists()
        return
    convert_file(_path(name), str(out), log=lambda m: None)
    model = matconv_port.load_model(str(out))
    direct = matconv_port.load_model(_path(name))  # the converted file holds exactly the source's params
    assert list(model.param_keys) == list(direct.param_keys)
    for p in direct.param_keys:
        assert torch.equal(model.param(p), direct.param(p)), p
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
    from matconv_port.shapecheck import meta_input_size

    # the file's own input size, else a small one (fully convolutional nets)
    shapes = default_input_shapes(model, None if meta_input_size(model.meta) else [32, 32])
    torch.manual_seed(0)
    inputs = {v: torch.rand(s) for v, s in shapes.items()}
    values = model.forward_vars(inputs)
    for v in model.prediction_vars:
        assert v in values and torch.isfinite(values[v]).all()


def test_refusal_through_cli_exits_2_with_one_line(tmp_path):
    name = "lood339_player_detection__net_stage_1_dilation.mat"
    out = tmp_path / "x.pt"
    proc = subprocess.run([sys.executable, "-c", "from matconv_port.cli import main; main()",
                           "convert", _path(name), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "dpool" in lines[0] and "pool_m1" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("name,var,kind", [
    ("cszn_DnCNN__DnCNN-epoch-50.mat", "prediction", "clean"),     # DagNN: input + residual branch
    ("cszn_DnCNN__sigma25_Bnorm.mat", "x48", "residual"),          # SimpleNN: predicts the noise
])
def test_denoisers_still_denoise(name, var, kind):
    clean = _image(96, 96, 0)
    noisy = clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape).astype(np.float32)
    model = matconv_port.load_model(_path(name))
    inp = model.input_vars[0]
    out = model.forward_vars({inp: torch.from_numpy(noisy)[None, None]})[var][0, 0].detach().numpy()
    denoised = out if kind == "clean" else noisy - out
    assert _psnr(denoised, clean) > _psnr(noisy, clean) + 8.0


def test_ffdnet_denoises_at_the_noise_level_it_is_given():
    """FFDNet (SubP down, the noise level map concatenated, SubP up) run as its
    Demo_Test_FFDNet_gray.m runs it: the noise level is the net's second input ``sigmas``."""
    clean = _image(96, 96, 0)
    noisy = clean + np.random.default_rng(1).normal(0, 25 / 255, clean.shape).astype(np.float32)
    model = matconv_port.load_model(_path("cszn_FFDNet__FFDNet_grayscale_retrained.mat"))
    assert model.input_vars == ["x0", "sigmas"]

    def run(level):
        with torch.no_grad():
            y = model.forward_vars({"x0": torch.from_numpy(noisy)[None, None], "sigmas": torch.tensor([level])})
        return y["x32"][0, 0].numpy()

    assert _psnr(run(25 / 255), clean) > _psnr(noisy, clean) + 8.0
    # the level matters: told there is almost no noise, it leaves most of it
    assert _psnr(run(25 / 255), clean) > _psnr(run(2 / 255), clean) + 4.0


@pytest.mark.parametrize("name,inp,var", [
    ("phoenix104104_LapSRN__LapSRN_x2.mat", "LR", "level1_output"),
    ("phoenix104104_LapSRN__MSLapSRN_D5R8.mat", "x2SR_LR", "x2SR_2x_output"),
])
def test_super_resolution_beats_bicubic(name, inp, var):
    import cv2

    hr = _image(128, 128, 3)
    lr = cv2.resize(hr, (64, 64), interpolation=cv2.INTER_AREA)
    model = matconv_port.load_model(_path(name))
    sr = model.forward_vars({inp: torch.from_numpy(lr)[None, None]}, outputs=[var])[var][0, 0].detach().numpy()
    assert sr.shape == hr.shape
    bicubic = cv2.resize(lr, (128, 128), interpolation=cv2.INTER_CUBIC)
    assert _psnr(np.clip(sr, 0, 1), hr) > _psnr(bicubic, hr) + 0.5


def test_depth_super_resolution_x16_beats_bicubic_and_finds_the_depth_edges():
    """Sunbaoli/DSR x16 (dagnn.Slice of DSR: its edge branch thresholded into a logical map,
    concatenated with the depth and guidance inputs), run as DSR's code/test/test_classSR.m
    does: a depth map sampled 1 in 16 and upsampled bicubically, guidance the high-passed
    image normalised to [0, 1]; the refined depth is ``input_d - x13``."""
    import cv2

    rng = np.random.default_rng(0)
    h = w = 128
    y, x = np.mgrid[0:h, 0:w]
    depth = 0.3 + 0.2 * x / w
    discs = []
    for _ in range(5):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(15, 35)
        depth[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0.1, 0.9)
    depth = depth.astype(np.float32)
    up = cv2.resize(depth[8::16, 8::16], (w, h), interpolation=cv2.INTER_CUBIC)
    guide = depth - cv2.blur(depth, (3, 3), borderType=cv2.BORDER_REFLECT)
    guide = ((guide - guide.min()) / (guide.max() - guide.min())).astype(np.float32)
    model = matconv_port.load_model(_path("Sunbaoli_DSR__x16_net-epoch-108.mat"), warn=lambda m: None)
    assert model.semantics == "stock"  # its convs are dilated
    with torch.no_grad():
        v = model.forward_vars({"input_d": torch.from_numpy(up)[None, None], "input_g": torch.from_numpy(guide)[None, None]})
    refined = up - v["x13"][0, 0].numpy()

    def rmse(a):
        return float(np.sqrt(np.mean((a - depth) ** 2)))

    assert rmse(refined) < 0.8 * rmse(up)
    edge = v["edge"][0, 0].numpy()
    assert set(np.unique(edge)) <= {0.0, 1.0} and edge.sum() > 100
    # the edge map lies on the depth discontinuities: most edge pixels within 2 px of one
    jumps = (np.abs(np.diff(depth, axis=0, prepend=depth[:1])) + np.abs(np.diff(depth, axis=1, prepend=depth[:, :1]))) > 0.05
    near = cv2.dilate(jumps.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert near[edge > 0].mean() > 0.7 and near.mean() < 0.5


def test_shared_parameters_stay_one_tensor(tmp_path):
    from matconv_port.convert import convert_file

    out = convert_file(_path("phoenix104104_LapSRN__MSLapSRN_D5R8.mat"), str(tmp_path / "ms.pt"), log=lambda m: None)
    payload = torch.load(out, weights_only=True)
    assert len(payload["params"]) == 17
    model = matconv_port.load_model(out)
    users: dict[str, int] = {}
    for l in model.layer_specs:
        for p in l.params:
            users[p] = users.get(p, 0) + 1
    assert len(model.params) == 17 and all(n > 1 for n in users.values())


def test_outputs_option_cuts_before_a_custom_layer(tmp_path):
    from matconv_port.convert import convert_file

    name = "lood339_player_detection__net_stage_1_dilation.mat"
    spec = matconv_port.load_netspec_any(_path(name))
    first_custom = next(i for i, l in enumerate(spec.layers) if l.type == "dpool")
    keep = spec.layers[first_custom - 1].outputs[0]
    out = convert_file(_path(name), str(tmp_path / "cut.pt"), outputs=[keep], log=lambda m: None)
    model = matconv_port.load_model(out)
    assert all(l.type != "dpool" for l in model.layer_specs)
    assert keep in model.forward_vars({"x0": torch.rand(1, 3, 32, 14)})
