"""`matconv-port convert` / `inspect` end to end: outputs, the converted file's
safety, custom layers, and one-line errors with exit status 2 for bad input."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import matconv_port
from matconv_port.converters.matfile import write_mat
from matconv_port.converters.mattypes import MatCell
from parity_utils import FIXTURES, load_case, relative_error

REF = os.path.join(FIXTURES, "reference")


def cli(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from matconv_port.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _simplenn(layers: list[dict]) -> dict:
    return {"net": {"layers": MatCell(layers, shape=(1, len(layers))), "meta": {}}}


def _conv(name: str, h: int, w: int, cin: int, cout: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"type": "conv", "name": name,
            "weights": MatCell([rng.standard_normal((h, w, cin, cout)).astype(np.float32),
                                rng.standard_normal((1, cout)).astype(np.float32)], shape=(1, 2)),
            "pad": np.zeros((1, 4)), "stride": np.ones((1, 2))}


def test_convert_writes_a_safe_self_contained_file(tmp_path):
    src = os.path.join(REF, "dagnn_misc_a.mat")
    out = tmp_path / "misc.pt"
    proc = cli("convert", src, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "shape check passed" in proc.stdout
    payload = torch.load(str(out), weights_only=True)  # never unpickles code
    assert payload["format"] == "matconv-port/converted"
    # no .mat and no scipy needed at load time: load in a process where scipy cannot import
    code = textwrap.dedent(f"""
        import sys
        sys.modules['scipy'] = None; sys.modules['scipy.io'] = None; sys.modules['h5py'] = None
        import torch, matconv_port
        m = matconv_port.load_model({str(out)!r})
        print(sorted(m.input_vars), m.prediction_vars)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "['input', 'label'" not in proc.stdout and "prediction" in proc.stdout


def test_converted_outputs_match_matconvnet(tmp_path):
    src = os.path.join(REF, "simplenn_chain_b.mat")
    out = tmp_path / "b.pt"
    assert cli("convert", src, "-o", str(out)).returncode == 0
    case = load_case(src)
    values = matconv_port.load_model(str(out), lrn_mode="fast").forward_vars(case.inputs)
    for name, ref in case.expected.items():
        assert relative_error(values[name], ref) <= 1e-5, name


def test_inspect_prints_table_and_meta(tmp_path):
    proc = cli("inspect", os.path.join(REF, "fusion_twostream_vgg16narrow_a.mat"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for needle in ("conv53D", "Conv3D", "pool3D5_spatial", "relu5_3_concat", "conv3Df 3x3x3x16x8",
                   "classes: 1000", "averageImage", "frames per clip: 5", "inputs: input"):
        assert needle in out, needle
    # output sizes come from the meta image size (or a given one)
    proc = cli("inspect", os.path.join(REF, "simplenn_chain_a.mat"), "--input-size", "23,19")
    assert proc.returncode == 0 and "x1" in proc.stdout


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_text("this is not a MATLAB file\n" * 20), "not"),
    (lambda p: p.write_bytes(open(os.path.join(REF, "simplenn_chain_a.mat"), "rb").read()[:4000]), ""),
    (lambda p: write_mat(str(p), {"foo": np.ones((2, 2)), "bar": "x"}), "no MatConvNet network"),
])
def test_bad_files_exit_2_with_one_line(tmp_path, make, needle):
    bad = tmp_path / "bad.mat"
    make(bad)
    out = tmp_path / "bad.pt"
    proc = cli("convert", str(bad), "-o", str(out))
    assert_one_line_error(proc, "bad.mat", needle)
    assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


def test_missing_file_and_missing_weights(tmp_path):
    assert_one_line_error(cli("convert", str(tmp_path / "nope.mat")), "nope.mat")
    layer = _conv("conv1", 3, 3, 3, 4)
    del layer["weights"]
    write_mat(str(tmp_path / "now.mat"), _simplenn([layer]))
    assert_one_line_error(cli("convert", str(tmp_path / "now.mat")), "conv1")


def test_shape_mismatch_between_layers_is_refused(tmp_path):
    # conv1 gives 4 channels, conv2 expects 5: never a silently wrong network
    write_mat(str(tmp_path / "mis.mat"), _simplenn([_conv("conv1", 3, 3, 3, 4), {"type": "relu", "name": "r"},
                                                   _conv("conv2", 3, 3, 5, 2)]))
    out = tmp_path / "mis.pt"
    proc = cli("convert", str(tmp_path / "mis.mat"), "-o", str(out))
    assert_one_line_error(proc, "conv2")
    assert not out.exists()


CUSTOM = '''
import torch
from matconv_port.layers import MatConvNetLayer, register_layer

@register_layer("timesk")
class TimesK(MatConvNetLayer):
    """y = k * x, k from the layer's own field."""
    def __init__(self, spec):
        super().__init__(spec)
        self.k = self.block_float("k", 1.0)

    def forward(self, inputs, params, ctx):
        return [inputs[0] * self.k]
'''


def test_unknown_types_are_named_and_custom_layers_fix_them(tmp_path):
    layers = [_conv("conv1", 3, 3, 3, 4), {"type": "timesk", "name": "scale1", "k": 3.0},
              {"type": "relu", "name": "relu1"}]
    src = tmp_path / "custom.mat"
    write_mat(str(src), _simplenn(layers))
    out = tmp_path / "custom.pt"
    proc = cli("convert", str(src), "-o", str(out))
    assert_one_line_error(proc, "timesk", "scale1", "--outputs", "--custom-layers")
    assert not out.exists()
    # way out 1: keep only what x1 needs
    assert cli("convert", str(src), "-o", str(out), "--outputs", "x1").returncode == 0
    assert matconv_port.load_model(str(out)).var_names == ["x0", "x1"]
    # way out 2: register the type
    plugin = tmp_path / "my_layers.py"
    plugin.write_text(CUSTOM)
    out.unlink()
    proc = cli("convert", str(src), "-o", str(out), "--custom-layers", str(plugin))
    assert proc.returncode == 0, proc.stderr
    code = (f"import runpy, torch, matconv_port; runpy.run_path({str(plugin)!r}); "
            f"m = matconv_port.load_model({str(out)!r}); x = torch.randn(1, 3, 8, 8); v = m.forward_vars({{'x0': x}}); "
            f"assert torch.allclose(v['x3'], torch.relu(3 * v['x1'])); print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_every_command_answers_help():
    for cmd in ("convert", "inspect", "fuse", "export", "eval", "train", "prepare"):
        proc = cli(cmd, "--help")
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert "Usage" in proc.stdout
