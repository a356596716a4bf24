"""Run a converted MatConvNet model on the input stored with it and compare every
variable with what the original MatConvNet computed (a bundled fixture).

    python examples/run_fixture_model.py fixtures/reference/dagnn_misc_a.mat demo/dagnn_misc_a.pt
"""
from __future__ import annotations

import sys

import numpy as np
import scipy.io as sio
import torch

import matconv_port


def main(fixture: str, converted: str) -> None:
    data = sio.loadmat(fixture)
    model = matconv_port.load_model(converted, lrn_mode="fast")  # MatConvNet's CPU LRN, as the fixture
    outputs = data["outputs"]
    names = list(outputs.dtype.names)
    inputs = {}
    for name in model.all_input_vars:
        if name == "label" and "label" in data:
            inputs[name] = torch.as_tensor(data["label"].ravel(order="F").astype(np.float64))
        elif name in data:
            inputs[name] = matconv_port.from_matconvnet_layout(data[name])
    num_videos = int(data["curBatchSize"].ravel()[0]) if "curBatchSize" in data else None
    with torch.no_grad():
        values = model.forward_vars(inputs, num_videos=num_videos)
    worst = 0.0
    for name in names:
        if name not in values or name in model.label_vars:
            continue
        ours = matconv_port.to_matconvnet_layout(values[name]).astype(np.float64).ravel(order="F")
        ref = np.asarray(outputs[name][0, 0], dtype=np.float64).ravel(order="F")
        err = float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))
        worst = max(worst, err)
        print(f"  {name:16s} max |ours - MatConvNet| / max|MatConvNet| = {err:.1e}")
    scores = values[model.prediction_vars[0]].mean(dim=(2, 3))
    print(f"{len(names)} vars compared, worst {worst:.1e} (tolerance 1e-5); "
          f"predicted classes: {(scores.argmax(dim=1) + 1).tolist()}")
    if worst > 1e-5:
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
