"""The GPU path (``pytest -m gpu``; benchmarks/gpu_check.sh runs these on the H200).

On the device given by ``$MATCONV_PORT_GPU_TEST_DEVICE`` (default ``cuda``; ``cpu``
makes the same tests a CPU dry run, see tests/conftest.py):

* parity of every reference fixture in ``exact`` precision at the fp32 tolerances of
  tests/test_parity_reference.py (PyTorch's default cuDNN TF32 would fail it);
* the demo journey: ``prepare --synthetic`` (small), ``train rgb|flow|fusion`` (very
  short), ``eval``, all with ``--device``;
* ``bf16`` training (autocast forward, fp32 gradients, finite losses);
* the training loop's collectives under NCCL (and gloo) with a world size of 1 in
  this process, every tensor handed to ``all_reduce`` on the device; 2 processes on
  2 GPUs where they exist;
* pinned host batches and non-blocking host-to-device copies.

(Eval on CUDA against eval on CPU: tests/test_gpu_eval.py.)
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import gpu_test_device
from parity_utils import fixture_files, load, load_case, run_case, var_failures

pytestmark = pytest.mark.gpu

DEV = gpu_test_device()
FILES = fixture_files()
SIZE = (16, 16)
WIDTHS = (4, 6, 8, 8)


def _sync():
    if DEV.type == "cuda":
        torch.cuda.synchronize(DEV)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from matconv_port.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("syn")
    make_synthetic_dataset(str(root), num_classes=2, videos_per_class=4, frames=16, height=24, width=32, seed=3)
    return str(root)


def _net(stream="flow", seed=0):
    from matconv_port.network import MatConvNetModel
    from matconv_port.train.archs import demo

    return MatConvNetModel(demo(2, stream, dropout=0.5, seed=seed, image_size=SIZE, widths=WIDTHS))


def _opts(root, out, **kw):
    from matconv_port.train.loop import TrainOptions

    base = dict(kind="flow", data_root=root, out=str(out), learning_rate=[0.02], num_epochs=1, epoch_factor=2,
                batch_size=4, num_sub_batches=2, dropout=0.5, augmentation="multiScaleRegular", frames_per_clip=1,
                final_eval=False, progress=False, seed=7, device=str(DEV), validate=True, threads=1)
    base.update(kw)
    return TrainOptions(**base)


def _params(m):
    return {n: p.detach().float().cpu().clone() for n, p in m.named_matconvnet_params()}


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(p) for p in FILES])
@pytest.mark.parametrize("lrn_mode", ["fast", "exact"])
def test_parity_on_device_exact(path, lrn_mode):
    case = load_case(path)
    model = load(path, device=str(DEV), precision="exact", lrn_mode=lrn_mode)
    values = run_case(case, model)
    computed = [v for v in values.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    assert computed and all(v.device.type == DEV.type for v in computed)  # it ran on the device
    checked, failures = var_failures(case, model, values, lrn_mode)
    assert checked >= 1
    assert not failures, "; ".join(failures)


# ----------------------------------------------------------------------------- demo journey
def test_demo_journey_on_device(tmp_path):
    from click.testing import CliRunner

    from matconv_port import load_model
    from matconv_port.cli import main

    run = CliRunner()
    data, runs = tmp_path / "data", tmp_path / "runs"
    r = run.invoke(main, ["prepare", "--synthetic", str(data), "--num-classes", "2", "--videos-per-class", "3",
                          "--frames", "24", "--height", "56", "--width", "64", "--no-progress"])
    assert r.exit_code == 0, r.output
    fast = ["--epochs", "1", "--epoch-factor", "1", "--batch-size", "4", "--sub-batches", "2", "--no-final-eval",
            "--no-progress", "--device", str(DEV), "--threads", "2"]
    for kind in ("rgb", "flow"):
        r = run.invoke(main, ["train", kind, "--arch", "demo", "--data-root", str(data), "--out", str(runs / kind)] + fast)
        assert r.exit_code == 0, r.output
        assert f"device: {DEV}" in r.output
    r = run.invoke(main, ["train", "fusion", "--rgb", str(runs / "rgb" / "net-final.pt"), "--flow",
                          str(runs / "flow" / "net-final.pt"), "--data-root", str(data), "--out", str(runs / "fusion")]
                   + fast)
    assert r.exit_code == 0, r.output
    stats = json.loads((runs / "fusion" / "stats.json").read_text())
    assert all(math.isfinite(v) for k, v in stats["train"][0].items() if isinstance(v, float))
    m = load_model(str(runs / "fusion" / "net-final.pt"))
    assert "dagnn.Conv3D" in [l.type for l in m.layer_specs]
    out = tmp_path / "eval"
    r = run.invoke(main, ["eval", "--split", "1", "--model", str(runs / "fusion" / "net-final.pt"), "--data-root",
                          str(data), "--out", str(out), "--device", str(DEV), "--workers", "0", "--no-progress"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert s["num_videos"] >= 1 and 0 <= s["top1"] <= 1


# ----------------------------------------------------------------------------- bf16 training
def test_bf16_training_on_device(tiny_root, tmp_path):
    from matconv_port.train.loop import Trainer, forward_backward, objective_layers

    m = _net().to(DEV)
    m.train()
    inputs = {"input": torch.randn(4, 20, *SIZE, device=DEV), "label": torch.tensor([1.0, 2.0, 1.0, 2.0])}
    values, _, heads = forward_backward(m, inputs, 4, -1, objective_layers(m), precision="bf16")
    pred = values[m.layer_specs[objective_layers(m)[0]].inputs[0]]
    assert pred.dtype == torch.bfloat16 and pred.device.type == DEV.type
    g = m.param("conv1_1f").grad
    assert g.dtype == torch.float32 and bool(torch.isfinite(g).all())
    m = _net()
    before = _params(m)
    stats = Trainer(m, _opts(tiny_root, tmp_path, precision="bf16", epoch_factor=3), log=lambda s: None).fit()
    assert math.isfinite(stats["train"][0]["loss"]) and math.isfinite(stats["val"][0]["loss"])
    after = _params(m)
    assert all(bool(torch.isfinite(p).all()) for p in after.values())
    assert sum(not torch.equal(before[n], after[n]) for n in before) >= len(before) // 2


# ----------------------------------------------------------------------------- collectives
@pytest.mark.parametrize("backend", [pytest.param("nccl", marks=pytest.mark.nccl), "gloo"])
def test_collectives_world_size_1(backend, tiny_root, tmp_path, monkeypatch):
    """A single-process group: every tensor the loop hands to all_reduce (gradients,
    statistics) is on the device, and the run equals the run without a group."""
    import torch.distributed as dist

    from matconv_port.train.distributed import DistInfo, all_reduce_sum
    from matconv_port.train.loop import Trainer

    if not dist.is_available() or (backend == "gloo" and not dist.is_gloo_available()):
        pytest.skip(f"{backend} is not built into this torch")
    plain = _net()
    Trainer(plain, _opts(tiny_root, tmp_path / "plain"), log=lambda s: None, dist_info=DistInfo(device=DEV)).fit()

    seen = []
    real = dist.all_reduce

    def spy(t, *a, **k):
        seen.append(t.device)
        return real(t, *a, **k)

    monkeypatch.setattr(dist, "all_reduce", spy)
    kw = {"device_id": DEV} if backend == "nccl" else {}
    dist.init_process_group(backend, store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1, **kw)
    try:
        info = DistInfo(0, 1, 0, DEV, backend)
        assert info.active
        grouped = _net()
        Trainer(grouped, _opts(tiny_root, tmp_path / "grouped"), log=lambda s: None, dist_info=info).fit()
        if DEV.type == "cuda":
            with pytest.raises(RuntimeError, match="not on this process's device"):
                all_reduce_sum([torch.zeros(2)], info)  # a CPU tensor: refused before NCCL sees it
    finally:
        dist.destroy_process_group()
    assert seen and all(d.type == DEV.type for d in seen), seen
    pa, pb = _params(plain), _params(grouped)
    for n in pa:  # one process: the sum is the identity (cuDNN's backward may differ by rounding)
        torch.testing.assert_close(pb[n], pa[n], rtol=1e-5, atol=1e-7)
    sa = json.loads((tmp_path / "plain" / "stats.json").read_text())
    sb = json.loads((tmp_path / "grouped" / "stats.json").read_text())
    assert sb["train"][0]["loss"] == pytest.approx(sa["train"][0]["loss"], rel=1e-5)


TWO_GPU_SCRIPT = textwrap.dedent('''
    import sys, torch
    from matconv_port.network import MatConvNetModel
    from matconv_port.train.archs import demo
    from matconv_port.train.loop import TrainOptions, Trainer
    root, out, subs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    m = MatConvNetModel(demo(2, "flow", seed=0, image_size=(16, 16), widths=(4, 6, 8, 8)))
    o = TrainOptions(kind="flow", data_root=root, out=out, learning_rate=[0.02], num_epochs=1, epoch_factor=2,
                     batch_size=4, num_sub_batches=subs, augmentation="multiScaleRegular", frames_per_clip=1,
                     final_eval=False, progress=False, seed=5, device="cuda", validate=True, threads=1)
    Trainer(m, o, log=lambda s: None).fit()
''')


@pytest.mark.nccl
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="2-process NCCL training needs 2 GPUs")
def test_two_gpus_nccl_match_one_gpu(tiny_root, tmp_path):
    """torchrun --nproc_per_node 2 on 2 GPUs reaches one GPU's parameters (same
    sub-batches), up to the order of reduction: rtol 1e-4, atol 1e-6."""
    from matconv_port import load_model

    script = tmp_path / "run.py"
    script.write_text(TWO_GPU_SCRIPT)
    one = subprocess.run([sys.executable, str(script), tiny_root, str(tmp_path / "one"), "4"], capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), tiny_root, str(tmp_path / "two"), "2"], capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a = load_model(str(tmp_path / "one" / "net-final.pt"))
    b = load_model(str(tmp_path / "two" / "net-final.pt"))
    for (na, pa), (nb, pb) in zip(a.named_matconvnet_params(), b.named_matconvnet_params()):
        assert na == nb
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- pinned memory
def test_pinned_memory_and_non_blocking_copies(tiny_root, tmp_path):
    from matconv_port.train.data import BatchAssembler, to_device
    from matconv_port.train.loop import Trainer
    from matconv_port.train.sampling import ClipPlan

    cuda = DEV.type == "cuda"
    video = sorted(os.listdir(os.path.join(tiny_root, "jpegs_256")))[0]
    plans = [ClipPlan(video, 1, [1, 2], [], (0, 0, 32, 24), False, (24, 32))]
    asm = BatchAssembler(tiny_root, "rgb", {}, {"rgb": "input"}, threads=1, pin_memory=cuda)
    try:
        batch = asm.assemble(plans)
    finally:
        asm.close()
    assert all(v.is_pinned() == cuda for v in batch.inputs.values())
    moved = to_device(batch.inputs, DEV)
    total = moved["input"].double().sum()  # queued after the asynchronous copy on the same stream
    _sync()
    assert moved["input"].device.type == DEV.type
    torch.testing.assert_close(moved["input"].cpu(), batch.inputs["input"], rtol=0, atol=0)
    assert float(total) == pytest.approx(float(batch.inputs["input"].double().sum()), rel=1e-12)
    trainer = Trainer(_net(), _opts(tiny_root, tmp_path), log=lambda s: None)
    try:
        assert trainer.asm.pin_memory == cuda  # the loop pins only for a CUDA device
    finally:
        trainer.asm.close()
