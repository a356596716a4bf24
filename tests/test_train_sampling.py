"""Training sampling and augmentation rules of the original getBatch functions."""
import numpy as np
import pytest

from matconv_port.errors import DataError
from matconv_port.train.sampling import (
    border_transforms,
    flow_stack_frames,
    plan_sub_batch,
    temporal_stride_random_frames,
)


def test_temporal_stride_random_long_video():
    rng = np.random.default_rng(0)
    seen_starts = set()
    for _ in range(200):
        fs = temporal_stride_random_frames(300, 10, rng=rng)
        assert len(fs) == 5 and np.all(np.diff(fs) == 10)
        assert (fs[0] - 6) % 10 == 0 and fs[-1] <= 295
        seen_starts.add(fs[0])
    # s = randi(len-5) >= 1: the window at the first candidate (frame 6) is never used
    assert 6 not in seen_starts and 16 in seen_starts


def test_temporal_stride_random_padding_short_video():
    # n=32, stride 15: candidates 6, 21 -> the original padding loop fills to 5
    fs = temporal_stride_random_frames(32, 15, rng=np.random.default_rng(0))
    assert len(fs) == 5 and fs[:2] == [6, 21] and all(6 <= f <= 27 for f in fs)
    with pytest.raises(DataError):
        temporal_stride_random_frames(10, 5)


def test_flow_stack():
    assert flow_stack_frames(6) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10]


def test_border_transforms_are_border_biased():
    tfs = border_transforms()
    assert tfs.shape == (3, 1600)
    lo = (tfs[0] <= 0.25) & (tfs[1] <= 0.25)
    hi = (tfs[0] >= 0.75) & (tfs[1] >= 0.75)
    assert np.all(lo | hi) and lo.sum() == hi.sum() == 800
    assert tfs[2].sum() == 800  # half flipped


def test_plans_crop_jitter_and_batch_quirks():
    rng = np.random.default_rng(1)
    vids = [(f"v{i}", 1, 40) for i in range(6)]
    plans = plan_sub_batch("fusion", vids, rng, out_size=(224, 224), frame_hw=(256, 340), augmentation="noCtr")
    for p in plans:
        x, y, w, h = p.crop
        assert 168 <= w <= 280 and 168 <= h <= 256  # 0.75..1.25 of 224, clipped to the frame
        assert 0 <= x and x + w <= 340 and 0 <= y and y + h <= 256
        assert len(p.rgb_frames) == 5 and len(p.flow_frames) == 5
    # one temporal stride per sub-batch
    strides = {tuple(np.diff(p.rgb_frames)) for p in plans if len(set(np.diff(p.rgb_frames))) == 1}
    assert len({s[0] for s in strides}) <= 1
    # borders25 (rgb): every video of the sub-batch gets the same transformation
    many = [(f"v{i}", 1, 40) for i in range(30)]
    plans = plan_sub_batch("rgb", many, np.random.default_rng(2), out_size=(224, 224), frame_hw=(256, 340),
                           augmentation="borders25")
    assert len({p.flip for p in plans}) == 1


def test_flip_inverts_u(tmp_path):
    from matconv_port.data.synthetic import make_synthetic_dataset
    from matconv_port.train.data import FrameReader, load_clip
    from matconv_port.train.sampling import ClipPlan

    make_synthetic_dataset(str(tmp_path), num_classes=1, videos_per_class=2, frames=12, height=16, width=20)
    video = sorted(p.name for p in (tmp_path / "jpegs_256").iterdir())[0]
    reader = FrameReader(str(tmp_path))
    base = ClipPlan(video, 1, [6], [flow_stack_frames(6)], (0, 0, 20, 16), False, (16, 20))
    flip = ClipPlan(video, 1, [6], [flow_stack_frames(6)], (0, 0, 20, 16), True, (16, 20))
    a = load_clip(reader, base, "fusion")[0]
    b = load_clip(reader, flip, "fusion")[0]
    np.testing.assert_array_equal(b[0::2][:10], 255 - a[0::2][:10, :, ::-1])  # u channels
    np.testing.assert_array_equal(b[1:20:2], a[1:20:2, :, ::-1])  # v channels
    np.testing.assert_array_equal(b[20:], a[20:, :, ::-1])  # RGB
