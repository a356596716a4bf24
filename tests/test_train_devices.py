"""Bad devices and out-of-memory for `matconv-port train`: one line, exit 2, and (for
devices) nothing written. CUDA counts are faked by monkeypatching torch.cuda."""
import pytest
import torch
from click.testing import CliRunner

from matconv_port.cli import main

FAST = ["--epochs", "1", "--epoch-factor", "1", "--batch-size", "4", "--sub-batches", "2", "--no-final-eval",
        "--no-progress", "--threads", "1", "--no-val"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from matconv_port.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("syn")
    make_synthetic_dataset(str(root), num_classes=2, videos_per_class=2, frames=12, height=24, width=32, seed=1)
    return str(root)


def _train(data_root, out, *extra):
    return CliRunner().invoke(main, ["train", "rgb", "--arch", "demo", "--data-root", data_root,
                                     "--out", str(out)] + FAST + list(extra))


def _one_line_exit_2(r, *needles, started=False):
    """Exit 2 with one ``error:`` line (the only output unless training had ``started``
    and printed its options first)."""
    assert r.exit_code == 2, r.output
    lines = [l for l in r.output.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.output
    if not started:
        assert len(lines) == 1, r.output
    lines = errors
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], lines[0]


def _fake_gpus(monkeypatch, n):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


def test_cuda_without_cuda(data_root, tmp_path, monkeypatch):
    _fake_gpus(monkeypatch, 0)
    r = _train(data_root, tmp_path / "out", "--device", "cuda")
    _one_line_exit_2(r, "--device cuda", "CUDA is not available")
    assert not (tmp_path / "out").exists()


def test_cuda_index_beyond_the_gpus(data_root, tmp_path, monkeypatch):
    _fake_gpus(monkeypatch, 1)
    r = _train(data_root, tmp_path / "out", "--device", "cuda:3")
    _one_line_exit_2(r, "--device cuda:3", "1 CUDA GPU")
    assert not (tmp_path / "out").exists()


def test_torchrun_more_processes_than_gpus(data_root, tmp_path, monkeypatch):
    _fake_gpus(monkeypatch, 2)
    for k, v in dict(WORLD_SIZE="4", RANK="3", LOCAL_RANK="3", LOCAL_WORLD_SIZE="4").items():
        monkeypatch.setenv(k, v)
    r = _train(data_root, tmp_path / "out", "--device", "cuda")
    _one_line_exit_2(r, "torchrun started 4 processes", "--nproc_per_node 2")
    assert not (tmp_path / "out").exists()


def test_torchrun_with_one_gpu_index_for_every_process(data_root, tmp_path, monkeypatch):
    _fake_gpus(monkeypatch, 4)
    for k, v in dict(WORLD_SIZE="2", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2").items():
        monkeypatch.setenv(k, v)
    from matconv_port.train import loop

    monkeypatch.setattr(loop.torch.cuda, "set_device", lambda d: None)
    r = _train(data_root, tmp_path / "out", "--device", "cuda:1")
    _one_line_exit_2(r, "--device cuda:1", "use --device cuda")
    assert not (tmp_path / "out").exists()


def test_not_a_device(data_root, tmp_path):
    r = _train(data_root, tmp_path / "out", "--device", "tpu7")
    _one_line_exit_2(r, "--device tpu7")
    assert not (tmp_path / "out").exists()


def test_amp_contradicting_precision(data_root, tmp_path):
    r = _train(data_root, tmp_path / "out", "--device", "cpu", "--amp", "--precision", "exact")
    _one_line_exit_2(r, "--amp")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["layer", "backward"])
def test_out_of_memory_names_the_memory_options(data_root, tmp_path, monkeypatch, where):
    """A layer's forward (re-raised by the graph as a ShapeError caused by the OOM) or
    the step as a whole raising torch.OutOfMemoryError: one line naming --sub-batches
    and --batch-size, exit 2."""
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if where == "layer":
        from matconv_port.layers.conv import Conv

        def boom(self, *a, **k):
            raise oom
        monkeypatch.setattr(Conv, "forward", boom)
    else:
        from matconv_port.train import loop

        def boom(*a, **k):
            raise oom
        monkeypatch.setattr(loop, "forward_backward", boom)
    r = _train(data_root, tmp_path / "out", "--device", "cpu")
    _one_line_exit_2(r, "out of memory while training epoch 1", "--sub-batches (now 2", "--batch-size (now 4)",
                     started=True)


def test_precision_and_amp_are_printed(data_root, tmp_path):
    r = _train(data_root, tmp_path / "out", "--device", "cpu", "--amp", "--epoch-factor", "1")
    assert r.exit_code == 0, r.output
    assert "precision: bf16" in r.output
