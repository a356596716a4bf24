"""The host-to-device path of training: pinned memory and non-blocking copies are
chosen for CUDA only; on CPU the same helper runs as a plain move. (The real pinned,
asynchronous copies run in tests/test_gpu.py on a GPU.)"""
import torch

from matconv_port.train.data import BatchAssembler, to_device


class _Fake:
    """A host tensor stand-in recording how it was moved."""

    def __init__(self, pinned):
        self.pinned, self.calls = pinned, []

    def is_pinned(self):
        return self.pinned

    def to(self, device, non_blocking=False):
        self.calls.append((torch.device(device), non_blocking))
        return self


def test_to_device_on_cpu_is_a_plain_move():
    x = {"input": torch.randn(2, 3, 4, 4), "label": torch.tensor([1.0, 2.0])}
    out = to_device(x, "cpu")
    assert set(out) == set(x) and all(out[k] is x[k] for k in x)  # already there: the same tensors


def test_non_blocking_only_for_pinned_tensors_to_cuda():
    pinned, pageable = _Fake(True), _Fake(False)
    to_device({"a": pinned, "b": pageable}, torch.device("cuda", 0))
    assert pinned.calls == [(torch.device("cuda", 0), True)]
    assert pageable.calls == [(torch.device("cuda", 0), False)]  # a pageable copy must stay synchronous
    cpu = _Fake(True)
    to_device({"a": cpu}, "cpu")
    assert cpu.calls == [(torch.device("cpu"), False)]
    forced = _Fake(False)
    to_device({"a": forced}, "cpu", non_blocking=True)
    assert forced.calls == [(torch.device("cpu"), True)]


def test_assembler_pins_only_when_asked(tmp_path, monkeypatch):
    from matconv_port.data.synthetic import make_synthetic_dataset
    from matconv_port.train.sampling import ClipPlan

    make_synthetic_dataset(str(tmp_path), num_classes=2, videos_per_class=2, frames=4, height=24, width=32, seed=1)
    video = sorted(p.name for p in (tmp_path / "jpegs_256").iterdir())[0]
    plan = ClipPlan(video, 1, [1], [], (0, 0, 32, 24), False, (24, 32))
    asm = BatchAssembler(str(tmp_path), "rgb", {}, {"rgb": "input"}, threads=1)
    batch = asm.assemble([plan])
    assert not batch.inputs["input"].is_pinned() and tuple(batch.inputs["input"].shape) == (1, 3, 24, 32)
    # pin_memory=True page-locks every input (faked here: a CPU-only torch cannot pin)
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(tuple(self.shape)) or self)
    asm_pin = BatchAssembler(str(tmp_path), "rgb", {}, {"rgb": "input"}, threads=1, pin_memory=True)
    b2 = asm_pin.assemble([plan])
    assert sorted(pinned) == sorted(tuple(v.shape) for v in b2.inputs.values())
    torch.testing.assert_close(b2.inputs["input"], batch.inputs["input"], rtol=0, atol=0)
    asm.close()
    asm_pin.close()
