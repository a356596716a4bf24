"""Which frames the original evaluation code samples from a video of ``n`` RGB frames.

Each rule reproduces one branch of the original MATLAB getBatch functions, with
MATLAB arithmetic (:mod:`matconv_port.eval.matlab`). Frame numbers are MatConvNet's:
1-based RGB frame numbers (``frame%06d.jpg``); flow frame ``k`` is the motion from RGB
frame ``k`` to ``k+1`` (``n-1`` flow frames).

A rule returns :class:`Candidates`: the candidate list the original builds and the
windows of ``num`` consecutive candidates it may pick. Where the original draws
``randi`` at test time (more candidates than samples) every window it could pick is
listed, so callers choose among exactly those.

Rules
-----
* :func:`fusion_candidates`: ``cnn_ucf101_get_im_flow_batch`` with
  ``frameSample='temporalStride'`` as the validation branch of ``cnn_train_dag``
  sets it for the fusion net (``nFramesPerVid = numValFrames = 50``,
  ``nFrameStack = 5``, ``temporalStride = max(5:15) = 15``, stack of 20 flow
  channels). Candidates ``6:15:n-5``; fewer than 5 -> ``round(linspace(6, n-5, 5))``;
  fewer than 50 -> the original padding loop; more than 50 -> window
  ``(s+1):(s+50)`` with ``s = randi(len-50)`` (so the window starting at the first
  candidate is never chosen).
* :func:`rgb_uniform_candidates`: ``cnn_ucf101_get_frame_batch`` with
  ``frameSample='uniformly'``: ``1:max(floor(n/25),1):n``; fewer -> symmetric
  post-padding; more -> window ``s:(s+24)``, ``s = randi(len-25)`` (the last
  possible window is never chosen).
* :func:`flow_uniform_candidates`: ``cnn_ucf101_get_flow_batch`` with
  ``frameSample='uniformly'``: ``vl_colsubset(6:n-5, 25, 'uniform')``, padded
  symmetrically when shorter; deterministic.
* :func:`flow_stack`: flow frames ``f-5 .. f+4`` stacked for a sample at RGB frame
  ``f`` (20 channels, u and v interleaved).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from matconv_port.eval.matlab import colon, colsubset_uniform, linspace, mround, padarray_symmetric_post

__all__ = [
    "Candidates",
    "fusion_candidates",
    "rgb_uniform_candidates",
    "flow_uniform_candidates",
    "flow_stack",
    "min_frames_for_flow",
    "TooShortError",
]


class TooShortError(ValueError):
    """The video has too few frames for the rule (the original would read frame 0)."""


@dataclass(frozen=True)
class Candidates:
    """Candidate frame numbers and the windows of ``num`` of them the original may use.

    ``starts`` are 0-based offsets into ``values``; ``window(s)`` is
    ``values[s:s+num]``. A deterministic rule has exactly one start.
    """

    values: tuple[int, ...]
    num: int
    starts: tuple[int, ...] = field(default=(0,))

    @property
    def deterministic(self) -> bool:
        return len(self.starts) == 1

    def window(self, start: int) -> list[int]:
        if start not in self.starts:
            raise ValueError(f"window start {start} is not one the original can pick")
        return list(self.values[start:start + self.num])

    def windows(self) -> list[list[int]]:
        return [self.window(s) for s in self.starts]


def min_frames_for_flow(stack: int = 20) -> int:
    """Fewest RGB frames a flow-stack rule can read: ``stack/2 + 1`` (11 for 20 channels)."""
    return stack // 2 + 1


def _check_stack(stack: int) -> int:
    if stack <= 0 or stack % 4:
        raise ValueError(f"flow stack of {stack} channels: must be a positive multiple of 4")
    return stack // 4


def fusion_candidates(n: int, num: int = 50, stride: int = 15, clip_len: int = 5, stack: int = 20) -> Candidates:
    """Samples of the fusion net's test-time rule (``get_im_flow_batch``, temporalStride).

    ``n`` RGB frames; ``num`` samples (``numValFrames``); ``stride`` the temporal
    stride; ``clip_len`` the frames per clip (``nFrameStack``); ``stack`` the flow
    channels (``imageSize(3)``). Raises :class:`TooShortError` for ``n < stack/2+1``.
    """
    h = _check_stack(stack)
    if n < 2 * h + 1:
        raise TooShortError(f"{n} frames; needs at least {2 * h + 1}")
    fs = colon(h + 1, stride, n - h)
    if len(fs) < clip_len:
        fs = [mround(v) for v in linspace(h + 1, n - h, clip_len)]
        stride = fs[1] - fs[0] if len(fs) > 1 else stride
    fs = pad_samples(fs, n, num, stride, clip_len, h)
    if len(fs) > num:
        # s = randi(len-num) in 1..len-num; frameSamples(s+1:s+num) -> 0-based start s
        starts = tuple(range(1, len(fs) - num + 1))
    else:
        starts = (0,)
    return Candidates(tuple(fs), num, starts)


def pad_samples(fs: list[int], n: int, num: int, stride: int, clip_len: int, h: int) -> list[int]:
    """The padding loop of ``cnn_ucf101_get_im_flow_batch`` (shared by its training and
    test branches): with fewer than ``num`` samples, cut to whole clips, then append
    stride-spaced runs alternately from the end and from the start (whole clips each),
    the stride shrinking by 1 per pass; after 20 passes ``round(linspace(...))`` runs.
    ``h`` = flow frames on each side of a sample (stack / 4)."""
    if len(fs) >= num:
        return list(fs)
    if len(fs) > clip_len:
        fs = fs[: len(fs) - len(fs) % clip_len]
    diff = num - len(fs)
    passes = 0
    while diff > 0:
        if passes % 2:  # from the start
            add = colon(h + 1, stride, n - h)
            add = add[: len(add) - len(add) % clip_len]
            if len(add) > diff:
                add = add[:diff]
        else:  # from the end
            add = colon(n - h, -stride, h + 1)[::-1]
            add = add[len(add) % clip_len:]
            if len(add) > diff:
                add = add[len(add) - diff:]
        if passes > 20:
            add = [mround(v) for v in linspace(h + 1, n - h, clip_len)]
        fs = fs + add
        diff = num - len(fs)
        stride = max(int(math.ceil(stride - 1)), 1)
        passes += 1
    return list(fs)


def rgb_uniform_candidates(n: int, num: int = 25) -> Candidates:
    """Samples of the RGB net's test-time rule (``get_frame_batch``, 'uniformly')."""
    if n < 1:
        raise TooShortError(f"{n} frames; needs at least 1")
    rate = max(n // num, 1)
    fs = colon(1, rate, n)
    starts: tuple[int, ...] = (0,)
    if len(fs) < num:
        fs = padarray_symmetric_post(fs, num - len(fs))
    elif len(fs) > num:
        # s = randi(len-num) in 1..len-num; frameSamples(s:s+num-1) -> 0-based start s-1
        starts = tuple(range(0, len(fs) - num))
    return Candidates(tuple(fs), num, starts)


def flow_uniform_candidates(n: int, num: int = 25, stack: int = 20) -> Candidates:
    """Samples of the flow net's test-time rule (``get_flow_batch``, 'uniformly')."""
    h = _check_stack(stack)
    if n < 2 * h + 1:
        raise TooShortError(f"{n} frames; needs at least {2 * h + 1}")
    fs = colsubset_uniform(colon(h + 1, 1, n - h), num)
    if len(fs) < num:
        fs = padarray_symmetric_post(fs, num - len(fs))
    return Candidates(tuple(fs), num, (0,))


def flow_stack(frame: int, stack: int = 20) -> list[int]:
    """Flow frame numbers in channel order for a sample at RGB frame ``frame``.

    Channels are ``u_{f-h}, v_{f-h}, u_{f-h+1}, v_{f-h+1}, ..., u_{f+h-1}, v_{f+h-1}``
    with ``h = stack/4``; each number therefore appears twice (u then v).
    """
    h = _check_stack(stack)
    out: list[int] = []
    for off in range(-h, h):
        out += [frame + off, frame + off]
    return out
