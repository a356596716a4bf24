"""``matconv-port export``: output files, messages, and one-line errors (exit 2) that
leave nothing behind."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from matconv_port import from_matconvnet_layout, load_model
from matconv_port.cli import main
from matconv_port.converters.matfile import read_mat

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(os.path.dirname(HERE), "fixtures", "reference")
SMALL = os.path.join(REF, "simplenn_small_v7.mat")
MISC = os.path.join(REF, "dagnn_misc_a.mat")


def _run(args):
    result = CliRunner().invoke(main, ["export", *args])
    return result.exit_code, result.stdout, result.stderr


def _one_line_error(code, err):
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_onnx_export(tmp_path):
    out = tmp_path / "net.onnx"
    code, stdout, err = _run([SMALL, "--format", "onnx", "-o", str(out), "--exporter", "torchscript"])
    assert code == 0, err
    assert out.exists() and "max rel diff" in stdout and "x0" in stdout
    assert sorted(os.listdir(tmp_path)) == ["net.onnx"]  # no temp files left


def test_matconvnet_export_with_check_data(tmp_path):
    out, data = tmp_path / "net.mat", tmp_path / "data.mat"
    code, stdout, err = _run([MISC, "-o", str(out), "--check-data", str(data)])  # format from the extension
    assert code == 0, err
    assert "DagNN" in stdout
    d = read_mat(str(data))
    assert d["input"].shape == (16, 16, 3, 8) and d["input"].dtype == np.float32  # 4 frames x 2 videos
    assert float(d["curBatchSize"][0, 0]) == 2 and float(d["nFrames"][0, 0]) == 4
    assert d["label"].shape == (1, 2) and set(d["label"].ravel()) <= set(range(1, 6))
    # the stored outputs are the exported net's own outputs on the stored inputs
    back = load_model(str(out), lrn_mode="fast")
    ys = back.forward_vars({"input": from_matconvnet_layout(d["input"]),
                            "label": torch.as_tensor(d["label"].ravel())}, num_videos=2)
    for var in ("prediction", "pool3d", "objective"):
        ref = d["outputs"][var]
        got = ys[var].detach().numpy()
        got = got.transpose(2, 3, 1, 0) if got.ndim == 4 else got
        assert np.array_equal(got.reshape(ref.shape), ref), var


@pytest.mark.parametrize("args,needle", [
    (["--format", "caffe"], "unknown format"),
    (["--outputs", "nope"], "nope"),
    (["--frames", "0"], "--frames"),
    (["--size", "a,b"], "--size"),
    (["--mat-version", "6"], "--mat-version"),
    (["--rtol", "0"], "--rtol"),
])
def test_bad_options_one_line_nothing_written(tmp_path, args, needle):
    out = tmp_path / "net.onnx"
    code, _, err = _run([MISC, "-o", str(out), *args])
    assert needle in _one_line_error(code, err)
    assert os.listdir(tmp_path) == []


def test_unknown_extension(tmp_path):
    code, _, err = _run([SMALL, "-o", str(tmp_path / "net.bin")])
    assert "--format" in _one_line_error(code, err)
    assert os.listdir(tmp_path) == []


def test_label_output_refused(tmp_path):
    code, _, err = _run([MISC, "--format", "onnx", "-o", str(tmp_path / "x.onnx"), "--outputs", "objective"])
    assert "label" in _one_line_error(code, err)
    assert os.listdir(tmp_path) == []


def test_missing_model_and_folder(tmp_path):
    code, _, err = _run([str(tmp_path / "none.mat"), "-o", str(tmp_path / "x.onnx")])
    _one_line_error(code, err)
    code, _, err = _run([SMALL, "-o", str(tmp_path / "no" / "x.onnx")])
    assert "does not exist" in _one_line_error(code, err)
    assert os.listdir(tmp_path) == []


CUSTOM = '''
import math
import torch
from matconv_port.layers.base import MatConvNetLayer
from matconv_port.layers.registry import register_layer


@register_layer("dagnn.ReLU", replace=True)
class PythonReLU(MatConvNetLayer):
    """A user's ReLU computed in plain Python: runs in PyTorch, has no ONNX form."""

    def forward(self, inputs, params, ctx):
        x = inputs[0]
        return [torch.tensor([max(v, 0.0) for v in x.detach().reshape(-1).tolist()], dtype=x.dtype).reshape(x.shape)]
'''


def test_custom_layer_without_onnx_form(tmp_path):
    from matconv_port.layers.activation import ReLU
    from matconv_port.layers.registry import register_layer

    plugin = tmp_path / "plugin.py"
    plugin.write_text(CUSTOM)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    try:
        code, _, err = _run([SMALL, "-o", str(out_dir / "x.onnx"), "--custom-layers", str(plugin),
                             "--exporter", "torchscript"])
    finally:
        register_layer("dagnn.ReLU", simplenn="relu", replace=True)(ReLU)
    line = _one_line_error(code, err)
    assert "PythonReLU" not in line and "dagnn.ReLU" in line  # names the layer and its type
    assert os.listdir(out_dir) == []


def test_converted_file_with_outputs(tmp_path):
    """A converted .pt in, pruned to the layers --outputs needs, MatConvNet DagNN out."""
    from matconv_port.serialization import save_converted

    pt = tmp_path / "misc.pt"
    save_converted(load_model(MISC), str(pt))
    out = tmp_path / "pruned.mat"
    code, _, err = _run([str(pt), "-o", str(out), "--outputs", "pool3d"])
    assert code == 0, err
    names = [l.name for l in load_model(str(out)).layer_specs]
    assert names[-1] == "pool3d" and "fc" not in names and "loss" not in names
    code, _, err = _run([str(pt), "-o", str(tmp_path / "x.onnx"), "--outputs", "pool3d", "--exporter", "torchscript"])
    assert code == 0, err
