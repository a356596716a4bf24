"""Flow encoding (clip +-20, linear to 0..255, 128 = no motion) and the flow methods' signs."""
from __future__ import annotations

import numpy as np
import pytest

from matconv_port.data.flow import FLOW_METHODS, create_flow, flow_to_gray, gray_to_flow
from matconv_port.data.video_io import output_size
from matconv_port.errors import DataError


def test_flow_to_gray_hand_values():
    # 255 * (x + 20) / 40, rounded half to even (cvRound), clipped
    x = np.array([0.0, 20.0, -20.0, 35.0, -100.0, 1.0, -1.0, 10.0, 0.1], np.float32)
    expected = [128, 255, 0, 255, 0, 134, 121, 191, 128]
    assert flow_to_gray(x).tolist() == expected
    assert flow_to_gray(np.array([np.nan], np.float32)).tolist() == [128]


def test_flow_to_gray_is_monotone_and_inverts():
    x = np.linspace(-25, 25, 1001, dtype=np.float32)
    g = flow_to_gray(x).astype(int)
    assert np.all(np.diff(g) >= 0)
    back = gray_to_flow(g)
    inside = np.abs(x) <= 20
    assert np.max(np.abs(back[inside] - x[inside])) <= 40 / 255 / 2 + 1e-4


def test_output_size_matches_released_ucf101_frames():
    assert output_size(320, 240) == (340, 256)  # UCF101 -> released 340 x 256
    assert output_size(400, 300, 256) == (340, 256)
    assert output_size(240, 320) == (256, 340)  # portrait: shorter side 256
    assert output_size(160, 120, None) == (160, 120)
    w, h = output_size(641, 361)
    assert w % 2 == 0 and h == 256


def _shifted_pair(dx: int, dy: int, h: int = 64, w: int = 80):
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, size=(h // 4 + 2, w // 4 + 2)).astype(np.uint8)
    import cv2

    big = cv2.resize(base, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
    a = big[h // 2: h // 2 + h, w // 2: w // 2 + w]
    # content moves by (+dx, +dy): frame b at (y, x) shows what a had at (y - dy, x - dx)
    b = big[h // 2 - dy: h // 2 - dy + h, w // 2 - dx: w // 2 - dx + w]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_flow_methods_signs(method):
    flow = create_flow(method)
    a, b = _shifted_pair(2, 0)
    f = flow(a, b)
    assert f.shape == (64, 80, 2) and f.dtype == np.float32
    c = f[16:-16, 16:-16]
    assert np.median(c[..., 0]) == pytest.approx(2.0, abs=0.3)
    assert np.median(c[..., 1]) == pytest.approx(0.0, abs=0.3)
    a, b = _shifted_pair(0, -3)
    c = flow(a, b)[16:-16, 16:-16]
    assert np.median(c[..., 1]) == pytest.approx(-3.0, abs=0.4)


def test_unknown_flow_method():
    with pytest.raises(DataError, match="unknown flow method"):
        create_flow("brox")
