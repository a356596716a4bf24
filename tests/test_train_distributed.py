"""torchrun with 2 CPU processes (gloo) reaches the parameters of one process running
the same sub-batches (MatConvNet's interleaving), up to float summation order
(tolerance: rtol 1e-4, atol 1e-6 on every param; statistics rtol 1e-6). The
reduction helper refuses tensors that are not on the process's device, on CPU too,
and the device is checked before anything is written."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent('''
    import sys, torch
    from matconv_port.network import MatConvNetModel
    from matconv_port.train.archs import demo
    from matconv_port.train.loop import TrainOptions, Trainer
    root, out, subs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    m = MatConvNetModel(demo(2, "flow", seed=0, image_size=(16, 16), widths=(4, 6, 8, 8)))
    o = TrainOptions(kind="flow", data_root=root, out=out, learning_rate=[0.02], num_epochs=1, epoch_factor=2,
                     batch_size=4, num_sub_batches=subs, augmentation="multiScaleRegular", frames_per_clip=1,
                     final_eval=False, progress=False, seed=5, device="cpu", validate=True, threads=1)
    Trainer(m, o, log=lambda s: None).fit()
''')


def test_two_process_gloo_matches_one_process(tmp_path):
    from matconv_port import load_model
    from matconv_port.data.synthetic import make_synthetic_dataset

    root = tmp_path / "data"
    make_synthetic_dataset(str(root), num_classes=2, videos_per_class=4, frames=16, height=24, width=32, seed=3)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, str(script), str(root), str(tmp_path / "one"), "4"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(root), str(tmp_path / "two"), "2"], env=env,
                         capture_output=True, text=True, timeout=300)
    if two.returncode != 0 and "gloo" in two.stderr.lower() and "unavailable" in two.stderr.lower():
        pytest.skip("gloo backend unavailable here")
    assert two.returncode == 0, two.stderr[-2000:]
    a = load_model(str(tmp_path / "one" / "net-final.pt"))
    b = load_model(str(tmp_path / "two" / "net-final.pt"))
    for (na, pa), (nb, pb) in zip(a.named_matconvnet_params(), b.named_matconvnet_params()):
        assert na == nb
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)
    assert os.path.exists(tmp_path / "two" / "net-epoch-1.pt")
    from matconv_port.network import MatConvNetModel
    from matconv_port.train.archs import demo

    init = MatConvNetModel(demo(2, "flow", seed=0, image_size=(16, 16), widths=(4, 6, 8, 8)))
    assert not torch.equal(init.param("fc8f"), b.param("fc8f"))  # it did train
    # the statistics (all-reduced per epoch through the process's device) agree too
    import json

    sa = json.loads((tmp_path / "one" / "stats.json").read_text())
    sb = json.loads((tmp_path / "two" / "stats.json").read_text())
    for mode in ("train", "val"):
        assert sa[mode] and len(sa[mode]) == len(sb[mode])
        for ra, rb in zip(sa[mode], sb[mode]):
            for k in ra:
                if k not in ("time",):
                    assert rb[k] == pytest.approx(ra[k], rel=1e-6, abs=1e-9), (mode, k)


def test_all_reduce_refuses_tensor_on_another_device():
    from matconv_port.train.distributed import DistInfo, all_reduce_stats, all_reduce_sum

    info = DistInfo(device=torch.device("meta"))
    with pytest.raises(RuntimeError, match="not on this process's device meta"):
        all_reduce_sum([torch.zeros(3)], info)  # world size 1: still checked
    all_reduce_sum([torch.zeros(3, device="meta")], info)
    # the statistics helper moves a CPU float64 vector to the device and back
    cpu = DistInfo()
    vec = torch.tensor([1.5, 2.0], dtype=torch.float64)
    out = all_reduce_stats(vec, cpu)
    assert out.device.type == "cpu" and out.dtype == torch.float64 and torch.equal(out, vec)


def test_init_distributed_refuses_more_processes_than_gpus(monkeypatch):
    import matconv_port.devices as devices
    from matconv_port.devices import DeviceError
    from matconv_port.train.distributed import init_distributed

    monkeypatch.setattr(devices, "_cuda_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(DeviceError, match="torchrun started 2 processes on this node but it has 1 CUDA GPU"):
        init_distributed("cuda")
