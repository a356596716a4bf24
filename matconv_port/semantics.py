"""Which MatConvNet computes a net: the paper's fork or stock MatConvNet (v1.0-beta25).

The two disagree on a few layers; the port never picks silently. ``semantics`` is
``"fork"``, ``"stock"`` or ``"auto"`` (the default of :func:`matconv_port.load_model`
and of ``--semantics`` on ``convert``/``inspect``/``eval``); the choice and its
reason are stored in the converted file.

=============================  ==========================================  ==========================================
difference                     fork (feichtenhofer/twostreamfusion)         stock v1.0-beta25 (vlfeat/matconvnet)
=============================  ==========================================  ==========================================
``dagnn.Loss``                 ``*error`` losses first average predictions  ``vl_nnloss`` as is: errors counted at every
                               over H, W and each video's frames; other     position; one label per item (or a label
                               losses repeat each video's label per frame   map); no ``top5classerror``
``dagnn.Concat``               inputs of different H, W are zero-padded     refused (``vl_nnconcat`` -> ``cat``)
                               at the bottom/right (``padarray``)
``dagnn.BatchNorm`` epsilon    class default 1e-4; SimpleNN ``bnorm``:      class default 1e-5; SimpleNN ``bnorm``:
(batch moments only)           1e-4 (``vl_simplenn`` passes none)           the layer's ``epsilon`` (tidy: 1e-5)
=============================  ==========================================  ==========================================

Post-beta25 stock (master, "Normalise loss") divides every ``vl_nnloss`` output by
the batch size; its ``dagnn.Loss`` blocks carry the property ``normalise``, which
is how such files are recognised (per layer, under ``stock``).

``auto`` reads the evidence in the file (:func:`file_evidence`): properties and
types that only one code base writes. Stock: ``dagnn.Loss`` blocks with
``ignoreAverage`` or ``normalise``; ``dagnn.BatchNorm`` blocks with ``opts``;
``dagnn.Conv``/``Pooling``/``ConvTranspose`` blocks with ``dilate`` (``opts``/``dilate``:
beta21+, ``ignoreAverage``: beta24+; older stock files show no evidence); the type
``dagnn.ConvTranspose``; SimpleNN ``bnorm`` layers with an ``epsilon`` field (stock's
``vl_simplenn_tidy`` adds it). Fork: the types ``dagnn.Conv3D``/``dagnn.Pooling3D``
(MexConv3D blocks of the fork) and ``dagnn.Loss`` with ``top5classerror`` (removed
from stock's ``vl_nnloss``). Evidence for both is refused (pass ``fork`` or
``stock``); no evidence means ``fork``, the code the port was built for, and says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from matconv_port.errors import MatConvPortError

SEMANTICS = ("auto", "fork", "stock")

#: what ``auto`` picks when the file shows no evidence
DEFAULT = "fork"

#: BatchNorm's class default epsilon (``+dagnn/BatchNorm.m``) per code base
BNORM_EPSILON = {"fork": 1e-4, "stock": 1e-5}
#: the epsilon ``vl_simplenn`` uses for a ``bnorm`` layer without one (fork: ``vl_nnbnorm``'s
#: default, since it passes none; stock: ``vl_simplenn_tidy``'s default)
SIMPLENN_BNORM_EPSILON = {"fork": 1e-4, "stock": 1e-5}

_FILTER_TYPES = ("dagnn.Conv", "dagnn.Pooling", "dagnn.ConvTranspose")


@dataclass
class SemanticsChoice:
    name: str  # "fork" | "stock"
    #: "option" (asked for), "detected" (auto, evidence), "default" (auto, no evidence),
    #: "stored" (auto, read from a converted file)
    how: str
    evidence: list[str] = field(default_factory=list)

    def reason(self) -> str:
        """Why this semantics, in words (``evidence`` of a stored choice is the reason
        given when the file was converted)."""
        if self.how == "option":
            return "as asked"
        if self.how == "default":
            return "no evidence of a version in the file: the default; --semantics stock to change"
        if self.how == "stored":
            return "stored in the converted file" + (f"; chosen at conversion: {'; '.join(self.evidence)}"
                                                     if self.evidence else "")
        return f"detected: {'; '.join(self.evidence)}"

    def describe(self) -> str:
        return f"{self.name} ({self.reason()})"

    def to_store(self) -> list[str]:
        """What a converted file keeps as the reason: the original one, never nested."""
        return list(self.evidence) if self.how == "stored" else [self.reason()]


def check_name(name: str, option: str = "semantics") -> str:
    if name not in SEMANTICS:
        raise MatConvPortError(f"{option} {name!r}: expected one of {', '.join(SEMANTICS)}")
    return name


def file_evidence(spec) -> dict[str, list[str]]:
    """``{"stock": [...], "fork": [...]}``: what in ``spec`` (a NetSpec as read from
    a file) only one code base writes, each as a short sentence naming the layer."""
    stock: list[str] = []
    fork: list[str] = []
    dagnn = spec.source_format != "simplenn"
    for layer in spec.layers:
        block = layer.block if isinstance(layer.block, dict) else {}
        where = f"layer {layer.name!r}"
        if dagnn:
            if layer.type == "dagnn.Loss":
                for key in ("ignoreAverage", "normalise"):
                    if key in block:
                        stock.append(f"{where} (dagnn.Loss) has the property {key!r}")
            if layer.type == "dagnn.BatchNorm" and "opts" in block:
                stock.append(f"{where} (dagnn.BatchNorm) has the property 'opts'")
            if layer.type in _FILTER_TYPES and "dilate" in block:
                stock.append(f"{where} ({layer.type}) has the property 'dilate'")
            if layer.type == "dagnn.ConvTranspose":
                stock.append(f"{where} is a dagnn.ConvTranspose (no such class in the fork)")
        elif layer.type == "dagnn.BatchNorm" and "simplennEpsilon" in block:
            stock.append(f"{where} (SimpleNN bnorm) has an 'epsilon' field (stock vl_simplenn_tidy adds it)")
        if layer.type in ("dagnn.Conv3D", "dagnn.Pooling3D"):
            fork.append(f"{where} is a {layer.type} (MexConv3D, the fork's)")
        if layer.type == "dagnn.Loss" and str(block.get("loss", "")).lower() == "top5classerror":
            fork.append(f"{where} uses the loss 'top5classerror' (not in stock vl_nnloss)")
    return {"stock": stock, "fork": fork}


def resolve_semantics(requested: str, spec, stored: str | None = None,
                      stored_evidence: list[str] | None = None) -> SemanticsChoice:
    """The semantics a net runs with: ``requested`` (``fork``/``stock``) as given,
    or for ``auto`` the one ``stored`` in a converted file, else the file's evidence."""
    check_name(requested)
    if requested != "auto":
        return SemanticsChoice(requested, "option")
    if stored in ("fork", "stock"):
        return SemanticsChoice(stored, "stored", list(stored_evidence or []))
    ev = file_evidence(spec)
    if ev["stock"] and ev["fork"]:
        raise MatConvPortError(
            f"{spec.source or 'network'}: the file shows evidence of stock MatConvNet ({ev['stock'][0]}) and of "
            f"the paper's fork ({ev['fork'][0]}); pass --semantics fork or --semantics stock (semantics= in load_model)")
    if ev["stock"]:
        return SemanticsChoice("stock", "detected", _short(ev["stock"]))
    if ev["fork"]:
        return SemanticsChoice("fork", "detected", _short(ev["fork"]))
    return SemanticsChoice(DEFAULT, "default")


def _short(items: list[str], n: int = 3) -> list[str]:
    return items[:n] + ([f"{len(items) - n} more"] if len(items) > n else [])
