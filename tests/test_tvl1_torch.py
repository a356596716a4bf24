"""TV-L1 in PyTorch (``--flow tvl1-torch``) against OpenCV's DualTVL1 and the true motion."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from matconv_port.data.example_videos import write_moving_square_video
from matconv_port.data.flow import to_gray
from matconv_port.data.tvl1_torch import (
    TVL1Params,
    _Warper,
    median_blur,
    pyramid_sizes,
    resize_linear,
    tvl1_flow,
)
from matconv_port.data.video_io import iter_frames
from matconv_port.errors import DataError
from test_prepare_flow import _shifted_pair

needs_contrib = pytest.mark.skipif(not hasattr(cv2, "optflow"), reason="needs opencv-contrib (cv2.optflow) as the reference")


@pytest.fixture(autouse=True)
def _one_thread():
    """Small frames: one thread is fastest (and immune to a loaded machine's thread contention)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _epe(a, b, border=0):
    e = np.sqrt(((a - b) ** 2).sum(-1))
    return float(e[border:e.shape[0] - border, border:e.shape[1] - border].mean())


def _opencv(a, b):
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)


def test_building_blocks_match_opencv():
    rng = np.random.default_rng(0)
    a = (rng.random((41, 57)) * 255).astype(np.float32)
    t = torch.from_numpy(a)[None]
    down = cv2.resize(a, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    ours = resize_linear(t, down.shape, (1.25, 1.25))[0].numpy()
    assert np.abs(down - ours).max() < 1e-3
    up = cv2.resize(a, (75, 52), interpolation=cv2.INTER_LINEAR)
    assert np.abs(up - resize_linear(t, (52, 75))[0].numpy()).max() < 1e-2
    a[:4, :4] = 7.0  # ties
    t = torch.from_numpy(a)[None]
    for k in (3, 5):  # the selection network is exact
        assert np.array_equal(cv2.medianBlur(a, k), median_blur(t, k)[0].numpy())
    u1 = (rng.standard_normal(a.shape) * 3).astype(np.float32)  # some samples fall outside: 0 border
    u2 = (rng.standard_normal(a.shape) * 3).astype(np.float32)
    xs, ys = np.meshgrid(np.arange(57, dtype=np.float32), np.arange(41, dtype=np.float32))
    ref = cv2.remap(a, xs + u1, ys + u2, cv2.INTER_CUBIC)
    got = _Warper(41, 57, torch.device("cpu"))(t[None], torch.from_numpy(u1)[None], torch.from_numpy(u2)[None])[0, 0]
    assert np.abs(ref - got.numpy()).max() < 0.02  # intensities 0..255
    # 256 x 340 -> OpenCV's level sizes: round(0.8 * size) each time, 5 levels
    assert pyramid_sizes(256, 340) == [(256, 340), (205, 272), (164, 218), (131, 174), (105, 139)]
    assert pyramid_sizes(20, 30) == [(20, 30), (16, 24)]


@needs_contrib
@pytest.mark.parametrize("dx,dy", [(2, 0), (3, -2), (-1, 4)])
def test_textured_translation_vs_opencv_and_truth(dx, dy):
    a, b = _shifted_pair(dx, dy)
    ref = _opencv(a, b)
    ours = tvl1_flow(a, b)[0].numpy()
    assert ours.shape == (64, 80, 2) and ours.dtype == np.float32
    assert _epe(ours, ref) <= 0.5  # the bound; observed: < 0.03 px
    truth = np.zeros_like(ref)
    truth[..., 0], truth[..., 1] = dx, dy
    assert _epe(ours, truth, 8) <= _epe(ref, truth, 8) + 0.1


@needs_contrib
def test_frames_of_the_suite_videos_vs_opencv(tmp_path):
    path = write_moving_square_video(tmp_path / "sq.avi", velocity=(3.0, 1.0), frames=3)
    grays = [to_gray(f) for f in iter_frames(path, 64)]
    ours = tvl1_flow(np.stack(grays[:-1]), np.stack(grays[1:])).numpy()
    for k in range(len(grays) - 1):
        assert _epe(ours[k], _opencv(grays[k], grays[k + 1])) <= 0.5


def test_batch_equals_pairs_alone():
    """Pairs that converge at different iterations: each gets its own count, as alone."""
    pairs = [_shifted_pair(4, -3), _shifted_pair(0, 0)]
    a = np.stack([p[0] for p in pairs])
    b = np.stack([p[1] for p in pairs])
    together = tvl1_flow(a, b).numpy()
    for k, (x, y) in enumerate(pairs):
        alone = tvl1_flow(x, y)[0].numpy()
        assert np.abs(together[k] - alone).max() < 1e-4


def test_bad_inputs():
    with pytest.raises(DataError, match="different shapes"):
        tvl1_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 9), np.uint8))
    with pytest.raises(DataError, match="gamma"):
        tvl1_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), TVL1Params(gamma=0.1))


GPU_TEST_DEVICE_ENV = "MATCONV_PORT_GPU_TEST_DEVICE"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() and os.environ.get(GPU_TEST_DEVICE_ENV) != "cpu",
                    reason="no CUDA device (MATCONV_PORT_GPU_TEST_DEVICE=cpu runs it on CPU as a dry run)")
def test_cpu_and_gpu_agree():
    device = os.environ.get(GPU_TEST_DEVICE_ENV) or "cuda"
    a, b = _shifted_pair(3, -2)
    c, d = _shifted_pair(-1, 2)
    cpu = tvl1_flow(np.stack([a, c]), np.stack([b, d])).numpy()
    gpu = tvl1_flow(np.stack([a, c]), np.stack([b, d]), device=device).cpu().numpy()
    for k in range(2):
        assert _epe(cpu[k], gpu[k]) <= 0.05
