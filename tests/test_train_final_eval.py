"""The evaluation at the end of training runs on the training run's device and under
its numerics policy (``--precision``), with the paper's default protocol."""
from types import SimpleNamespace

import pytest

import matconv_port.eval.runner as runner
from matconv_port.devices import DeviceError
from matconv_port.train.final_eval import paper_eval


def _opts(**kw):
    base = dict(data_root="D", dataset="ucf101", splits_dir=None, out="/tmp/exp", split=2, seed=3, threads=4,
                progress=False, device="cpu", precision="bf16")
    base.update(kw)
    return SimpleNamespace(**base)


def test_final_eval_takes_the_runs_device_and_precision(monkeypatch):
    seen = {}

    def fake_evaluate_split(eopts, split, log=print):
        seen["opts"], seen["split"] = eopts, split
        return {"protocol": "dense25", "top1": 1.0, "top5": 1.0, "mean_class_accuracy": 1.0, "num_videos": 1}

    monkeypatch.setattr(runner, "evaluate_split", fake_evaluate_split)
    out = paper_eval("net-final.pt", _opts(), log=lambda m: None)
    assert out["top1"] == 1.0
    eopts = seen["opts"]
    assert (eopts.device, eopts.precision, seen["split"]) == ("cpu", "bf16", 2)
    assert eopts.out_dir.endswith("eval_split2") and eopts.workers == 2
    paper_eval("net-final.pt", _opts(precision=None, device="auto"), log=lambda m: None)
    assert seen["opts"].precision == "exact"


def test_final_eval_refuses_a_device_this_machine_lacks(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(DeviceError):
        paper_eval("net-final.pt", _opts(device="cuda:1"), log=lambda m: None)
