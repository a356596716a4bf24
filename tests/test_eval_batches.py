"""Batch assembly against the ORIGINAL getBatch code.

``fixtures/sampling/batches.mat`` holds ``imo`` arrays computed by the original
``cnn_ucf101_get_im_flow_batch.m`` / ``_frame_batch.m`` / ``_flow_batch.m`` under
Octave (see ``export_sampling_cases.m``) on synthetic images from a stand-in
``vl_imreadjpeg``: a 10 x 13 image per file whose pixels encode the file (formula
below, same as the stand-in), with a small net input size (7 x 7) so that crop boxes
and dense feeding are exercised on small arrays. ``files`` lists the files read, in
order. Here the same clips are assembled by :func:`assemble_clip` and compared.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import scipy.io as sio

from matconv_port.eval.batches import Normalization, assemble_clip, dense_size
from matconv_port.eval.plan import Clip, crop_boxes

HERE = os.path.dirname(__file__)
MAT = os.path.join(HERE, "..", "fixtures", "sampling", "batches.mat")


def _load():
    m = sio.loadmat(MAT, squeeze_me=False)
    b = m["batches"][0, 0]
    h, w = (int(v) for v in m["image_size"].ravel())
    out = {}
    for name in b.dtype.names:
        s = b[name][0, 0]
        out[name] = {
            "imo": s["imo"],
            "files": [str(f.ravel()[0]) for f in s["files"].ravel()],
            "avg": s["averageImage"].ravel().astype(np.float32),
            "size": int(s["imageSize"].ravel()[0]),
            "crops": int(s["numAugments"].ravel()[0]) if str(s["augmentation"].ravel()[0]) == "uniform" else 0,
        }
    return out, (h, w)


CASES, (H, W) = _load()
_y, _x = np.mgrid[1:H + 1, 1:W + 1]


def synth_rgb(f: int) -> np.ndarray:
    return np.stack([np.mod(13 * f + 50 * c + 7 * _y + 3 * _x, 256) for c in (1, 2, 3)], axis=-1).astype(np.uint8)


def synth_flow(axis: str, f: int) -> np.ndarray:
    if axis == "u":
        return np.mod(11 * f + 5 * _y + 2 * _x + 100, 256).astype(np.uint8)
    return np.mod(17 * f + 3 * _y + 9 * _x + 30, 256).astype(np.uint8)


def _parse(files):
    out = []
    for p in files:
        f = int(re.search(r"frame(\d+)\.jpg$", p).group(1))
        kind = "u" if p.startswith("F/u/") else "v" if p.startswith("F/v/") else "r"
        out.append((kind, f))
    return out


def _samples(case, per_sample):
    parsed = _parse(case["files"])
    assert len(parsed) % per_sample == 0
    groups = [parsed[i:i + per_sample] for i in range(0, len(parsed), per_sample)]
    result = []
    for g in groups:
        flow = [f for k, f in g if k in "uv"]
        assert [k for k, _ in g if k in "uv"] == ["u", "v"] * (len(flow) // 2)
        rgb = [f for k, f in g if k == "r"]
        result.append((rgb[0] if rgb else None, tuple(flow)))
    return result


@pytest.mark.parametrize("name", sorted(CASES))
def test_assembly_matches_original(name):
    case = CASES[name]
    imo = case["imo"]  # H x W x C x 1 x entries
    stream = name.split("_")[0]
    avg = case["avg"]
    if stream == "fused":
        norm = Normalization(avg[-3:], avg[:-3], (case["size"], case["size"]))
        per = 21
    elif stream == "rgb":
        norm = Normalization(avg, None, (case["size"], case["size"]))
        per = 1
    else:
        norm = Normalization(None, avg, (case["size"], case["size"]))
        per = 20
    samples = _samples(case, per)
    boxes = crop_boxes(case["crops"], H, W, case["size"]) if case["crops"] else [None]
    entry = 0
    for rgb_frame, stack in samples:
        frames = (rgb_frame,) if rgb_frame is not None else (stack[0] + 5,)
        for box in boxes:
            for flip in (False, True):
                clip = Clip(frames, (stack,) if stack else (), flip, box)
                rgb, flow = assemble_clip(clip, synth_rgb if norm.rgb_mean is not None else None,
                                          synth_flow if norm.flow_mean is not None else None, norm)
                parts = [a[0] for a in (flow, rgb) if a is not None]  # flow channels before RGB
                got = np.concatenate(parts, axis=0)
                want = np.transpose(imo[:, :, :, 0, entry], (2, 0, 1))
                np.testing.assert_array_equal(got, want, err_msg=f"{name}: entry {entry + 1} (flip={flip}, crop={box})")
                entry += 1
    assert entry == imo.shape[4]


def test_u_inverted_on_flip_only():
    norm = Normalization(None, np.zeros(20, np.float32), (7, 7))
    stack = tuple(k for f in range(1, 11) for k in (f, f))
    _, a = assemble_clip(Clip((6,), (stack,), False, None), None, synth_flow, norm)
    _, b = assemble_clip(Clip((6,), (stack,), True, None), None, synth_flow, norm)
    np.testing.assert_array_equal(b[0, 0::2], 255 - a[0, 0::2, :, ::-1])
    np.testing.assert_array_equal(b[0, 1::2], a[0, 1::2, :, ::-1])


def test_dense_size_no_resize_for_stored_frames():
    assert dense_size(256, 340, (224, 224)) == (256, 340)
    assert dense_size(100, 500, (224, 224)) == (224, 448)
