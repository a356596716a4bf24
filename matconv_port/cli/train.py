"""``matconv-port train rgb|flow|fusion``: training with the paper's recipe.

Every default comes from the original scripts (:mod:`matconv_port.train.recipes`)
and is printed at start; every option overrides it. Under ``torchrun`` the same
command trains on several processes/GPUs.
"""
from __future__ import annotations

import os

import click

from matconv_port.errors import MatConvPortError


def _floats(value: str | None, what: str) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise MatConvPortError(f"{what} {value!r}: expected comma-separated numbers") from None


def _ints_range(value: str | None) -> list[int] | None:
    """``5:15`` or ``5,10,15``."""
    if value is None:
        return None
    try:
        if ":" in value:
            a, b = value.split(":", 1)
            return list(range(int(a), int(b) + 1))
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise MatConvPortError(f"--temporal-strides {value!r}: expected A:B or a comma-separated list") from None


def common_options(fn):
    opts = [
        click.option("--data-root", required=True, type=click.Path(file_okay=False), help="Folder with jpegs_256/ and tvl1_flow/."),
        click.option("--split", default=1, show_default=True, type=int),
        click.option("--dataset", default="ucf101", show_default=True, type=click.Choice(["ucf101", "hmdb51"])),
        click.option("--splits-dir", default=None, help="Split files (default DATA_ROOT/splits)."),
        click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Experiment folder (EXPDIR)."),
        click.option("--lr", default=None, help="Learning rate per epoch, comma-separated (the last one holds)."),
        click.option("--epochs", type=int, default=None, help="Epochs (default: number of --lr values)."),
        click.option("--epoch-factor", type=int, default=None, help="Passes over the training videos per epoch."),
        click.option("--batch-size", type=int, default=None, help="Videos per batch (all processes)."),
        click.option("--sub-batches", type=int, default=None,
                     help="Sub-batches per batch and process (gradient accumulation; more = less memory). "
                          "Default: the recipe's one-GPU count divided by the processes, as the scripts do."),
        click.option("--momentum", type=float, default=None),
        click.option("--weight-decay", type=float, default=None),
        click.option("--dropout", type=float, default=None, help="Rate of every DropOut layer."),
        click.option("--backprop-depth", default=None,
                     help="Back-propagate only the layers after this one ('none': all). Default: the recipe's "
                          "(train rgb: only the classifier for 3 epochs, as cnn_ucf101_spatial.m's 'layer37')."),
        click.option("--backprop-depth-epochs", type=int, default=None,
                     help="Apply --backprop-depth in the first N epochs only, then train everything "
                          "(default: the recipe's; with --backprop-depth given alone: every epoch)."),
        click.option("--augmentation", default=None, type=click.Choice(["noCtr", "borders25", "multiScaleRegular", "none"])),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--resume/--no-resume", default=True, show_default=True, help="Continue from the last net-epoch-N.pt."),
        click.option("--val/--no-val", "validate", default=True, show_default=True, help="Validate each epoch (fast protocol)."),
        click.option("--final-eval/--no-final-eval", default=True, show_default=True, help="The paper's protocol on the test split at the end."),
        click.option("--save-matconvnet", is_flag=True, help="Also write each checkpoint as a DagNN .mat."),
        click.option("--precision", "precision", default=None, type=click.Choice(["exact", "tf32", "bf16"]),
                     help="Numerics: exact (IEEE fp32, TF32 off; default), tf32 (TF32 convolutions/matmuls), "
                          "bf16 (bfloat16 autocast, fastest)."),
        click.option("--amp", is_flag=True, help="Same as --precision bf16 (kept for old scripts)."),
        click.option("--device", default="auto", show_default=True,
                     help="cpu, cuda, cuda:N or auto (under torchrun: GPU LOCAL_RANK)."),
        click.option("--threads", type=int, default=2, show_default=True, help="Frame decoding threads."),
        click.option("--cache-frames", type=int, default=None, help="Decoded frames kept in memory (0: none)."),
        click.option("--progress/--no-progress", default=True, show_default=True),
        click.option("--dry-run", is_flag=True,
                     help="Print the resolved options (recipe + overrides) and the net, then stop; writes nothing."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _options(kind: str, recipe_name: str, kw: dict):
    from matconv_port.devices import resolve_device
    from matconv_port.precision import resolve_precision
    from matconv_port.train.loop import TrainOptions
    from matconv_port.train.recipes import recipe, sub_batches_per_process

    resolve_device(kw["device"])  # a device this machine lacks: one line, before anything is read or written
    base = recipe(kind, recipe_name)
    over = {
        "learning_rate": _floats(kw.get("lr"), "--lr"), "num_epochs": kw.get("epochs"),
        "epoch_factor": kw.get("epoch_factor"), "batch_size": kw.get("batch_size"),
        "num_sub_batches": kw.get("sub_batches"), "momentum": kw.get("momentum"),
        "weight_decay": kw.get("weight_decay"), "dropout": kw.get("dropout"),
        "augmentation": kw.get("augmentation"), "cache_frames": kw.get("cache_frames"),
        "frames_per_clip": kw.get("frames"), "backprop_depth_epochs": kw.get("backprop_depth_epochs"),
        "temporal_strides": _ints_range(kw.get("temporal_strides")),
    }
    if over["num_sub_batches"] is None:  # the scripts' ceil(n / numel(gpus)): per process
        base["num_sub_batches"] = sub_batches_per_process(base["num_sub_batches"], int(os.environ.get("WORLD_SIZE", "1")))
    base.update({k: v for k, v in over.items() if v is not None})
    bd = kw.get("backprop_depth")
    if bd is not None:
        base["backprop_depth"] = None if bd.lower() in ("", "none") else bd
        if kw.get("backprop_depth_epochs") is None:
            base["backprop_depth_epochs"] = None  # a depth given alone holds every epoch
    opts = TrainOptions(kind=kind, data_root=kw["data_root"], out=kw["out"], split=kw["split"], dataset=kw["dataset"],
                        splits_dir=kw.get("splits_dir"), seed=kw["seed"], resume=kw["resume"], validate=kw["validate"],
                        final_eval=kw["final_eval"], save_matconvnet=kw["save_matconvnet"],
                        precision=resolve_precision(kw.get("precision"), amp=kw["amp"]).name,
                        device=kw["device"], threads=kw["threads"], progress=kw["progress"], **base)
    if not opts.learning_rate or any(v < 0 for v in opts.learning_rate):
        raise MatConvPortError("--lr: give at least one non-negative learning rate")
    for name in ("batch_size", "num_sub_batches", "epoch_factor"):
        if getattr(opts, name) < 1:
            raise MatConvPortError(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= opts.dropout < 1:
        raise MatConvPortError(f"--dropout must be in [0, 1), not {opts.dropout}")
    return opts


def _resolve_depth(opts, spec, from_scratch: bool = False):
    """The recipe's symbolic backprop depth as a layer of ``spec`` (training from
    scratch has no trained features to keep: the classifier-only warm-up is dropped)."""
    from matconv_port.train.recipes import CLASSIFIER_ONLY, resolve_backprop_depth

    if opts.backprop_depth == CLASSIFIER_ONLY and from_scratch:
        opts.backprop_depth, opts.backprop_depth_epochs = None, None
    opts.backprop_depth = resolve_backprop_depth(opts.backprop_depth, spec)
    if opts.backprop_depth is not None and opts.backprop_depth not in {l.name for l in spec.layers}:
        raise MatConvPortError(f"--backprop-depth {opts.backprop_depth}: the net has no such layer")
    return opts


def _dry_run(model, opts) -> None:
    from matconv_port.train.loop import describe_options

    click.echo(f"matconv-port train {opts.kind} (dry run: nothing written): options\n{describe_options(opts)}")
    click.echo(f"  net: {len(model.layer_specs)} layers, inputs {model.input_vars}, "
               f"{sum(p.numel() for _, p in model.named_matconvnet_params())} params")


def _run(model, opts, dry_run: bool = False) -> None:
    from matconv_port.train.loop import Trainer, describe_options

    if dry_run:
        _dry_run(model, opts)
        return

    trainer = Trainer(model, opts, log=lambda s: click.echo(s))
    trainer.log(f"matconv-port train {opts.kind}: options\n{describe_options(opts)}")
    trainer.fit()
    final = os.path.join(opts.out, "net-final.pt")
    if opts.final_eval and trainer.info.is_main:
        from matconv_port.train.final_eval import paper_eval

        paper_eval(final, opts, log=trainer.log)
    trainer.log(f"done: {final}")


def _stream_command(kind: str):
    @click.command(kind)
    @click.option("--arch", type=click.Choice(["demo", "vgg16"]), default=None, help="Train from scratch with this net.")
    @click.option("--init", "init", type=click.Path(dir_okay=False), default=None,
                  help="Start from an ImageNet MatConvNet model (.mat): VGG-16 or ResNet.")
    @common_options
    def cmd(arch, init, dry_run, **kw):
        from matconv_port.network import MatConvNetModel
        from matconv_port.train import archs
        from matconv_port.train.data import split_videos

        if bool(arch) == bool(init):
            raise MatConvPortError("give exactly one of --arch NAME or --init MODEL.mat")
        recipe_name = "demo" if arch == "demo" else "paper"
        opts = _options(kind, recipe_name, kw)
        classes, _ = split_videos(opts.data_root, opts.split, opts.dataset, opts.splits_dir, "train")
        if arch:
            spec = archs.ARCHS[arch](len(classes), kind, classes=classes, dropout=opts.dropout, seed=opts.seed)
        else:
            from matconv_port.loading import load_netspec_any

            spec = archs.init_from_imagenet(load_netspec_any(init), kind, len(classes), classes=classes,
                                            dropout=opts.dropout, seed=opts.seed)
        _resolve_depth(opts, spec, from_scratch=bool(arch))
        _run(MatConvNetModel(spec), opts, dry_run)

    cmd.help = f"Train a single {kind.upper()} stream (cnn_ucf101_{'spatial' if kind == 'rgb' else 'temporal'}.m)."
    return cmd


@click.command("fusion")
@click.option("--rgb", "rgb_model", required=True, type=click.Path(dir_okay=False), help="Trained RGB net (.mat or .pt).")
@click.option("--flow", "flow_model", required=True, type=click.Path(dir_okay=False), help="Trained flow net (.mat or .pt).")
@click.option("--recipe", "recipe_name", type=click.Choice(["auto", "paper", "demo"]), default="auto", show_default=True,
              help="Defaults: the paper's, or the demo's (auto: demo when both streams are demo nets).")
@click.option("--init-method", default="2sumAB", show_default=True, help="Fusion filter init (fuse --init-method).")
@click.option("--frames", type=int, default=None, help="Frames per clip (temporal pool size).")
@click.option("--temporal-strides", default=None, help="Training strides, A:B or a list (default 5:15).")
@common_options
def fusion_cmd(rgb_model, flow_model, recipe_name, init_method, dry_run, **kw):
    """Fuse two trained streams (as `matconv-port fuse`) and train the fused net
    (cnn_ucf101_fusion.m)."""
    from matconv_port.fusion import FusionOptions, build_fused_netspec
    from matconv_port.loading import load_netspec_any
    from matconv_port.network import MatConvNetModel

    spec_a = load_netspec_any(rgb_model)
    spec_b = load_netspec_any(flow_model)
    if recipe_name == "auto":
        recipe_name = "demo" if spec_a.meta.get("trainArch") == "demo" and spec_b.meta.get("trainArch") == "demo" else "paper"
    opts = _options("fusion", recipe_name, kw)
    fused = build_fused_netspec(spec_a, spec_b, FusionOptions(init_method=init_method, frames=opts.frames_per_clip,
                                                              dropout_rate=opts.dropout, seed=opts.seed))
    _resolve_depth(opts, fused)
    _run(MatConvNetModel(fused), opts, dry_run)


@click.group("train")
def command() -> None:
    """Train nets with the paper's recipe (MatConvNet's SGD, sub-batches, backprop
    depth, the original sampling and augmentation); checkpoints EXPDIR/net-epoch-N.pt,
    resumable."""


command.add_command(_stream_command("rgb"))
command.add_command(_stream_command("flow"))
command.add_command(fusion_cmd)
