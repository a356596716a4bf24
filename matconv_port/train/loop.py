"""The training loop of ``cnn_train_dag.m`` with the recipes of ``cnn_ucf101_*.m``.

Per epoch ``e`` (1-based): learning rate ``learning_rate[min(e, len) - 1]``; the
training list is the split's training videos repeated ``epoch_factor`` times, shuffled
(a fresh permutation per epoch); momentum reset to zero (as ``process_epoch`` does).
Per batch of ``batch_size`` videos: ``num_sub_batches`` sub-batches, sub-batch ``s``
of process ``r`` (of ``W``) taking videos ``t + r + s*W :: num_sub_batches*W`` of the
batch (MatConvNet's interleaving); each is sampled, augmented, run forward in training
mode (dropout on, batch-norm batch statistics) and back-propagated from every
objective loss (weight 1), gradients SUMMED over sub-batches and processes; then one
:class:`~matconv_port.train.optim.MatConvNetSGD` step with ``N`` = the batch's videos.

Backprop depth (``net.backpropDepth``): only layers AFTER the named layer in DagNN's
execution order are back-propagated; the params of the others keep their values
(they run without autograd).

Checkpoints: ``EXPDIR/net-epoch-N.pt`` after each epoch (atomic): a converted-model
file (``load_model`` reads it) plus ``train`` = optimizer state, stats, options and
RNG state; ``net-final.pt`` at the end. A rerun resumes after the last checkpoint
(``opts.continue``). All randomness (shuffles, sampling, dropout) is drawn from
generators seeded by ``(seed, epoch, batch, sub-batch)``, so a resumed run reaches
the same parameters as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from matconv_port.errors import MatConvPortError
from matconv_port.precision import precision_scope
from matconv_port.train.data import BatchAssembler, TrainVideo, frame_size, to_device
from matconv_port.train.distributed import (
    DistInfo,
    all_reduce_stats,
    all_reduce_sum,
    barrier,
    init_distributed,
)
from matconv_port.train.logging import IterationLog, format_iteration, plot_curves, write_stats_json
from matconv_port.train.optim import (
    MatConvNetSGD,
    matconvnet_param_groups,
    moments_params,
)
from matconv_port.train.sampling import TEMPORAL_STRIDES, ClipPlan, plan_sub_batch

CHECKPOINT_KEY = "train"

class TrainOutOfMemory(MatConvPortError):
    """The device ran out of memory during training: names the options that lower it."""


def _out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` is (or was raised from) a CUDA/device out-of-memory error; a
    layer's failure is re-raised as a ShapeError whose cause is the OOM."""
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, oom):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


@dataclass
class TrainOptions:
    """Every knob of the recipe (``opts.train`` of the original scripts)."""

    kind: str  # "rgb" | "flow" | "fusion"
    data_root: str
    out: str
    split: int = 1
    dataset: str = "ucf101"
    splits_dir: str | None = None
    learning_rate: list[float] = field(default_factory=lambda: [1e-3, 1e-3, 1e-4, 1e-5, 1e-6])
    num_epochs: int | None = None  # default: len(learning_rate)
    epoch_factor: int = 10
    batch_size: int = 96
    num_sub_batches: int = 96
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.85
    backprop_depth: str | None = None
    #: apply backprop_depth only in the first N epochs, then back-propagate everything
    #: (the original's cell-array form, e.g. ``{'layer37','layer37','layer37'}``); None: always
    backprop_depth_epochs: int | None = None
    augmentation: str = "noCtr"
    frames_per_clip: int = 5
    temporal_strides: list[int] = field(default_factory=lambda: list(TEMPORAL_STRIDES))
    reset_momentum_each_epoch: bool = True
    seed: int = 0
    resume: bool = True
    validate: bool = True
    val_frames: int = 3
    final_eval: bool = True
    save_matconvnet: bool = False
    #: numerics policy of every training/validation forward and backward
    #: (:mod:`matconv_port.precision`: exact | tf32 | bf16); None: exact, or bf16 with ``amp``
    precision: str | None = None
    #: the old spelling of ``precision="bf16"`` (``--amp``)
    amp: bool = False
    device: str = "cpu"
    cache_frames: int = 0
    threads: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        from matconv_port.precision import resolve_precision

        self.precision = resolve_precision(self.precision, amp=self.amp).name
        self.amp = self.precision == "bf16"  # the alias, kept consistent (printed, saved with checkpoints)

    def depth_for_epoch(self, epoch: int) -> str | None:
        if self.backprop_depth_epochs is not None and epoch > self.backprop_depth_epochs:
            return None
        return self.backprop_depth

    def lr_for_epoch(self, epoch: int) -> float:
        return float(self.learning_rate[min(epoch, len(self.learning_rate)) - 1])

    @property
    def epochs(self) -> int:
        return int(self.num_epochs or len(self.learning_rate))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def describe_options(opts: TrainOptions) -> str:
    """The options as printed at start (one ``name: value`` per line)."""
    return "\n".join(f"  {k}: {v}" for k, v in opts.as_dict().items())


# ----------------------------------------------------------------------------- checkpoints
def checkpoint_path(out: str, epoch: int) -> str:
    return os.path.join(out, f"net-epoch-{epoch}.pt")


def find_last_checkpoint(out: str) -> int:
    """Highest ``N`` of ``net-epoch-N.pt`` in ``out`` (0 if none), as ``findLastCheckpoint``."""
    best = 0
    for path in glob.glob(os.path.join(out, "net-epoch-*.pt")):
        m = re.fullmatch(r"net-epoch-(\d+)\.pt", os.path.basename(path))
        if m:
            best = max(best, int(m.group(1)))
    return best


def save_checkpoint(path: str, model, optimizer: MatConvNetSGD, stats: dict, opts: TrainOptions, epoch: int) -> None:
    from matconv_port.serialization import atomic_torch_save, model_payload

    payload = model_payload(model)
    payload[CHECKPOINT_KEY] = {"epoch": int(epoch), "optimizer": optimizer.state_dict(),
                               "stats": json.loads(json.dumps(stats)), "options": opts.as_dict(),
                               "torch_rng": torch.get_rng_state()}
    atomic_torch_save(payload, path)


def load_checkpoint_into(path: str, model, optimizer: MatConvNetSGD | None) -> dict:
    """Copy a checkpoint's params into ``model`` (and optimizer state); return its ``train`` dict."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MatConvPortError(f"{path}: unreadable checkpoint ({type(exc).__name__})") from None
    state = payload.get(CHECKPOINT_KEY) if isinstance(payload, dict) else None
    if state is None:
        raise MatConvPortError(f"{path}: not a matconv-port training checkpoint")
    params = payload["params"]
    with torch.no_grad():
        for name, p in model.named_matconvnet_params():
            if name not in params or tuple(params[name].shape) != tuple(p.shape):
                raise MatConvPortError(f"{path}: param {name!r} missing or of another shape; is --out the right folder?")
            p.copy_(params[name].to(p.dtype))
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    return state


# ----------------------------------------------------------------------------- net plumbing
def trainable_param_names(model, backprop_depth: str | None) -> set[str]:
    """Params of the layers back-propagated with ``backpropDepth = backprop_depth``."""
    order = model.execution_order
    if backprop_depth:
        names = [model.layer_specs[i].name for i in order]
        if backprop_depth not in names:
            raise MatConvPortError(f"backprop depth: the net has no layer {backprop_depth!r}")
        after = order[names.index(backprop_depth) + 1:]
    else:
        after = order
    return {p for i in after for p in model.layer_specs[i].params}


def objective_layers(model) -> list[int]:
    """Indices of loss layers that are objectives (``derOutputs``): not error counters."""
    out = []
    for i, l in enumerate(model.layer_specs):
        if l.type == "dagnn.Loss" and "err" not in str(l.block.get("loss", "")) and "err" not in l.name:
            out.append(i)
    return out


def _head_name(model, li: int) -> str:
    return model.layer_specs[li].name


def _keep_vars(model) -> set[str]:
    keep = set(model.all_input_vars)
    for l in model.layer_specs:
        if l.type == "dagnn.Loss":
            keep.update(l.inputs[:1])
            keep.update(l.outputs)
    return keep


def run_net(model, inputs: dict[str, torch.Tensor], num_videos: int, training: bool, frozen_upto: int,
            amp: bool = False, conserve_memory: bool = True):
    """Forward in DagNN order (the model's executor); layers up to ``frozen_upto``
    (position in the execution order) run without autograd (and a ReLU whose input dies
    there runs in place). Vars are dropped after their last reader (except net inputs,
    predictions and losses) unless ``conserve_memory`` is False. Returns (vars, context
    with batch moments)."""
    device_type = model.device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=amp):
        return model.execute(inputs, num_videos, training=training, frozen_upto=frozen_upto,
                             keep=_keep_vars(model) if conserve_memory else None)


def forward_backward(model, inputs: dict[str, torch.Tensor], num_videos: int, frozen_upto: int,
                     objectives: list[int], amp: bool = False, precision: str | None = None):
    """One MatConvNet ``net.eval(inputs, derOutputs)`` in training mode: forward, then
    back-propagate the sum of the objective losses (each with weight 1), ADDING to the
    params' ``.grad`` (gradient accumulation over sub-batches). Returns (vars, context,
    ``{loss layer index: loss value}``).

    ``precision`` (:mod:`matconv_port.precision`; ``amp`` = ``bf16``): the forward runs
    under its :func:`~matconv_port.precision.precision_scope` (autocast for bf16), the
    backward under the same TF32 policy without autocast (autograd replays the
    forward's dtypes), as PyTorch's AMP recipe does."""
    from matconv_port.precision import resolve_precision

    p = resolve_precision(precision, amp=amp)
    device_type = model.device.type
    with precision_scope(p, device_type):
        # run_net's own autocast(enabled=amp) would switch an outer autocast off: tell it
        values, ctx = run_net(model, inputs, num_videos, True, frozen_upto, amp=p.autocast_dtype is not None)
    total = None
    heads: dict[int, float] = {}
    for li in objectives:
        out = model.layer_specs[li].outputs[0]
        if out not in values:
            continue
        obj = values[out].float().sum()
        heads[li] = float(obj.detach())
        total = obj if total is None else total + obj
    if total is not None and total.requires_grad:
        with precision_scope("tf32" if p.tf32 else "exact", device_type):
            total.backward()
    return values, ctx, heads


def video_scores(pred: torch.Tensor, num_videos: int) -> torch.Tensor:
    """Class scores per video: predictions averaged over space and the video's frames."""
    n, c = pred.shape[0], pred.shape[1]
    return pred.detach().float().reshape(num_videos, n // num_videos, c, -1).mean(dim=(1, 3))


def errors(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Top-1 and top-5 error COUNTS (labels 1-based)."""
    lab = labels.reshape(-1).long().to(scores.device) - 1
    k = min(5, scores.shape[1])
    top = torch.topk(scores, k, dim=1).indices
    err1 = float((top[:, 0] != lab).sum())
    err5 = float((~(top == lab[:, None]).any(dim=1)).sum())
    return err1, err5


class _Running:
    """Running sums of a mode's statistics (MatConvNet's ``block.average`` per loss)."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def add(self, key: str, value: float, count: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value
        self.counts[key] = self.counts.get(key, 0.0) + count

    def vector(self, keys: list[str]) -> torch.Tensor:
        return torch.tensor([v for k in keys for v in (self.sums.get(k, 0.0), self.counts.get(k, 0.0))], dtype=torch.float64)

    def load_vector(self, keys: list[str], vec: torch.Tensor) -> None:
        for i, k in enumerate(keys):
            self.sums[k], self.counts[k] = float(vec[2 * i]), float(vec[2 * i + 1])

    def averages(self) -> dict[str, float]:
        return {k: self.sums[k] / max(self.counts[k], 1e-12) for k in self.sums}


def _sub_seed(seed: int, *parts: int) -> list[int]:
    return [int(seed) & 0x7FFFFFFF] + [int(p) for p in parts]


def _torch_seed(seed: int, *parts: int) -> int:
    return int(np.random.default_rng(_sub_seed(seed, *parts)).integers(0, 2 ** 62))


# ----------------------------------------------------------------------------- the loop
class Trainer:
    """Runs :class:`TrainOptions` on a :class:`~matconv_port.network.MatConvNetModel`."""

    def __init__(self, model, opts: TrainOptions, *, log: Callable[[str], None] = print,
                 dist_info: DistInfo | None = None):
        self.opts = opts
        self.info = dist_info or init_distributed(opts.device)
        self.model = model.to(self.info.device)
        self.log = log if self.info.is_main else (lambda s: None)
        from matconv_port.train.data import split_videos

        self.classes, self.train_videos = split_videos(opts.data_root, opts.split, opts.dataset, opts.splits_dir, "train")
        self.val_videos: list[TrainVideo] = []
        if opts.validate:
            _, self.val_videos = split_videos(opts.data_root, opts.split, opts.dataset, opts.splits_dir, "test")
        self.frame_hw = frame_size(opts.data_root, self.train_videos[0].name)
        norm = (model.meta.get("normalization") or {}) if isinstance(model.meta, dict) else {}
        size = np.asarray(norm.get("imageSize", [224, 224]), dtype=float).ravel()
        self.image_size = (int(size[0]), int(size[1]))
        self.input_names = self._input_names()
        self.asm = BatchAssembler(opts.data_root, opts.kind, model.meta, self.input_names, cache=opts.cache_frames,
                                  threads=opts.threads, pin_memory=self.info.device.type == "cuda")
        self.objectives = objective_layers(model)
        if not self.objectives:
            raise MatConvPortError("the net has no loss layer to train (dagnn.Loss with softmaxlog)")
        # every param is in the optimizer; those not back-propagated get no gradient and
        # are skipped by the update, as MatConvNet skips params with an empty der
        self._set_depth(opts.depth_for_epoch(1))
        self.optimizer = MatConvNetSGD(matconvnet_param_groups(model), lr=opts.lr_for_epoch(1),
                                       momentum=opts.momentum, weight_decay=opts.weight_decay)
        self.stats: dict[str, list] = {"train": [], "val": []}

    def _set_depth(self, depth: str | None) -> None:
        """``net.backpropDepth = depth``: which params get gradients, where autograd starts."""
        model = self.model
        self.trainable = trainable_param_names(model, depth)
        self.moments = moments_params(model) & self.trainable
        names = [model.layer_specs[i].name for i in model.execution_order]
        self.frozen_upto = names.index(depth) if depth else -1
        for name, p in model.named_matconvnet_params():
            p.requires_grad_(name in self.trainable and name not in self.moments)

    def _input_names(self) -> dict[str, str]:
        ins = self.model.input_vars
        if self.opts.kind == "fusion":
            if "input" not in ins or "input_flow" not in ins:
                raise MatConvPortError(f"a fused net needs inputs 'input' and 'input_flow'; this one has {ins}")
            return {"rgb": "input", "flow": "input_flow"}
        if len(ins) != 1:
            raise MatConvPortError(f"a single-stream net needs one input; this one has {ins}")
        return {self.opts.kind: ins[0]}

    # ------------------------------------------------------------------ epochs
    def fit(self) -> dict:
        opts = self.opts
        if self.info.is_main:
            os.makedirs(opts.out, exist_ok=True)
        barrier(self.info)
        start = find_last_checkpoint(opts.out) if opts.resume else 0
        if start >= 1:
            self.log(f"resuming by loading epoch {start}")
            state = load_checkpoint_into(checkpoint_path(opts.out, start), self.model, self.optimizer)
            self.stats = state.get("stats") or self.stats
            saved = state.get("options") or {}
            ignore = {"resume", "progress", "device", "threads", "num_epochs", "final_eval", "cache_frames",
                      "precision", "amp"}
            changed = [k for k, v in opts.as_dict().items() if k not in ignore and k in saved and saved[k] != v]
            if changed:
                self.log(f"warning: resuming with options that differ from the checkpoint's: {', '.join(changed)}")
        for epoch in range(start + 1, opts.epochs + 1):
            with self._oom_guard("training", epoch):
                tr = self.train_epoch(epoch)
            self.stats["train"].append(tr)
            if opts.validate and self.val_videos:
                with self._oom_guard("validating", epoch):
                    self.stats["val"].append(self.validate_epoch(epoch))
            if self.info.is_main:
                if opts.save_matconvnet:  # before the .pt: a checkpoint implies its .mat
                    self._save_matconvnet(os.path.join(opts.out, f"net-epoch-{epoch}.mat"))
                save_checkpoint(checkpoint_path(opts.out, epoch), self.model, self.optimizer, self.stats, opts, epoch)
                write_stats_json(os.path.join(opts.out, "stats.json"), self.stats)
                try:
                    plot_curves(os.path.join(opts.out, "net-train.png"), self.stats)
                except Exception as exc:  # a plot must not stop training
                    self.log(f"warning: training curve not drawn ({type(exc).__name__}: {exc})")
                summary = " ".join(f"{k} ({m}):{v:.3f}" for m in ("train", "val") for k, v in
                                   (self.stats[m][-1].items() if self.stats[m] else []) if k not in ("epoch", "num", "time", "lr"))
                self.log(f"finished epoch {epoch:02d}: {summary}")
            barrier(self.info)
        if self.info.is_main:
            from matconv_port.serialization import save_converted

            self.model.eval()
            save_converted(self.model, os.path.join(opts.out, "net-final.pt"))
            if opts.save_matconvnet:
                self._save_matconvnet(os.path.join(opts.out, "net-final.mat"))
        self.asm.close()
        barrier(self.info)
        return self.stats

    @contextlib.contextmanager
    def _oom_guard(self, phase: str, epoch: int):
        """Device out of memory -> one line naming the options that lower the memory
        per step (the checkpoints written so far stay; a rerun resumes after them)."""
        try:
            yield
        except Exception as exc:
            if not _out_of_memory(exc):
                raise
            o, w = self.opts, self.info.world_size
            per_step = -(-o.batch_size // (o.num_sub_batches * w))
            hint = (f"raise --sub-batches (now {o.num_sub_batches}: about {per_step} video(s) per forward "
                    f"and process) or lower --batch-size (now {o.batch_size})")
            if phase == "validating":
                hint += "; validation runs 8 videos at a time (--no-val skips it)"
            raise TrainOutOfMemory(f"{self.info.device}: out of memory while {phase} epoch {epoch}: {hint}; "
                                   f"the last checkpoint in {o.out} (if any) is kept and a rerun resumes") from None

    def _save_matconvnet(self, path: str) -> None:
        try:
            from matconv_port.export import export_matconvnet
        except ImportError:
            raise MatConvPortError("--save-matconvnet: the MatConvNet exporter (matconv_port.export) is not available") from None
        export_matconvnet(self.model, path)

    # ------------------------------------------------------------------ one training epoch
    def train_epoch(self, epoch: int) -> dict:
        opts, info, model = self.opts, self.info, self.model
        lr = opts.lr_for_epoch(epoch)
        self.optimizer.set_lr(lr)
        self._set_depth(opts.depth_for_epoch(epoch))
        if opts.reset_momentum_each_epoch:
            self.optimizer.reset_momentum()
        subset = list(self.train_videos) * max(1, opts.epoch_factor)  # repmat(train, 1, epochFactor)
        perm = np.random.default_rng(_sub_seed(opts.seed, epoch, 0)).permutation(len(subset))
        subset = [subset[i] for i in perm]
        model.train()
        running = _Running()
        n_batches = (len(subset) + opts.batch_size - 1) // opts.batch_size
        stat_keys = self._stat_keys()
        progress = IterationLog("train", epoch, n_batches, self.log, progress=opts.progress and info.is_main)
        start = time.time()
        num = 0
        # this process's sub-batches of the epoch, in order; the next one is decoded and
        # assembled (pinned, for CUDA) in the background while the current one runs
        work: list[tuple[int, int, list[TrainVideo]]] = []
        batch_sizes: list[int] = []
        for bi, t in enumerate(range(0, len(subset), opts.batch_size)):
            batch_end = min(t + opts.batch_size, len(subset))
            batch_sizes.append(batch_end - t)
            for s in range(opts.num_sub_batches):
                first = t + info.rank + s * info.world_size
                idx = list(range(first, batch_end, opts.num_sub_batches * info.world_size))
                if idx:
                    # seeds follow the global sub-batch index: the same run on 1 or W processes
                    work.append((bi, s * info.world_size + info.rank, [subset[i] for i in idx]))
        pending = self.asm.submit(self._sub_batch_plans(work[0][2], epoch, work[0][0], work[0][1])) if work else None
        wi = 0
        for bi, batch_size in enumerate(batch_sizes):
            while wi < len(work) and work[wi][0] == bi:
                _, s, vids = work[wi]
                batch = pending.result()
                wi += 1
                if wi < len(work):
                    nb, ns, nvids = work[wi]
                    pending = self.asm.submit(self._sub_batch_plans(nvids, epoch, nb, ns))
                self._train_sub_batch(batch, epoch, bi, s, running)
            num += batch_size
            self._apply_update(batch_size, running, stat_keys)
            progress.update(bi + 1, lr, num / max(time.time() - start, 1e-9), running.averages())
        progress.close()
        if info.active:  # statistics of all processes (accumulateStats)
            running.load_vector(stat_keys, all_reduce_stats(running.vector(stat_keys), info))
        out = {"epoch": epoch, "lr": lr, "num": num, "time": time.time() - start}
        out.update(running.averages())
        return out

    def _stat_keys(self) -> list[str]:
        keys = []
        for li in self.objectives:
            h = _head_name(self.model, li)
            keys += [h, f"{h}.top1err", f"{h}.top5err"]
        return keys

    def _sub_batch_plans(self, vids: list[TrainVideo], epoch: int, bi: int, s: int) -> list[ClipPlan]:
        """Sampling and augmentation of global sub-batch ``s`` of batch ``bi`` (seeded by them)."""
        opts = self.opts
        gen = np.random.default_rng(_sub_seed(opts.seed, epoch, 1, bi, s))
        return plan_sub_batch(opts.kind, [(v.name, v.label, v.frames) for v in vids], gen,
                              out_size=self.image_size, frame_hw=self.frame_hw, augmentation=opts.augmentation,
                              frames_per_clip=opts.frames_per_clip, temporal_strides=tuple(opts.temporal_strides))

    def _train_sub_batch(self, batch, epoch: int, bi: int, s: int, running: _Running) -> None:
        opts, model = self.opts, self.model
        inputs = to_device(batch.inputs, self.info.device)  # non-blocking from pinned memory on CUDA
        torch.manual_seed(_torch_seed(opts.seed, epoch, 2, bi, s))
        values, ctx, heads = forward_backward(model, inputs, batch.num_videos, self.frozen_upto, self.objectives,
                                              precision=opts.precision)
        for li in self.objectives:
            if li not in heads:
                continue
            pred = values[model.layer_specs[li].inputs[0]]
            h = _head_name(model, li)
            running.add(h, heads[li], float(pred.shape[0]))
            e1, e5 = errors(video_scores(pred, batch.num_videos), inputs["label"])
            running.add(f"{h}.top1err", e1, batch.num_videos)
            running.add(f"{h}.top5err", e5, batch.num_videos)
        # batch-norm moments: "derivative" = batch moments x items, summed over sub-batches
        for lspec in model.layer_specs:
            if lspec.type == "dagnn.BatchNorm" and len(lspec.params) >= 3 and lspec.params[2] in self.moments:
                mom = ctx.batch_moments.get(lspec.name)
                if mom is None:
                    continue
                p = model.param(lspec.params[2])
                # size(inputs{1}, 4): the items (videos x frames) of the net's input
                items = next(int(x.shape[0]) for k, x in batch.inputs.items() if k != "label")
                der = (mom.reshape(p.shape) * items).to(p.dtype)
                p.grad = der if p.grad is None else p.grad + der

    def _apply_update(self, batch_size: int, running: _Running, stat_keys: list[str]) -> None:
        params = [p for g in self.optimizer.param_groups if g.get("name") in self.trainable for p in g["params"]]
        if self.info.active:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            for p, g in zip(params, grads):
                p.grad = g
            all_reduce_sum(grads, self.info)
        self.optimizer.step(batch_size=batch_size)
        for p in params:
            p.grad = None

    # ------------------------------------------------------------------ validation (fast protocol)
    def _val_plans(self, vids: list[TrainVideo]) -> list[ClipPlan]:
        """Fast protocol: whole frames, no flip; fusion: one 5-frame clip at stride 15
        (the paper's sampling, middle window); single streams: ``val_frames`` frames
        spread uniformly (averaged per video)."""
        from matconv_port.eval.plan import default_protocol
        from matconv_port.eval.sampling import (
            flow_uniform_candidates,
            fusion_candidates,
            rgb_uniform_candidates,
        )
        from matconv_port.train.sampling import flow_stack_frames

        h, w = self.frame_hw
        plans = []
        for v in vids:
            if self.opts.kind == "fusion":
                c = fusion_candidates(v.frames, num=self.opts.frames_per_clip, stride=default_protocol("fused").stride,
                                      clip_len=self.opts.frames_per_clip)
                frames = c.window(c.starts[len(c.starts) // 2])
            elif self.opts.kind == "rgb":
                frames = rgb_uniform_candidates(v.frames, self.opts.val_frames).window(0)
            else:
                frames = flow_uniform_candidates(v.frames, self.opts.val_frames).window(0)
            flows = [flow_stack_frames(f) for f in frames] if self.opts.kind != "rgb" else []
            plans.append(ClipPlan(v.name, v.label, list(frames), flows, (0, 0, w, h), False, (h, w)))
        return plans

    @torch.no_grad()
    def validate_epoch(self, epoch: int) -> dict:
        opts, info, model = self.opts, self.info, self.model
        model.eval()
        running = _Running()
        mine = self.val_videos[info.rank::info.world_size]
        chunk = 8
        start = time.time()
        for i in range(0, len(mine), chunk):
            vids = mine[i:i + chunk]
            batch = self.asm.assemble(self._val_plans(vids))
            inputs = to_device(batch.inputs, info.device)
            with precision_scope(opts.precision, info.device.type):
                values, _ = run_net(model, inputs, batch.num_videos, False, len(model.execution_order),
                                    amp=opts.precision == "bf16")
            fused = None
            for li in self.objectives:
                out = model.layer_specs[li].outputs[0]
                pred = values[model.layer_specs[li].inputs[0]]
                h = _head_name(model, li)
                if out in values:
                    running.add(h, float(values[out].float().sum()), float(pred.shape[0]))
                sc = video_scores(pred, batch.num_videos)
                e1, e5 = errors(sc, inputs["label"])
                running.add(f"{h}.top1err", e1, batch.num_videos)
                running.add(f"{h}.top5err", e5, batch.num_videos)
                fused = sc if fused is None else fused + sc
            if len(self.objectives) > 1:
                e1, e5 = errors(fused, inputs["label"])
                running.add("top1err", e1, batch.num_videos)
                running.add("top5err", e5, batch.num_videos)
        keys = sorted(set(self._stat_keys()) | ({"top1err", "top5err"} if len(self.objectives) > 1 else set()))
        if info.active:
            running.load_vector(keys, all_reduce_stats(running.vector(keys), info))
        out = {"epoch": epoch, "num": len(self.val_videos), "time": time.time() - start}
        out.update(running.averages())
        self.log(format_iteration("val", epoch, 1, 1, opts.lr_for_epoch(epoch), len(self.val_videos) / max(out["time"], 1e-9),
                                  running.averages()))
        model.train()
        return out
