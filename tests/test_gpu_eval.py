"""Evaluation on the GPU (``pytest -m gpu``): the same scores and predictions as on CPU,
and the pinned-memory / non-blocking / side-stream copy path. Skipped with a reason where CUDA is
missing, unless ``MATCONV_PORT_GPU_TEST_DEVICE=cpu`` asks for the CPU dry run of the
same code (then the device is the CPU and the pinning checks are skipped).

Tolerance: in ``exact`` mode (TF32 off) the scores on the device may differ from the
CPU's only by fp32 summation order: max abs difference <= 1e-5 x max |CPU score|, and
the same top-1 class per video; ``tf32`` is held to 1e-2 relative (its 10-bit
mantissa) and the same top-1 class."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from matconv_port.cli import main
from test_eval_support import make_dataset

ENV = "MATCONV_PORT_GPU_TEST_DEVICE"
DRY_CPU = os.environ.get(ENV, "") == "cpu"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available() and not DRY_CPU,
                       reason=f"no CUDA device (set {ENV}=cpu for the CPU dry run; benchmarks/gpu_check.sh on a GPU)"),
]
DEVICE = os.environ.get(ENV) or "cuda"
CLASSES = ["c0", "c1", "c2", "c3"]
VIDEOS = {"v_c0_g01_c01": ("c0", 70), "v_c1_g01_c01": ("c1", 90)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.network import MatConvNetModel
    from matconv_port.serialization import save_converted
    from matconv_port.train.archs import vgg16

    tmp = tmp_path_factory.mktemp("gpu_eval")
    root = make_dataset(str(tmp / "data"), VIDEOS, CLASSES, size=(32, 40))
    towers = [vgg16(len(CLASSES), stream, CLASSES, seed=seed, init="he32", layout="paper", image_size=(24, 24),
                    widths=(8, 8, 16, 16, 16), fc_width=32, fc6_size=1) for stream, seed in (("rgb", 3), ("flow", 20))]
    model = str(tmp / "fused.pt")
    save_converted(MatConvNetModel(build_fused_netspec(towers[0], towers[1], FusionOptions(frames=5))), model)
    return tmp, root, model


def _eval(root, model, out, device, precision="exact"):
    r = CliRunner().invoke(main, ["eval", "--model", model, "--data-root", root, "--out", str(out), "--device", device,
                                  "--precision", precision, "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    return json.loads((out / "summary.json").read_text()), np.load(out / "scores.npz")


def test_eval_on_device_equals_cpu(setup):
    tmp, root, model = setup
    s_cpu, cpu = _eval(root, model, tmp / "cpu", "cpu")
    for precision, rel in (("exact", 1e-5), ("tf32", 1e-2)):
        s_dev, dev = _eval(root, model, tmp / f"dev_{precision}", DEVICE, precision)
        assert s_dev["device"].startswith(DEVICE.split(":")[0]) and s_dev["precision"] == precision
        assert list(dev["videos"]) == list(cpu["videos"])
        scale = float(np.abs(cpu["scores"]).max())
        err = float(np.abs(dev["scores"] - cpu["scores"]).max())
        assert err <= rel * scale, f"{precision}: max abs diff {err:.3g} vs {rel:g} x {scale:.3g}"
        assert (dev["video_scores"].argmax(1) == cpu["video_scores"].argmax(1)).all()
        assert s_dev["top1"] == s_cpu["top1"]


def test_pinned_non_blocking_path_matches_cpu():
    from matconv_port.eval.batches import ChunkResult, Normalization
    from matconv_port.eval.runner import _HostScores, _Uploader

    device = torch.device(DEVICE)
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (2, 5, 3, 16, 20), generator=g, dtype=torch.uint8)
    flow = torch.randint(0, 256, (2, 5, 20, 16, 20), generator=g, dtype=torch.uint8)
    norm = Normalization(np.array([10, 20, 30], np.float32), np.arange(20, dtype=np.float32) + 118.5, (16, 16))
    meta = (0, (0, 1, 2, 3), None, False, (0, 0, 1, 1), (False, True, False, True))
    want = ChunkResult(meta[0], meta[1], rgb.clone(), flow.clone(), *meta[2:]).normalized(norm, "cpu")
    res = ChunkResult(meta[0], meta[1], rgb.clone(), flow.clone(), *meta[2:])
    if device.type == "cuda":
        res = res.pin_memory()  # what DataLoader(pin_memory=True) calls
        assert res.rgb.is_pinned() and res.flow.is_pinned()
    up = ChunkResult(meta[0], meta[1], res.rgb.clone(), res.flow.clone(), *meta[2:])
    if device.type == "cuda":
        up = up.pin_memory()
    _Uploader(device)(up, device)  # side-stream copy (CUDA), nothing on CPU
    assert up.rgb.device.type == device.type
    got = res.normalized(norm, device)
    for a, b, c in zip(got, want, up.normalized(norm, device)):
        assert torch.equal(c.cpu(), b)
        assert a.device.type == device.type
        assert torch.equal(a.cpu(), b)  # integers 0..255 minus a float32 mean: exact on both
    scores = torch.randn(2, 4, 101, device=device)
    host = _HostScores(scores)
    if device.type == "cuda":
        assert host.host.is_pinned() and host.event is not None
    np.testing.assert_array_equal(host.numpy(), scores.cpu().numpy())
