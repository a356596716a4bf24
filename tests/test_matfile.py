"""MAT-file I/O (matconv_port.converters.matfile): reading every shared/real file,
agreement with scipy's reader, v6 == v7, round trips through -v7 and -v7.3, MATLAB's
v7.3 layout, and one-line MatFileErrors for bad files."""
from __future__ import annotations

import glob
import os

import h5py
import numpy as np
import pytest
import scipy.io
from matconv_port.converters import matfile
from matconv_port.converters.matfile import (
    MatCell,
    MatOpaque,
    MatStructArray,
    mat_equal,
    mat_version,
    read_mat,
    write_mat,
)
from parity_utils import FIXTURES, REAL_MODELS, SHARED

from matconv_port.errors import MatFileError

REF_DIR = os.path.join(FIXTURES, "reference")
SHARED_REF = os.path.join(SHARED, "matconvnet_reference")
REAL_DIR = REAL_MODELS

REF_FILES = sorted(glob.glob(os.path.join(REF_DIR, "*.mat")))
REAL_FILES = sorted(glob.glob(os.path.join(REAL_DIR, "*.mat")))
needs_real = pytest.mark.skipif(not os.path.isdir(REAL_DIR), reason=f"{REAL_DIR} not present on this machine")


def real(name: str) -> str:
    return os.path.join(REAL_DIR, name)


# --------------------------------------------------------------------------- reading
def test_all_seven_reference_files_are_in_fixtures():
    assert len(REF_FILES) == 7


@pytest.mark.parametrize("path", REF_FILES, ids=os.path.basename)
def test_read_reference_files(path):
    data = read_mat(path)
    assert isinstance(data["net"], dict)
    assert isinstance(data["description"], str) and data["description"]


@pytest.mark.skipif(not os.path.isdir(SHARED_REF), reason=f"{SHARED_REF} not present")
def test_fixture_copies_match_shared_reference():
    for path in REF_FILES:
        shared = os.path.join(SHARED_REF, os.path.basename(path))
        with open(path, "rb") as a, open(shared, "rb") as b:
            assert a.read() == b.read(), path


@needs_real
def test_every_real_model_file_reads():
    assert len(REAL_FILES) == 14
    for path in REAL_FILES:
        data = read_mat(path)
        assert data, path


def _from_scipy(v):
    """scipy.io.loadmat's output (struct_as_record) -> comparable neutral-ish values."""
    if isinstance(v, np.ndarray) and v.dtype.names:
        items = [{f: _from_scipy(e[f]) for f in v.dtype.names} for e in v.reshape(-1, order="F")]
        return items[0] if v.size == 1 else items
    if isinstance(v, np.ndarray) and v.dtype == object:
        return [_from_scipy(e) for e in v.reshape(-1, order="F")]
    if isinstance(v, np.ndarray) and v.dtype.kind == "U":
        rows = [str(r) for r in v.reshape(-1)]
        return rows[0] if len(rows) == 1 else ("" if not rows else rows)
    return v


def _loose_equal(mine, theirs, where="") -> None:
    """Numeric leaves equal in shape, class dtype and value."""
    if isinstance(mine, MatOpaque):
        return  # scipy's MatlabOpaque/MatlabFunction: not compared
    if isinstance(mine, np.ndarray):
        theirs = np.asarray(theirs)
        if theirs.dtype == object or theirs.dtype.names:
            return  # scipy's opaque wrappers
        assert mine.shape == theirs.shape, where
        if mine.dtype == np.bool_:
            assert theirs.dtype in (np.bool_, np.uint8), where
            np.testing.assert_array_equal(mine.astype(np.uint8), theirs, err_msg=where)
        else:
            assert mine.dtype == theirs.dtype, where
            np.testing.assert_array_equal(mine, theirs, err_msg=where)
    elif isinstance(mine, dict):
        if theirs is None or theirs == [None]:  # scipy: a field-less struct
            assert mine == {}, where
            return
        assert list(mine) == list(theirs), where
        for k in mine:
            _loose_equal(mine[k], theirs[k], f"{where}.{k}")
    elif isinstance(mine, list):
        if isinstance(theirs, str):
            theirs = [theirs]
        assert len(mine) == len(theirs), where
        for i, (a, b) in enumerate(zip(mine, theirs)):
            _loose_equal(a, b, f"{where}[{i}]")
    else:
        assert mine == theirs, where


def _v5_files():
    files = list(REF_FILES)
    if os.path.isdir(REAL_DIR):
        files += [p for p in REAL_FILES if mat_version(p) == "5"]
    return files


@pytest.mark.parametrize("path", _v5_files(), ids=os.path.basename)
def test_v5_reader_agrees_with_scipy(path):
    mine = read_mat(path)
    theirs = scipy.io.loadmat(path, squeeze_me=False, chars_as_strings=True, mat_dtype=True)
    theirs = {k: v for k, v in theirs.items() if not k.startswith("__")}
    assert list(mine) == list(theirs)
    for k in mine:
        _loose_equal(mine[k], _from_scipy(theirs[k]), k)


def test_v6_and_v7_copies_read_identically():
    v6 = read_mat(os.path.join(REF_DIR, "simplenn_small_v6.mat"))
    v7 = read_mat(os.path.join(REF_DIR, "simplenn_small_v7.mat"))
    assert list(v6) == list(v7)
    for k in v6:
        if k != "description":
            assert mat_equal(v6[k], v7[k]), k


def test_neutral_types_of_a_simplenn_file():
    net = read_mat(os.path.join(REF_DIR, "simplenn_chain_a.mat"))["net"]
    layers = net["layers"]
    assert isinstance(layers, MatCell) and layers.shape == (1, len(layers))
    conv = layers[0]
    assert conv["type"] == "conv" and isinstance(conv["name"], str)
    w = conv["weights"]
    assert isinstance(w, MatCell) and w[0].dtype == np.float32 and w[0].ndim == 4
    assert conv["precious"].dtype == np.bool_  # logical stays logical


@needs_real
def test_v73_dagnn_file_layout_decoded():
    net = read_mat(real("cszn_DnCNN__DnCNN-epoch-50.mat"))["net"]
    assert isinstance(net["layers"], MatStructArray) and len(net["layers"]) == 50
    assert net["layers"].shape == (1, 50)
    assert net["layers"].fields == ["name", "type", "inputs", "outputs", "params", "block"]
    first = net["layers"][0]
    assert first["type"] == "dagnn.Conv"
    assert first["block"]["hasBias"].dtype == np.bool_ and bool(first["block"]["hasBias"])
    params = {p["name"]: p["value"] for p in net["params"]}
    assert len(params) == 79
    assert params["conv1_f"].shape == (3, 3, 1, 64) and params["conv1_f"].dtype == np.float32
    assert params["conv1_b"].shape == (64, 1)
    moments = [v for k, v in params.items() if v.ndim == 2 and v.shape[1] == 2]
    assert moments and all(m.shape == (64, 2) for m in moments)
    assert isinstance(net["meta"], np.ndarray) and net["meta"].size == 0
    assert len(net["vars"]) == 52


@needs_real
def test_v73_values_are_in_matlab_index_order():
    # h5py shows the reversed shape; read_mat must give MATLAB's a[h, w, cin, cout]
    path = real("cszn_DnCNN__DnCNN-epoch-50.mat")
    net = read_mat(path)["net"]
    value = next(p["value"] for p in net["params"] if p["name"] == "conv1_f")
    with h5py.File(path, "r") as f:
        ref = f["net"]["params"]["value"][()].reshape(-1)[0]
        raw = f[ref][()]  # (64, 1, 3, 3) = reversed
    assert raw.shape == (64, 1, 3, 3)
    for idx in [(0, 0, 0, 0), (2, 1, 0, 5), (1, 2, 0, 63)]:
        assert value[idx] == raw[tuple(reversed(idx))]


@needs_real
def test_v73_opaque_and_empty_struct_tolerated():
    net = read_mat(real("cszn_DnCNN__sigma25_Bnorm.mat"))["net"]
    assert net["meta"] == {}  # struct() stored as MATLAB_empty with dims [1 1]
    loss = net["layers"][-1]
    assert loss["type"] == "loss"
    assert isinstance(loss["class"], MatOpaque) and loss["class"].kind == "object"
    assert isinstance(net["layers"][0]["opts"], MatCell) and len(net["layers"][0]["opts"]) == 0


@needs_real
def test_function_handles_are_opaque():
    net = read_mat(real("brando90_MatConvNet_workspace__text-small_net-epoch-20.mat"))["net"]
    custom = [l for l in net["layers"] if l["type"] == "custom"][0]
    assert isinstance(custom["forward"], MatOpaque) and custom["forward"].kind == "function_handle"
    assert isinstance(custom["backward"], MatOpaque)


# --------------------------------------------------------------------------- writing
def _sample() -> dict:
    return {
        "single": np.arange(24, dtype=np.float32).reshape((2, 3, 4), order="F"),
        "double": np.array([[1.5, -2.0, np.nan]]),
        "ints": np.array([[1, -2], [3, 4]], dtype=np.int16),
        "u8": np.array([[7]], dtype=np.uint8),
        "logical": np.array([[True, False, True]]),
        "scalar_logical": np.array([[False]]),
        "text": "hello world",
        "empty_text": "",
        "char_matrix": ["ab", "cd"],
        "empty_double": np.zeros((0, 0)),
        "empty_single_0x3": np.zeros((0, 3), dtype=np.float32),
        "empty_cell": MatCell([]),
        "nested_cell": MatCell([MatCell(["x", np.ones((2, 2))], shape=(2, 1)), "y", np.zeros((0, 0)),
                                MatCell([])], shape=(2, 2)),
        "struct": {"a": np.array([[1.0]]), "b": {"c": "deep", "d": MatCell(["p", "q"])}, "e": {}},
        "empty_struct": {},
        "struct_array": MatStructArray(
            [{"name": "conv1", "inputs": MatCell(["x0"]), "value": np.ones((3, 3, 2, 4), dtype=np.float32),
              "flag": np.array([[True]])},
             {"name": "relu1", "inputs": MatCell(["x1", "label"]), "value": np.zeros((0, 0)),
              "flag": np.array([[False]])},
             {"name": "", "inputs": MatCell([]), "value": np.array([[2.0]]), "flag": np.array([[True]])}],
            shape=(1, 3)),
        "struct_array_2d": MatStructArray([{"v": np.array([[float(i)]])} for i in range(6)], shape=(2, 3)),
        "empty_struct_array": MatStructArray([], shape=(0, 0), fields=["name", "value"]),
    }


@pytest.mark.parametrize("version", ["7", "7.3"])
def test_round_trip(tmp_path, version):
    data = _sample()
    path = str(tmp_path / f"rt{version}.mat")
    write_mat(path, data, version=version)
    back = read_mat(path)
    assert list(back) == list(data)
    for k in data:
        assert mat_equal(back[k], data[k]), (k, back[k], data[k])
    assert mat_version(path) == ("7.3" if version == "7.3" else "5")


def test_round_trip_detects_differences():
    a = _sample()
    b = _sample()
    b["struct_array"][1]["flag"] = np.array([[1]], dtype=np.uint8)
    assert not mat_equal(a["struct_array"], b["struct_array"])
    assert not mat_equal(MatCell([1.0, 2.0], shape=(1, 2)), MatCell([1.0, 2.0], shape=(2, 1)))
    assert not mat_equal("ab", ["ab"])
    assert not mat_equal(np.zeros((2, 1)), np.zeros((1, 2)))


@needs_real
@pytest.mark.parametrize("name,version", [("cszn_DnCNN__DnCNN-epoch-50.mat", "7"),
                                          ("phoenix104104_LapSRN__LapSRN_x2.mat", "7.3"),
                                          ("Sunbaoli_DSR__x16_net-epoch-108.mat", "7.3")])
def test_real_files_round_trip(tmp_path, name, version):
    data = read_mat(real(name))
    path = str(tmp_path / "copy.mat")
    write_mat(path, data, version=version)
    back = read_mat(path)
    for k in data:
        assert mat_equal(back[k], data[k]), k


def test_v73_layout_matches_matlab(tmp_path):
    path = str(tmp_path / "layout.mat")
    write_mat(path, _sample(), version="7.3")
    with open(path, "rb") as fh:
        head = fh.read(520)
    assert head.startswith(b"MATLAB 7.3 MAT-file, Platform: ")
    assert b"HDF5 schema 1.00 ." in head[:116]
    assert head[124:128] == b"\x00\x02IM"
    assert head[512:520] == b"\x89HDF\r\n\x1a\n"
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        assert f["single"].attrs["MATLAB_class"] == b"single"
        assert f["single"].shape == (4, 3, 2)  # reversed MATLAB shape
        t = f["text"]
        assert t.dtype == np.uint16 and t.attrs["MATLAB_class"] == b"char" and t.attrs["MATLAB_int_decode"] == 2
        lg = f["logical"]
        assert lg.dtype == np.uint8 and lg.attrs["MATLAB_class"] == b"logical" and lg.attrs["MATLAB_int_decode"] == 1
        e = f["empty_single_0x3"]
        assert e.attrs["MATLAB_empty"] == 1 and list(e[()]) == [0, 3] and e.attrs["MATLAB_class"] == b"single"
        c = f["nested_cell"]
        assert c.attrs["MATLAB_class"] == b"cell" and c.dtype == h5py.ref_dtype
        assert f[c[0, 0]].name.startswith("/#refs#/")
        sa = f["struct_array"]
        assert isinstance(sa, h5py.Group) and sa.attrs["MATLAB_class"] == b"struct"
        assert [b"".join(x).decode() for x in sa.attrs["MATLAB_fields"]] == ["name", "inputs", "value", "flag"]
        assert sa["name"].dtype == h5py.ref_dtype and "MATLAB_class" not in sa["name"].attrs
        assert f["struct"].attrs["MATLAB_class"] == b"struct"
        assert f["empty_struct"].attrs["MATLAB_empty"] == 1


@needs_real
def test_v73_attribute_types_match_a_matlab_file(tmp_path):
    path = str(tmp_path / "mine.mat")
    write_mat(path, {"net": {"t": "abc", "flag": np.array([[True]]), "s": MatStructArray([{"a": 1.0}, {"a": 2.0}])}},
              version="7.3")
    with h5py.File(real("cszn_DnCNN__DnCNN-epoch-50.mat"), "r") as theirs, h5py.File(path, "r") as mine:
        t_net, m_net = theirs["net"], mine["net"]
        assert m_net.attrs["MATLAB_fields"].dtype == t_net.attrs["MATLAB_fields"].dtype
        assert h5py.check_vlen_dtype(m_net.attrs["MATLAB_fields"].dtype) == np.dtype("S1")
        t_char = next(theirs[r] for r in t_net["layers"]["type"][()].reshape(-1)[:1])
        assert mine["net"]["t"].dtype == t_char.dtype
        assert mine["net"]["t"].attrs["MATLAB_int_decode"].dtype == t_char.attrs["MATLAB_int_decode"].dtype
        assert mine["net"]["t"].attrs["MATLAB_class"].dtype.kind == t_char.attrs["MATLAB_class"].dtype.kind


def test_auto_version_switches_to_v73_above_threshold(tmp_path, monkeypatch):
    small = str(tmp_path / "small.mat")
    write_mat(small, {"a": np.ones((10, 10), dtype=np.float32)})
    assert mat_version(small) == "5"
    monkeypatch.setattr(matfile, "V73_THRESHOLD_BYTES", 100)
    big = str(tmp_path / "big.mat")
    write_mat(big, {"a": np.ones((10, 10), dtype=np.float32)})
    assert mat_version(big) == "7.3"
    assert mat_equal(read_mat(big)["a"], np.ones((10, 10), dtype=np.float32))


def test_write_is_atomic_and_cleans_up(tmp_path):
    path = tmp_path / "out.mat"
    write_mat(str(path), {"a": np.ones((2, 2))}, version="7")
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_mat(str(path), {"a": np.ones((2, 2)), "b": object()}, version="7.3")
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mat"]


def test_torch_tensors_are_written_as_arrays(tmp_path):
    import torch

    path = str(tmp_path / "t.mat")
    write_mat(path, {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, version="7")
    assert mat_equal(read_mat(path)["w"], np.arange(6, dtype=np.float32).reshape(2, 3))


# --------------------------------------------------------------------------- errors
def _one_line_naming(exc: pytest.ExceptionInfo, path) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_text_file_is_not_a_mat_file(tmp_path):
    path = tmp_path / "notes.mat"
    path.write_text("this is not a MATLAB file\n" * 20)
    with pytest.raises(MatFileError) as exc:
        read_mat(str(path))
    assert "not a MATLAB .mat file" in _one_line_naming(exc, path)


@pytest.mark.parametrize("content", [b"", b"MATLAB 5.0 MAT-file"])
def test_empty_or_header_only_files(tmp_path, content):
    path = tmp_path / "short.mat"
    path.write_bytes(content)
    with pytest.raises(MatFileError) as exc:
        read_mat(str(path))
    _one_line_naming(exc, path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MatFileError) as exc:
        read_mat(str(tmp_path / "nope.mat"))
    assert "not found" in _one_line_naming(exc, tmp_path / "nope.mat")
    with pytest.raises(MatFileError):
        read_mat(str(tmp_path))


@pytest.mark.parametrize("fraction", [0.3, 0.9])
def test_truncated_v7_file(tmp_path, fraction):
    data = open(os.path.join(REF_DIR, "simplenn_chain_a.mat"), "rb").read()
    path = tmp_path / "trunc.mat"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(MatFileError) as exc:
        read_mat(str(path))
    _one_line_naming(exc, path)


def test_truncated_v6_file(tmp_path):
    data = open(os.path.join(REF_DIR, "simplenn_small_v6.mat"), "rb").read()
    path = tmp_path / "trunc6.mat"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MatFileError) as exc:
        read_mat(str(path))
    _one_line_naming(exc, path)


def test_corrupt_compressed_data(tmp_path):
    data = bytearray(open(os.path.join(REF_DIR, "simplenn_chain_a.mat"), "rb").read())
    data[200:260] = b"\xff" * 60
    path = tmp_path / "corrupt.mat"
    path.write_bytes(bytes(data))
    with pytest.raises(MatFileError) as exc:
        read_mat(str(path))
    _one_line_naming(exc, path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_truncated_v73_file(tmp_path, fraction):
    src = str(tmp_path / "full73.mat")
    write_mat(src, _sample(), version="7.3")
    data = open(src, "rb").read()
    path = tmp_path / "trunc73.mat"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(MatFileError) as exc:
        read_mat(str(path))
    _one_line_naming(exc, path)


@needs_real
def test_truncated_real_v73_file(tmp_path):
    data = open(real("cszn_DnCNN__sigma25_Bnorm.mat"), "rb").read()
    path = tmp_path / "dncnn_trunc.mat"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MatFileError) as exc:
        read_mat(str(path))
    _one_line_naming(exc, path)
