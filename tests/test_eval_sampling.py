"""Sampling rules against what the ORIGINAL MATLAB code selects.

``fixtures/sampling/cases.json.gz`` was written by
``fixtures/sampling/export_sampling_cases.m``, which CALLS the original
``cnn_ucf101_get_im_flow_batch.m`` (fusion), ``cnn_ucf101_get_frame_batch.m`` (RGB)
and ``cnn_ucf101_get_flow_batch.m`` (flow) under GNU Octave 7.3 (image package
padarray, VLFeat vl_colsubset), for 518 video lengths from 11 to 1800 frames, with
the options the validation branch of ``cnn_train_dag.m`` passes. The file names each
call would read were parsed into 1-based frame numbers (``frames``: rows = entries
per sample in read order, ``kinds`` u/v/r). Where the original draws ``s = randi(M)``
the exporter replaced ``randi`` by a stand-in returning each ``r = 1..M`` in turn, so
``windows`` lists every selection the original can make, in the order of ``r``.
"""
from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

from matconv_port.eval.sampling import (
    TooShortError,
    flow_stack,
    flow_uniform_candidates,
    fusion_candidates,
    rgb_uniform_candidates,
)

HERE = os.path.dirname(__file__)
CASES = os.path.join(HERE, "..", "fixtures", "sampling", "cases.json.gz")


def _cases():
    with gzip.open(CASES, "rt") as f:
        return json.load(f)["cases"]


ALL = _cases()
RULES = {"fusion": fusion_candidates, "rgb": rgb_uniform_candidates, "flow": flow_uniform_candidates}


def test_fixture_covers_short_exact_and_long_videos():
    fusion = [c for c in ALL if c["protocol"] == "fusion"]
    ns = {c["n"] for c in fusion}
    assert min(ns) == 11 and max(ns) >= 1776
    assert any(c["randi_max"] > 1 for c in fusion)          # long videos: random window
    assert any(c["randi_max"] == 0 for c in fusion)
    assert any(c["randi_max"] > 1 for c in ALL if c["protocol"] == "rgb")


@pytest.mark.parametrize("protocol", ["fusion", "rgb", "flow"])
def test_windows_match_original(protocol):
    mismatches = []
    for c in (c for c in ALL if c["protocol"] == protocol):
        cand = RULES[protocol](c["n"])
        if c["randi_max"]:
            want = [list(map(int, np.ravel(w))) for w in c["windows"]]
            got = cand.windows()
        else:
            want, got = [1], [1] if cand.deterministic else [len(cand.starts)]
        if want != got:
            mismatches.append(c["n"])
    assert not mismatches, f"{protocol}: windows differ for n = {mismatches[:10]}"


@pytest.mark.parametrize("protocol", ["fusion", "rgb", "flow"])
def test_frames_and_flow_stacks_match_original(protocol):
    expected_kinds = {"fusion": "uv" * 10 + "r", "rgb": "r", "flow": "uv" * 10}[protocol]
    mismatches = []
    for c in (c for c in ALL if c["protocol"] == protocol):
        assert c["kinds"] == expected_kinds  # u1 v1 ... u10 v10 (then RGB) as the original reads them
        cand = RULES[protocol](c["n"])
        samples = cand.window(cand.starts[0])  # the exporter's first call used r = 1
        rows = []
        for f in samples:
            row = flow_stack(f) if "u" in expected_kinds else []
            rows.append(row + ([f] if "r" in expected_kinds else []))
        got = np.array(rows).T
        want = np.array(c["frames"]).reshape(got.shape[0], -1)
        if got.shape != want.shape or (got != want).any():
            mismatches.append(c["n"])
    assert not mismatches, f"{protocol}: frames differ for n = {mismatches[:10]}"


def test_flow_stack_channel_order():
    # u_{f-5}, v_{f-5}, ..., u_{f+4}, v_{f+4}: offsets -5..4 (frameOffsets = -5:4)
    s = flow_stack(6)
    assert s[:4] == [1, 1, 2, 2] and s[-2:] == [10, 10] and len(s) == 20


def test_too_short_videos_are_refused():
    # 6:n-5 is empty below 11 frames; the original would read flow frame 0
    for rule in (fusion_candidates, flow_uniform_candidates):
        with pytest.raises(TooShortError):
            rule(10)
        rule(11)
    assert rgb_uniform_candidates(3).values == (1, 2, 3, 3, 2, 1, 1, 2, 3, 3, 2, 1, 1, 2, 3, 3, 2, 1, 1, 2, 3, 3, 2, 1, 1)
