"""DataLoader workers writing chunks into reused shared-memory slots
(:mod:`matconv_port.eval.slot_pool`): what the main process receives must be exactly
what an in-process run assembles, whether slots are released promptly, held (the
worker must then fall back to fresh buffers, never overwrite), or too small."""
from __future__ import annotations

import os
import pickle
from multiprocessing.reduction import ForkingPickler

import cv2
import numpy as np
import pytest
import torch
import torch.multiprocessing  # noqa: F401  (registers the tensor reductions with ForkingPickler)
from torch.utils.data import DataLoader

from matconv_port.eval.batches import (
    ChunkResult,
    Normalization,
    VideoChunkDataset,
    assemble_clip,
    collate_single,
    flow_path,
    make_chunks,
    read_jpeg,
    rgb_path,
)
from matconv_port.eval.plan import get_protocol, plan_video
from matconv_port.eval.slot_pool import SlotPool

H, W = 16, 20
NORM = Normalization(np.array([120.5, 110.25, 100.0], np.float32), np.linspace(100, 140, 20).astype(np.float32), (12, 12))


@pytest.fixture(scope="module")
def textured(tmp_path_factory):
    """Three videos of random-texture frames (mirrors and u inversion are visible)."""
    root = str(tmp_path_factory.mktemp("slots"))
    rng = np.random.default_rng(3)
    videos = [("v_A_g01_c01", 30), ("v_B_g01_c01", 24), ("v_C_g01_c01", 41)]
    for name, n in videos:
        for f in range(1, n + 1):
            p = rgb_path(root, name, f)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            cv2.imwrite(p, rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        for axis in "uv":
            for k in range(1, n):
                p = flow_path(root, axis, name, k)
                os.makedirs(os.path.dirname(p), exist_ok=True)
                cv2.imwrite(p, rng.integers(0, 256, (H, W), dtype=np.uint8))
    plans = [plan_video(get_protocol("fusion-paper"), name, 1, n, seed=0) for name, n in videos]
    chunks = [c for i, p in enumerate(plans) for c in make_chunks(i, p, 2)]
    return root, plans, chunks


def _expected(root, plans, res: ChunkResult):
    """Per clip of the chunk: assemble_clip's float32 arrays, read in this process."""
    plan = plans[res.video_index]
    out = []
    for c in res.clip_indices:
        out.append(assemble_clip(plan.clips[c], lambda f: read_jpeg(rgb_path(root, plan.video, f), False),
                                 lambda a, k: read_jpeg(flow_path(root, a, plan.video, k), True), NORM))
    return out


def _check(root, plans, res: ChunkResult, norm_out):
    rgb, flow = norm_out
    for j, (want_rgb, want_flow) in enumerate(_expected(root, plans, res)):
        np.testing.assert_array_equal(rgb[j].numpy(), want_rgb, err_msg=f"rgb, video {res.video_index}, clip {res.clip_indices[j]}")
        np.testing.assert_array_equal(flow[j].numpy(), want_flow, err_msg=f"flow, video {res.video_index}, clip {res.clip_indices[j]}")


def _loader(ds, workers=2, prefetch=2):
    return DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate_single, prefetch_factor=prefetch)


def test_released_slots_are_reused_and_results_exact(textured):
    root, plans, chunks = textured
    ds = VideoChunkDataset(root, plans, chunks, NORM)
    pool = ds.use_slot_pool(2, slots_per_worker=4)
    assert pool is not None and pool.slot_bytes == 5 * 23 * H * W  # one base (clip + its mirror) per chunk
    used = set()
    n = 0
    for res in _loader(ds):
        assert res.error is None
        assert res.slot is not None and res.pool is pool  # arrived by reference
        used.add(res.slot)
        _check(root, plans, res, res.normalized(NORM))
        res.release()
        assert res.rgb is None and res.slot is None
        n += 1
    assert n == len(chunks) > 2 * 4  # more chunks than slots: slots were reused
    assert used <= set(range(8)) and not pool.busy.any()


def test_held_results_are_never_overwritten(textured):
    """A consumer that keeps every result without releasing it: workers run out of
    slots and must allocate fresh buffers; every held result keeps its own data."""
    root, plans, chunks = textured
    ds = VideoChunkDataset(root, plans, chunks, NORM)
    ds.use_slot_pool(2, slots_per_worker=2)
    held = list(_loader(ds, prefetch=4))
    assert len(held) == len(chunks)
    assert sum(r.slot is not None for r in held) == 4  # two slots per worker, never given back
    for res in held:
        _check(root, plans, res, res.normalized(NORM))


def test_chunk_larger_than_slot_travels_as_itself(textured):
    """Slots big enough for the RGB part only: the flow tensor is a fresh buffer sent
    with the result, the RGB one comes from the slot."""
    root, plans, chunks = textured
    ds = VideoChunkDataset(root, plans, chunks, NORM)
    ds.pool = SlotPool(2, 3, 5 * 3 * H * W)
    for res in _loader(ds):
        assert res.slot is not None and res.pool.holds(res.rgb) and not res.pool.holds(res.flow)
        _check(root, plans, res, res.normalized(NORM))
        res.release()


def test_pickled_result_rebuilds_views_of_the_same_pool(textured):
    root, plans, chunks = textured
    ds = VideoChunkDataset(root, plans, chunks, NORM)
    pool = ds.use_slot_pool(1, slots_per_worker=2)
    slot = pool.acquire(0)
    rgb = pool.slot_tensor(slot, 0, (1, 5, 3, H, W), torch.uint8)
    rgb.copy_(torch.randint(0, 256, rgb.shape, dtype=torch.uint8))
    res = ChunkResult(0, (0, 1), rgb, None, None, False, (0, 0), (False, True), slot, pool)
    back = pickle.loads(ForkingPickler.dumps(res))
    assert back.pool is pool and back.slot == slot and back.flow is None
    assert back.rgb.data_ptr() == rgb.data_ptr() and torch.equal(back.rgb, rgb)
    back.release()
    assert pool.busy[slot] == 0


def test_no_pool_without_workers(textured):
    root, plans, chunks = textured
    ds = VideoChunkDataset(root, plans, chunks, NORM)
    assert ds.use_slot_pool(0, 4) is None
    res = ds[0]
    assert res.slot is None
    _check(root, plans, res, res.normalized(NORM))
    res.release()  # a no-op outside a pool
    assert res.rgb is not None
