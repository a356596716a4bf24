"""``convert`` writes params straight from the MatConvNet file into the output
(:mod:`matconv_port.stream_save`): the file must hold exactly what ``load_model`` of
the source gives, be a valid zip (CRCs) that ``torch.load(weights_only=True)`` reads,
and nothing may be left behind when writing fails."""
from __future__ import annotations

import os
import struct
import zipfile

import numpy as np
import pytest
import torch

import matconv_port
from matconv_port import stream_save
from matconv_port.converters.matfile import read_mat, write_mat
from matconv_port.converters.mattypes import MatCell
from matconv_port.convert import ConversionJob, convert_file
from matconv_port.errors import MatConvPortError
from parity_utils import FIXTURES


def _conv(name, h, w, cin, cout, rng):
    return {"type": "conv", "name": name,
            "weights": MatCell([rng.standard_normal((h, w, cin, cout)).astype(np.float32),
                                rng.standard_normal((1, cout)).astype(np.float32)], shape=(1, 2)),
            "pad": np.ones((1, 4)), "stride": np.ones((1, 2))}


@pytest.fixture(scope="module")
def big73(tmp_path_factory):
    """A SimpleNN whose big filters (>= 1 MiB) are mapped from the v7.3 file, with a
    non-square (3 x 5) kernel, a fully-connected 7 x 7 head and an averageImage."""
    rng = np.random.default_rng(0)
    layers = [_conv("conv1", 3, 5, 3, 96, rng), {"type": "relu", "name": "relu1"},
              _conv("conv2", 3, 3, 96, 384, rng), {"type": "relu", "name": "relu2"},
              {"type": "pool", "name": "pool", "method": "max", "pool": np.array([[2, 2]]), "stride": np.array([[2, 2]]),
               "pad": np.zeros((1, 4))},
              _conv("fc", 7, 7, 384, 10, rng)]
    layers[0]["pad"] = np.array([[1.0, 1.0, 2.0, 2.0]])  # keeps 14 x 14
    layers[-1]["pad"] = np.zeros((1, 4))
    meta = {"normalization": {"imageSize": np.array([[14.0, 14.0, 3.0]]),
                              "averageImage": rng.uniform(0, 255, (1, 1, 3)).astype(np.float32)}}
    path = str(tmp_path_factory.mktemp("big73") / "big73.mat")
    write_mat(path, {"net": {"layers": MatCell(layers, shape=(1, len(layers))), "meta": meta}}, version="7.3")
    return path


def _same_model(a, b):
    assert list(a.param_keys) == list(b.param_keys)
    for name in a.param_keys:
        pa, pb = a.param(name), b.param(name)
        assert pa.dtype == pb.dtype and torch.equal(pa, pb), name
    assert a.param_shapes == b.param_shapes


def test_big_arrays_are_mapped_not_read(big73):
    net = read_mat(big73, map_min_bytes=1 << 20)["net"]
    w = net["layers"][2]["weights"][0]
    assert w.shape == (3, 3, 96, 384) and not w.flags.writeable  # a read-only map of the file
    small = net["layers"][0]["weights"][0]
    assert small.flags.writeable


@pytest.mark.parametrize("src", ["big73", os.path.join(FIXTURES, "reference", "dagnn_misc_a.mat"),
                                 os.path.join(FIXTURES, "reference", "fusion_twostream_vgg16narrow_a.mat")])
def test_streamed_file_equals_the_source(src, big73, tmp_path):
    src = big73 if src == "big73" else src
    out = str(tmp_path / "out.pt")
    convert_file(src, out, log=lambda m: None)
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None  # every CRC right, as torch.save writes them
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == "matconv-port/converted"
    ref = matconv_port.load_model(src)
    _same_model(matconv_port.load_model(out), ref)
    assert ref.meta.keys() == matconv_port.load_model(out).meta.keys()
    x = {v: torch.randn(s) for v, s in _inputs(ref).items()}
    got, want = matconv_port.load_model(out).forward_vars(dict(x)), ref.forward_vars(dict(x))
    for v in want:
        assert torch.equal(got[v], want[v]), v


def _inputs(model):
    from matconv_port.shapecheck import default_input_shapes

    return default_input_shapes(model, None, num_videos=1)


def test_fallback_without_skip_data_writes_the_same(big73, tmp_path, monkeypatch):
    a, b = str(tmp_path / "a.pt"), str(tmp_path / "b.pt")
    convert_file(big73, a, log=lambda m: None)
    monkeypatch.setattr(stream_save, "supported", lambda: False)
    convert_file(big73, b, log=lambda m: None)
    _same_model(matconv_port.load_model(a), matconv_port.load_model(b))
    with zipfile.ZipFile(b) as zf:
        assert zf.testzip() is None


def test_failure_while_writing_leaves_nothing(big73, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stream_save, "_write_records", broken)
    out = tmp_path / "x.pt"
    from matconv_port.errors import EnvironmentProblem

    # a full disk is the user's to fix: one line naming the output (issue 13), nothing left behind
    with pytest.raises(EnvironmentProblem, match=f"{out}: cannot write: No space left on device"):
        convert_file(big73, str(out), log=lambda m: None)
    assert os.listdir(tmp_path) == []


def test_conversion_job_fills_its_model_once(big73, tmp_path):
    job = ConversionJob.open(big73)
    assert set(job.sources) == set(job.model.param_keys)
    model = job.fill()
    assert not job.sources
    ref = matconv_port.load_model(big73)
    _same_model(model, ref)
    x = {v: torch.randn(s) for v, s in _inputs(model).items()}
    assert torch.equal(model.forward_vars(dict(x))["x6"], ref.forward_vars(dict(x))["x6"])


def test_streamed_job_refuses_to_hand_out_its_unwritten_model(big73, tmp_path):
    job = ConversionJob.open(big73)
    job.save(str(tmp_path / "a.pt"))
    assert not job.sources
    with pytest.raises(MatConvPortError, match="converted file only"):
        job.fill()
    _same_model(matconv_port.load_model(str(tmp_path / "a.pt")), matconv_port.load_model(big73))


def test_fill_zip_crcs_repairs_zeroed_crcs(tmp_path):
    path = str(tmp_path / "t.pt")
    torch.save({"a": torch.arange(100000, dtype=torch.float32), "b": torch.ones(3)}, path)
    with zipfile.ZipFile(path) as zf:
        want = {i.filename: i.CRC for i in zf.infolist()}
        infos = zf.infolist()
        start = zf.start_dir
    raw = bytearray(open(path, "rb").read())
    pos = start
    for info in infos:  # zero every CRC in the central directory and the data descriptors
        n, e, c = struct.unpack_from("<HHH", raw, pos + 28)
        raw[pos + 16:pos + 20] = b"\0\0\0\0"
        if info.flag_bits & 8:
            name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
            end = info.header_offset + 30 + name_len + extra_len + info.file_size
            at = end + 4 if raw[end:end + 4] == b"PK\x07\x08" else end
            raw[at:at + 4] = b"\0\0\0\0"
        pos += 46 + n + e + c
    open(path, "wb").write(bytes(raw))
    assert stream_save.fill_zip_crcs(path) == len([i for i in infos if i.file_size])
    with zipfile.ZipFile(path) as zf:
        assert {i.filename: i.CRC for i in zf.infolist()} == want
        assert zf.testzip() is None


def test_unmatchable_layout_falls_back_to_torch_save(big73, tmp_path, monkeypatch):
    """A torch whose skip_data file cannot be matched to the payload: nothing is
    written into it and the converter fills the params in memory instead."""
    def unknown(path, payload):
        raise stream_save.LayoutUnknown(f"{path}: cannot match")

    monkeypatch.setattr(stream_save, "_record_offsets", unknown)
    out = str(tmp_path / "x.pt")
    convert_file(big73, out, log=lambda m: None)
    _same_model(matconv_port.load_model(out), matconv_port.load_model(big73))
    assert sorted(os.listdir(tmp_path)) == ["x.pt"]


def test_float64_conversion_casts_while_writing(big73, tmp_path):
    out = str(tmp_path / "d.pt")
    convert_file(big73, out, dtype=torch.float64, log=lambda m: None)
    got, want = matconv_port.load_model(out, dtype=torch.float64), matconv_port.load_model(big73, dtype=torch.float64)
    assert all(got.param(n).dtype == torch.float64 for n in got.param_keys)
    _same_model(got, want)
    assert torch.load(out, weights_only=True)["params"][next(iter(want.param_keys))].dtype == torch.float64
