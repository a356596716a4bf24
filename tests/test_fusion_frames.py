"""Fused nets with other frame counts, several videos per batch and score maps,
checked against an independent plain-PyTorch implementation of the paper's fused
VGG-16 (two towers of F.conv2d/F.max_pool2d, torch.cat, F.conv3d, F.max_pool3d)
written here from the stream weights, with the Conv3D filter MatConvNet computed
(stored in the reference file)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from matconv_port import load_model
from matconv_port.cli import main
from matconv_port.converters.matfile import read_mat, write_mat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "fixtures", "reference", "fusion_twostream_vgg16narrow_a.mat")
VGG_BLOCKS = [2, 2, 3, 3, 3]


@pytest.fixture(scope="module")
def raw():
    return read_mat(REFERENCE)


@pytest.fixture(scope="module")
def streams(raw, tmp_path_factory):
    folder = tmp_path_factory.mktemp("streams")
    a, b = str(folder / "rgb.mat"), str(folder / "flow.mat")
    write_mat(a, {"net": raw["netA_spatial_stream"]})
    write_mat(b, {"net": raw["netB_temporal_stream"]})
    return a, b


def _params(net: dict) -> dict[str, torch.Tensor]:
    return {p["name"]: torch.from_numpy(np.asarray(p["value"], np.float32)).double() for p in net["params"]}


def _w2d(f: torch.Tensor) -> torch.Tensor:  # H x W x Cin x Cout -> Cout x Cin x H x W
    return f.reshape(f.shape + (1,) * (4 - f.dim())).permute(3, 2, 0, 1)


def _tower_to_relu5_3(x: torch.Tensor, p: dict) -> torch.Tensor:
    for b, n in enumerate(VGG_BLOCKS, start=1):
        for k in range(1, n + 1):
            x = F.relu(F.conv2d(x, _w2d(p[f"conv{b}_{k}f"]), p[f"conv{b}_{k}b"].reshape(-1), padding=1))
        if b < 5:
            x = F.max_pool2d(x, 2, 2)
    return x


def _head(x: torch.Tensor, p: dict) -> torch.Tensor:
    x = F.relu(F.conv2d(x, _w2d(p["fc6f"]), p["fc6b"].reshape(-1)))
    x = F.relu(F.conv2d(x, _w2d(p["fc7f"]), p["fc7b"].reshape(-1)))
    return F.conv2d(x, _w2d(p["layer38f"]), p["layer38b"].reshape(-1))


def _pool3d(x: torch.Tensor, videos: int, frames: int) -> torch.Tensor:
    n, c, h, w = x.shape
    v = x.reshape(videos, frames, c, h, w).transpose(1, 2)
    y = F.max_pool3d(v, (frames, 2, 2), (2, 2, 2))
    return y.transpose(1, 2).reshape(-1, c, y.shape[3], y.shape[4])


def plain_fused(raw: dict, rgb: torch.Tensor, flow: torch.Tensor, videos: int, frames: int) -> dict:
    """The fused net (conv fusion at relu5_3, Conv3D + 3D pooling) in plain PyTorch, float64."""
    pa, pb = _params(raw["netA_spatial_stream"]), _params(raw["netB_temporal_stream"])
    fused = {p["name"]: p["value"] for p in raw["net"]["params"]}
    k3 = torch.from_numpy(np.asarray(fused["conv3Df"], np.float32)).double().permute(4, 3, 2, 0, 1)
    b3 = torch.from_numpy(np.asarray(fused["conv3Db"], np.float32)).double().reshape(-1)
    xa = _tower_to_relu5_3(rgb.double(), pa)
    xb = _tower_to_relu5_3(flow.double(), pb)
    cat = torch.cat([xa, xb], 1)
    n, c, h, w = cat.shape
    v = cat.reshape(videos, frames, c, h, w).transpose(1, 2)
    y = F.relu(F.conv3d(v, k3, b3, padding=1))
    relu3d = y.transpose(1, 2).reshape(n, -1, h, w)
    return {"relu3D5": relu3d,
            "x38_spatial": _head(_pool3d(relu3d, videos, frames), pa),
            "x38_temporal": _head(_pool3d(xb, videos, frames), pb)}


_FUSED: dict = {}


def _fuse(streams, tmp_path, frames: int):
    """The net ``matconv-port fuse --frames T`` writes (built once per T)."""
    if frames not in _FUSED:
        out = str(tmp_path / f"fused_T{frames}.pt")
        result = CliRunner().invoke(main, ["fuse", *streams, "-o", out, "--frames", str(frames)])
        assert result.exit_code == 0, result.output
        _FUSED[frames] = load_model(out)
    return _FUSED[frames]


def _close(ours: torch.Tensor, ref: torch.Tensor, rtol: float = 1e-5) -> None:
    assert tuple(ours.shape) == tuple(ref.shape)
    err = (ours.double() - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
    assert err <= rtol, err


@pytest.mark.parametrize("frames,videos,size", [(3, 3, 40), (5, 2, 72), (7, 1, 72), (1, 4, 40)])
def test_frames_videos_and_score_maps_match_plain_pytorch(raw, streams, tmp_path, frames, videos, size):
    model = _fuse(streams, tmp_path, frames)
    assert model.frames_per_clip == frames
    pool = next(l for l in model.layer_specs if l.name == "pool3D5_spatial")
    assert [float(x) for x in np.ravel(pool.block["poolSize"])] == [2.0, 2.0, float(frames)]
    g = torch.Generator().manual_seed(frames * 100 + size)
    rgb = torch.randn(videos * frames, 3, size, size, generator=g) * 50
    flow = torch.randn(videos * frames, 20, size, size, generator=g) * 20
    values = model.forward_vars({"input": rgb, "input_flow": flow}, num_videos=videos)
    ref = plain_fused(raw, rgb, flow, videos, frames)
    for name, r in ref.items():
        _close(values[name], r)
    if size > 40:  # whole frames larger than the training size give class-score maps
        assert values["x38_spatial"].shape[2] > 1 and values["x38_spatial"].shape[3] > 1
    assert values["x38_spatial"].shape[0] == videos  # the temporal pool leaves one frame per video


def test_each_video_is_independent_of_the_batch(streams, tmp_path):
    frames, videos = 3, 3
    model = _fuse(streams, tmp_path, frames)
    g = torch.Generator().manual_seed(1)
    rgb = torch.randn(videos * frames, 3, 40, 40, generator=g) * 50
    flow = torch.randn(videos * frames, 20, 40, 40, generator=g) * 20
    together = model.forward_vars({"input": rgb, "input_flow": flow})  # videos from frames_per_clip
    for v in range(videos):
        sl = slice(v * frames, (v + 1) * frames)
        alone = model.forward_vars({"input": rgb[sl], "input_flow": flow[sl]}, num_videos=1)
        for name in ("relu3D5", "x38_spatial", "x38_temporal"):
            a = together[name][v * (together[name].shape[0] // videos):(v + 1) * (together[name].shape[0] // videos)]
            torch.testing.assert_close(a, alone[name], rtol=1e-5, atol=1e-5)


def test_frame_order_matters(streams, tmp_path):
    """The Conv3D sees frames in the item order (frames fastest): reversing the frames
    of one video changes its scores, reordering videos only permutes them."""
    frames, videos = 3, 2
    model = _fuse(streams, tmp_path, frames)
    g = torch.Generator().manual_seed(2)
    rgb = torch.randn(videos * frames, 3, 40, 40, generator=g) * 50
    flow = torch.randn(videos * frames, 20, 40, 40, generator=g) * 20
    base = model.forward_vars({"input": rgb, "input_flow": flow}, num_videos=videos)["x38_spatial"]
    swap = torch.cat([torch.arange(frames, 2 * frames), torch.arange(0, frames)])
    swapped = model.forward_vars({"input": rgb[swap], "input_flow": flow[swap]}, num_videos=videos)["x38_spatial"]
    torch.testing.assert_close(swapped, base[[1, 0]])
