"""Layer-by-layer parity with outputs computed by the ORIGINAL MatConvNet (+ MexConv3D).

For every fixture net (shared reference cases copied to fixtures/reference and our
own fixtures/generated, both computed by MatConvNet under Octave), every variable
of ``load_model(...).forward_vars(...)`` must match MatConvNet's value:

* fp32, ``lrn_mode="fast"`` (emulating MatConvNet's CPU pow approximation): every
  var within 1e-5 of the var's max |value|;
* fp32, ``lrn_mode="exact"`` (the default; MatConvNet's GPU LRN): vars before any
  LRN within 1e-5, at/after an LRN within the CPU approximation's error
  (1.5e-3 + 3.2e-3 * beta per LRN on the path: 3.9e-3 after one LRN of the usual beta 0.75);
* fp64: the same bounds (the references are single precision).
"""
from __future__ import annotations

import os

import pytest
import torch

from parity_utils import (RTOL_FP32, fixture_files, load, load_case, reference_scale, relative_error, run_case,
                          var_failures)

FILES = fixture_files()


def _ids(paths):
    return [os.path.relpath(p, os.path.dirname(os.path.dirname(p))) for p in paths]


def test_fixtures_present():
    names = {os.path.basename(p) for p in FILES}
    for required in ("simplenn_chain_a.mat", "dagnn_misc_a.mat", "fusion_twostream_vgg16narrow_a.mat",
                     "simplenn_legacy_filters_biases.mat", "simplenn_small_v6.mat", "simplenn_small_v7.mat",
                     "simplenn_chain_b.mat"):
        assert required in names


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
@pytest.mark.parametrize("lrn_mode", ["fast", "exact"])
def test_every_var_matches_matconvnet(path, lrn_mode):
    case = load_case(path)
    model = load(path, lrn_mode=lrn_mode)
    values = run_case(case, model)
    checked, failures = var_failures(case, model, values, lrn_mode)
    assert checked >= 1
    assert not failures, "; ".join(failures)


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_float64_mode(path):
    case = load_case(path)
    model = load(path, dtype=torch.float64, lrn_mode="fast")
    values = run_case(case, model)
    for name, ref in case.expected.items():
        if name in model.label_vars:
            continue
        assert values[name].dtype == torch.float64 or name in case.inputs
        assert relative_error(values[name], ref, reference_scale(case, model, name)) <= RTOL_FP32, name


@pytest.mark.parametrize("path", FILES, ids=_ids(FILES))
def test_converted_file_gives_identical_outputs(path, tmp_path):
    from matconv_port.convert import convert_file

    case = load_case(path)
    out = convert_file(path, str(tmp_path / "net.pt"), log=lambda m: None)
    direct = run_case(case, load(path))
    converted = run_case(case, load(out))
    assert set(direct) == set(converted)
    for name in direct:
        assert torch.equal(direct[name], converted[name]), name
