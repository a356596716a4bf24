"""torchrun with 2 CPU processes (gloo) reaches the parameters of one process running
the same sub-batches (MatConvNet's interleaving), up to float summation order."""
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
