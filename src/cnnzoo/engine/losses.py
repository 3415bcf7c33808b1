"""Training losses for classification, semantic segmentation and reconstruction.

Every loss has the same call: ``loss(logits, target, weight=None) -> scalar``, with

- classification: ``logits`` ``N x K``, ``target`` int ``N``;
- segmentation: ``logits`` ``N x K x H x W``, ``target`` int ``N x H x W`` (already cropped
  to the logits' size for a valid-convolution U-Net: the engine calls
  :func:`cnnzoo.layers.spatial.center_crop`; a loss never crops), ``weight`` float
  ``N x H x W`` per-pixel weights (the U-Net weight map), used by ``"weighted-ce"`` only;
- reconstruction: ``logits`` the generated image ``N x C x H x W``, ``target`` the image it
  should equal (float, the same shape).

The losses (:data:`LOSSES`, built by :func:`build_loss`):

- ``"ce"``: mean softmax cross-entropy over the scored samples / pixels (optional label
  smoothing, as ``torch.nn.functional.cross_entropy``);
- ``"weighted-ce"``: the U-Net paper's "pixel-wise soft-max over the final feature map
  combined with the cross entropy loss function", each pixel's term multiplied by its
  weight ``w(x)`` (Ronneberger et al. 2015, eq. 1), normalized by the total weight:
  ``sum_x w(x) * ce(x) / sum_x w(x)`` over scored pixels (see :class:`WeightedCrossEntropy`);
- ``"dice"``: ``1 - mean_c dice_c`` with the soft Dice of each class computed from softmax
  probabilities over the whole batch (Milletari et al. 2016, "V-Net", eq. 1, with the
  squares left out; see :class:`SoftDiceLoss`);
- ``"ce+dice"``: the sum of the two;
- ``"mse"`` (reconstruction, its only loss): the mean squared error over every pixel and
  channel (:class:`ReconstructionMSE`).

Pixels (or samples) whose target is ``ignore_index`` contribute nothing. A target label
outside ``0..K-1`` (other than ``ignore_index``) or a shape mismatch raises ``ValueError``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.data.weight_map import unet_weight_map

__all__ = [
    "LOSSES",
    "CrossEntropy",
    "ReconstructionMSE",
    "DiceCE",
    "SoftDiceLoss",
    "WeightedCrossEntropy",
    "build_loss",
    "check_logits_and_target",
    "choose_loss",
    "check_target_labels",
    "unet_weight_map",
]

LOSSES: tuple[str, ...] = ("ce", "dice", "ce+dice", "weighted-ce", "mse")
TASKS: tuple[str, ...] = ("classification", "segmentation", "reconstruction")


def choose_loss(requested: str | None, task: str, has_weight_maps: bool, *, for_evaluation: bool = False) -> str:
    """The loss a run uses: ``requested``, or by default the U-Net paper's weighted
    cross-entropy for segmentation data that has per-pixel weight maps (``cells``) and plain
    cross-entropy otherwise.

    ``"weighted-ce"`` needs weight maps: training on data without them is an error; a
    trained model evaluated on such data (``for_evaluation``) is scored with plain
    cross-entropy instead, which is the weighted loss with every weight 1.
    """
    if requested is None:
        if task == "reconstruction":
            return "mse"
        return "weighted-ce" if task == "segmentation" and has_weight_maps else "ce"
    if requested == "weighted-ce" and not has_weight_maps:
        if for_evaluation:
            return "ce"
        raise ValueError("loss 'weighted-ce' needs a data set with per-pixel weight maps (such as cells); "
                         "this one has none: use --loss ce, dice or ce+dice")
    return requested


def build_loss(
    name: str,
    *,
    task: str,
    num_classes: int,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """The loss ``name`` (one of :data:`LOSSES`) for ``task``; classification takes only "ce",
    reconstruction only "mse" (and no ``num_classes``: pass 0).

    ``label_smoothing`` applies to the cross-entropy part ("ce", "weighted-ce", "ce+dice").
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {', '.join(LOSSES)}")
    if (task == "reconstruction") != (name == "mse"):
        raise ValueError(f"loss {name!r} does not fit {task}: reconstruction takes only 'mse', "
                         "and 'mse' is for reconstruction only")
    if task == "classification" and name != "ce":
        raise ValueError(f"loss {name!r} is for segmentation; classification takes only 'ce'")
    if name == "mse":
        return ReconstructionMSE()
    _check_num_classes(num_classes)
    if not (isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing < 1.0):
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if name == "ce":
        return CrossEntropy(num_classes, ignore_index, label_smoothing)
    if name == "weighted-ce":
        return WeightedCrossEntropy(num_classes, ignore_index, label_smoothing)
    if name == "dice":
        return SoftDiceLoss(num_classes, ignore_index)
    return DiceCE(num_classes, ignore_index, label_smoothing)


class ReconstructionMSE(nn.Module):
    """Mean squared error between a generated image and its target over every pixel and
    channel, in float32 (``weight`` is ignored: every pixel counts alike)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if logits.shape != target.shape:
            raise ValueError(f"a reconstruction of shape {tuple(logits.shape)} cannot be scored against "
                             f"images of shape {tuple(target.shape)}")
        return F.mse_loss(_at_least_float32(logits), target.to(torch.float32))


class CrossEntropy(nn.Module):
    """Mean softmax cross-entropy over the scored samples or pixels; ``weight`` is ignored
    (use :class:`WeightedCrossEntropy` for per-pixel weights)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_logits_and_target(logits, target, self.num_classes, self.ignore_index)
        return _cross_entropy_map(logits, target, self.ignore_index, self.label_smoothing).mean_scored()


class WeightedCrossEntropy(CrossEntropy):
    """Pixel-wise softmax cross-entropy weighted by a per-pixel map (U-Net, eq. 1).

    ``loss = sum_x w(x) ce(x) / sum_x w(x)``, the sums over the pixels whose target is not
    ``ignore_index``: a weighted mean, the same normalization as
    ``torch.nn.functional.cross_entropy`` with class weights. A constant map therefore gives
    plain cross-entropy, and the map only shifts the emphasis between pixels, not the
    loss's scale (so the learning rate does not have to change with ``w0``). A batch whose
    scored weights sum to 0 gives 0.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if weight is None:
            raise ValueError("loss 'weighted-ce' needs a per-pixel weight map (a data set with a 'weight', "
                             "such as 'cells'); use 'ce' for data without one")
        check_logits_and_target(logits, target, self.num_classes, self.ignore_index)
        if logits.dim() < 3:
            raise ValueError("loss 'weighted-ce' is for segmentation logits N x K x H x W, "
                             f"got shape {tuple(logits.shape)}")
        if weight.shape != target.shape:
            raise ValueError(f"weight map shape {tuple(weight.shape)} differs from target shape {tuple(target.shape)}")
        if not weight.is_floating_point():
            raise ValueError(f"weight map must be a float tensor, got dtype {weight.dtype}")
        terms = _cross_entropy_map(logits, target, self.ignore_index, self.label_smoothing)
        weight = torch.where(terms.scored, weight.to(terms.loss.dtype), 0.0)
        total = weight.sum()
        # Dividing by the clamped total keeps the all-zero case at 0 with a zero gradient.
        return (weight * terms.loss).sum() / total.clamp_min(torch.finfo(total.dtype).tiny)


class SoftDiceLoss(nn.Module):
    """``1 - (1/K) sum_c dice_c``, the soft Dice of class ``c`` over the whole batch:

        dice_c = (2 sum_x p_c(x) g_c(x) + smooth) / (sum_x p_c(x) + sum_x g_c(x) + smooth)

    with ``p_c`` the softmax probability of class ``c`` and ``g_c`` the one-hot target.
    Sums run over every scored pixel of every image (pixels whose target is
    ``ignore_index`` are left out of all three sums). ``smooth`` (default 1) keeps a class
    absent from a batch's target from dividing by ~0: its dice is then close to 1 when the
    network also predicts little of it. ``weight`` is ignored.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None, smooth: float = 1.0) -> None:
        super().__init__()
        self.num_classes = _check_num_classes(num_classes)
        self.ignore_index = ignore_index
        if not (math.isfinite(smooth) and smooth >= 0):
            raise ValueError(f"smooth must be a finite number >= 0, got {smooth!r}")
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        check_logits_and_target(logits, target, self.num_classes, self.ignore_index)
        if logits.dim() < 3:
            raise ValueError(f"loss 'dice' is for segmentation logits N x K x H x W, got shape {tuple(logits.shape)}")
        scored = _scored(target, self.ignore_index)
        probability = _at_least_float32(logits).softmax(dim=1) * scored.unsqueeze(1)
        truth = F.one_hot(torch.where(scored, target, 0), self.num_classes).movedim(-1, 1)
        truth = truth * scored.unsqueeze(1)
        dims = [0, *range(2, logits.dim())]  # all but the class dimension
        intersection = (probability * truth).sum(dims)
        sizes = probability.sum(dims) + truth.sum(dims)
        dice = (2 * intersection + self.smooth) / (sizes + self.smooth).clamp_min(torch.finfo(sizes.dtype).tiny)
        return 1 - dice.mean()


class DiceCE(nn.Module):
    """``"ce+dice"``: mean cross-entropy plus soft Dice loss (both as above, unweighted)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None, label_smoothing: float = 0.0,
                 smooth: float = 1.0) -> None:
        super().__init__()
        self.cross_entropy = CrossEntropy(num_classes, ignore_index, label_smoothing)
        self.dice = SoftDiceLoss(num_classes, ignore_index, smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return self.cross_entropy(logits, target) + self.dice(logits, target)


def check_logits_and_target(logits: torch.Tensor, target: torch.Tensor, num_classes: int,
                            ignore_index: int | None = None) -> None:
    """Raise ``ValueError`` unless ``logits`` is ``N x K (x ...)`` with ``K == num_classes``
    and ``target`` is an integer ``N (x ...)`` tensor of labels in ``0..K-1`` (or
    ``ignore_index``) matching the logits' batch and spatial sizes."""
    if logits.dim() < 2 or logits.shape[1] != num_classes:
        raise ValueError(f"logits must be N x {num_classes} (x H x W), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"logits shape {tuple(logits.shape)} and target shape {tuple(target.shape)} do not match "
                         f"(target must be {tuple(logits.shape[:1] + logits.shape[2:])}; crop it to the "
                         "output size for a valid-convolution network)")
    check_target_labels(target, num_classes, ignore_index)


def check_target_labels(target: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> None:
    """Raise ``ValueError`` unless ``target`` holds integer labels in ``0..K-1`` or ``ignore_index``."""
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class labels, got dtype {target.dtype}")
    valid = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        valid |= target == ignore_index
    if not bool(valid.all()):
        bad = int(target[~valid][0])
        ignored = f" (ignore_index is {ignore_index})" if ignore_index is not None else ""
        raise ValueError(f"target holds label {bad}, outside the classes 0..{num_classes - 1}{ignored}")


class _CrossEntropyMap:
    """Per-element cross-entropy (0 where not scored) and the mask of scored elements."""

    def __init__(self, loss: torch.Tensor, scored: torch.Tensor) -> None:
        self.loss = loss
        self.scored = scored

    def mean_scored(self) -> torch.Tensor:
        return self.loss.sum() / self.scored.sum().clamp_min(1)


def _cross_entropy_map(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None,
                       label_smoothing: float) -> _CrossEntropyMap:
    scored = _scored(target, ignore_index)
    # Ignored labels (any value, e.g. 255) become class 0 for the call and are masked out after.
    safe_target = torch.where(scored, target, 0).long()
    loss = F.cross_entropy(_at_least_float32(logits), safe_target, reduction="none", label_smoothing=label_smoothing)
    return _CrossEntropyMap(torch.where(scored, loss, 0.0), scored)


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    """Half / bfloat16 logits (mixed precision) are upcast: softmax sums need the range."""
    return logits if logits.dtype == torch.float64 else logits.float()


def _scored(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    return torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index


def _check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return num_classes
