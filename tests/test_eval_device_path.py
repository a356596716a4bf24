"""The evaluation's device options and its GPU-shaped batch path, on CPU: ``--device``
refusals write nothing, ``--precision`` reaches ``load_model``, CUDA out-of-memory names
``--batch-clips``, and the batch normalisation (mirrors, ``255 - u``, means on the
device, no host index tensors) equals the plain reference computation."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from matconv_port.cli import main
from matconv_port.eval import runner
from matconv_port.eval.batches import ChunkResult, Normalization
from test_eval_support import StandInModel, make_dataset, patch_loader

CLASSES = ["c0", "c1", "c2", "c3"]
VIDEOS = {"v_c0_g01_c01": ("c0", 11), "v_c1_g01_c01": ("c1", 16)}


@pytest.fixture()
def data(tmp_path):
    return make_dataset(str(tmp_path / "data"), VIDEOS, CLASSES)


def _eval(data, out, *extra):
    return CliRunner().invoke(main, ["eval", "--model", "m.mat", "--data-root", data, "--out", str(out),
                                     "--no-progress", "--workers", "0", *extra])


@pytest.mark.parametrize("device,msg", [("cuda:7", "--device cuda:7"), ("tpu", "--device tpu"), ("nonsense", "not a device")])
def test_bad_device_one_line_nothing_written(monkeypatch, data, tmp_path, device, msg):
    if torch.cuda.is_available() and device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    patch_loader(monkeypatch, StandInModel("rgb"))
    r = _eval(data, tmp_path / "out", "--device", device)
    assert r.exit_code == 2 and msg in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "out").exists()


def test_precision_reaches_load_model_and_summary(monkeypatch, data, tmp_path):
    seen = {}
    model = StandInModel("rgb")
    import matconv_port

    monkeypatch.setattr(matconv_port, "load_model", lambda *a, **k: seen.update(k) or model)
    r = _eval(data, tmp_path / "out", "--precision", "tf32")
    assert r.exit_code == 0, r.output
    assert seen["precision"] == "tf32"
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["precision"] == "tf32" and s["world_size"] == 1
    r = _eval(data, tmp_path / "o2", "--precision", "fp8")
    assert r.exit_code == 2


def test_out_of_memory_names_batch_clips(monkeypatch, data, tmp_path):
    model = StandInModel("rgb")

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    model.forward_vars = oom
    patch_loader(monkeypatch, model)
    r = _eval(data, tmp_path / "out", "--batch-clips", "8")
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert len(line.splitlines()) == 1 and "--batch-clips" in line and "out of memory" in line
    assert "Traceback" not in r.output


def _reference(res: ChunkResult, norm: Normalization):
    """The previous implementation: index, mirror, 255 - u in the input dtype, then subtract."""
    out = []
    idx = list(res.base_index)
    for t, mean, image, is_flow in ((res.rgb, norm.rgb_mean, norm.rgb_mean_image, False),
                                    (res.flow, norm.flow_mean, norm.flow_mean_image, True)):
        clips = t[idx].clone()
        for j, f in enumerate(res.flips):
            if f:
                clips[j] = clips[j].flip(-1)
                if is_flow:
                    clips[j, :, 0::2] = 255 - clips[j, :, 0::2]
        clips = clips.float()
        if res.cropped and image is not None and image.shape[1:] == tuple(clips.shape[-2:]):
            m = torch.as_tensor(image)
        else:
            m = torch.as_tensor(mean)[:, None, None]
        out.append(clips - m)
    return out


@pytest.mark.parametrize("dtype,cropped", [(torch.uint8, False), (torch.float32, False), (torch.uint8, True)])
def test_normalized_equals_reference(dtype, cropped):
    g = torch.Generator().manual_seed(0)
    H, W = 6, 7
    rgb = torch.randint(0, 256, (3, 2, 3, H, W), generator=g).to(dtype)
    flow = torch.randint(0, 256, (3, 2, 4, H, W), generator=g).to(dtype)
    if dtype == torch.float32:  # resized frames: fractional values
        rgb = rgb + torch.rand(rgb.shape, generator=g)
        flow = flow + torch.rand(flow.shape, generator=g)
    rng = np.random.default_rng(1)
    norm = Normalization(rng.random(3, dtype=np.float32) * 100, rng.random(4, dtype=np.float32) * 100, (H, W),
                         (rng.random((3, H, W)) * 100).astype(np.float32), (rng.random((4, H, W)) * 100).astype(np.float32))
    res = ChunkResult(0, (0, 1, 2, 3, 4), rgb, flow, None, cropped, (0, 0, 1, 2, 2), (False, True, False, True, False))
    got = res.normalized(norm, "cpu")
    want = _reference(res, norm)
    for a, b in zip(got, want):
        assert a.dtype == torch.float32 and a.shape == (5, 2, a.shape[2], H, W)
        assert torch.equal(a, b)
    assert torch.equal(res.rgb, rgb)  # inputs untouched


def test_default_workers_follow_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert runner.default_workers(1) == 15
    assert runner.default_workers(2) == 7
    assert runner.default_workers(8) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert runner.default_workers(1) == 16
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert runner.default_workers(1) == 1


def test_batches_read_back_one_late_give_same_scores(monkeypatch, data, tmp_path):
    # many small batches (the read-back of batch k happens after batch k+1 is queued) vs one per video
    patch_loader(monkeypatch, StandInModel("fused"))
    a = runner.evaluate_split(runner.EvalOptions("m.mat", data, out_dir=str(tmp_path / "a"), workers=0, progress=False,
                                                 batch_clips=3), 1)
    b = runner.evaluate_split(runner.EvalOptions("m.mat", data, out_dir=str(tmp_path / "b"), workers=0, progress=False,
                                                 batch_clips=20), 1)
    assert a["top1"] == b["top1"]
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "scores.npz")["scores"],
                                  np.load(tmp_path / "b" / "scores.npz")["scores"])


def test_workers_fit_shared_memory(data):
    from matconv_port.eval.batches import VideoChunkDataset, make_chunks
    from matconv_port.eval.model_io import describe_model
    from matconv_port.eval.plan import get_protocol
    from matconv_port.eval.runner import PREFETCH, _fit_shared_memory, plan_split
    from matconv_port.eval.splits import read_split

    streams = describe_model(StandInModel("fused"))
    plans, _ = plan_split(read_split("ucf101", os.path.join(data, "splits"), 1), data, get_protocol("fusion-paper"),
                          "fused", 0, False)
    chunks = [c for i, p in enumerate(plans) for c in make_chunks(i, p, 20)]
    ds = VideoChunkDataset(data, plans, chunks, streams.norm)
    msgs = []
    assert _fit_shared_memory(ds, 4, msgs.append, free=1 << 40) == 4 and not msgs
    per_worker = (PREFETCH + 3) * ds.pool.slot_bytes
    assert _fit_shared_memory(ds, 4, msgs.append, free=int(2.5 * per_worker / 0.8)) == 2
    assert ds.pool.num_workers == 2 and "/dev/shm" in msgs[-1] and "using 2" in msgs[-1]
    assert _fit_shared_memory(ds, 4, msgs.append, free=per_worker // 2) == 0 and ds.pool is None
