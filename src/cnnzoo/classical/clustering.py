"""Clustering: k-means on per-pixel colour and texture features, then connected regions.

The lecture notes' "input space for clustering" is colour and texture. Each pixel gets a
feature vector, k-means (Lloyd's algorithm, via scikit-learn) groups the vectors into k
clusters, and each cluster is cut into its connected pieces, because a cluster is a set of
similar pixels anywhere in the image while a region must be connected.

Features, per pixel (all computed with whole-array filters):

- colour: the mean of each channel over a ``window`` x ``window`` neighbourhood. Smoothing
  the colour keeps a speckled texture (grass, noise) in one cluster instead of splitting it
  into its bright and dark specks; ``window=1`` clusters the raw colour.
- contrast: the standard deviation of each channel over the same window (local variance,
  as its square root so that it is in the image's units like the colour).
- texture: ``"lbp"``, the histogram over the window of rotation-invariant uniform local
  binary patterns (Ojala, Pietikainen & Maenpaa, TPAMI 2002; 8 neighbours at radius 1, 10
  codes), or ``"oriented"``, the local energy of derivative filters at 0, 45, 90 and 135
  degrees; or ``None``.
- position (optional): row and column divided by the longer side.

Colour, contrast and oriented energy are divided by one common scale, the standard deviation
of all the image's values, so that none is inflated on its own: standardising each feature
separately would blow a nearly constant feature (such as the local mean of a fine texture)
up to the weight of a real one. LBP histograms are fractions and keep their natural scale.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import ndimage
from skimage.feature import local_binary_pattern
from skimage.measure import label as connected_components
from threadpoolctl import threadpool_limits

from cnnzoo.classical._common import check_connectivity, relabel_by_first_appearance
from cnnzoo.classical.predicates import Predicate
from cnnzoo.classical.split_merge import merge_adjacent_regions
from cnnzoo.images.arrays import as_float_image

__all__ = ["TEXTURES", "kmeans_clusters", "kmeans_segmentation", "pixel_features"]

TEXTURES = ("lbp", "oriented", None)

# Uniform LBP with P neighbours has P + 2 codes: P + 1 uniform patterns and one for the rest.
_LBP_NEIGHBOURS = 8
_LBP_RADIUS = 1

# Derivative kernels at 0, 45, 90 and 135 degrees (Sobel and its diagonal rotations), each
# divided by 8 so that a ramp rising by 1 per pixel along the kernel's direction gives 1.
_ORIENTED_KERNELS = [
    np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8,
    np.array([[-2, -1, 0], [-1, 0, 1], [0, 1, 2]]) / 8,
    np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8,
    np.array([[0, -1, -2], [1, 0, -1], [2, 1, 0]]) / 8,
]


def pixel_features(
    image: np.ndarray,
    window: int = 7,
    texture: str | None = "lbp",
    use_position: bool = False,
    texture_weight: float = 1.0,
    position_weight: float = 1.0,
) -> np.ndarray:
    """The (H*W, F) feature matrix k-means clusters; see the module docstring for the features.

    ``texture_weight`` scales the contrast and texture features against the colour ones.
    """
    return _features(as_float_image(image), window, texture, use_position, texture_weight, position_weight)


def _features(
    values: np.ndarray, window: int, texture: str | None, use_position: bool, texture_weight: float,
    position_weight: float,
) -> np.ndarray:
    window = _check_window(window)
    texture = _check_texture(texture)
    texture_weight = _check_weight("texture_weight", texture_weight)
    position_weight = _check_weight("position_weight", position_weight)

    spread = values.std()
    scale = spread if spread > 0 else 1.0
    local_mean, local_std = _local_mean_and_std(values, window)
    groups = [local_mean / scale, texture_weight * local_std / scale]
    gray = values.mean(axis=2)
    if texture == "lbp":
        groups.append(texture_weight * _lbp_histograms(gray, window))
    elif texture == "oriented":
        groups.append(texture_weight * _oriented_energy(gray, window) / scale)
    if use_position:
        groups.append(position_weight * _positions(*gray.shape))
    return np.concatenate([g.reshape(-1, g.shape[-1]) for g in groups], axis=1)


def kmeans_clusters(
    image: np.ndarray,
    k: int,
    window: int = 7,
    texture: str | None = "lbp",
    use_position: bool = False,
    texture_weight: float = 1.0,
    position_weight: float = 1.0,
    random_state: int = 0,
    max_fit_pixels: int = 20_000,
) -> np.ndarray:
    """Cluster the pixels of ``image`` by k-means on :func:`pixel_features`; return an HxW cluster map.

    Clusters are numbered 0..k'-1 in raster order of their first pixel, with k' <= k (fewer
    when the image has fewer than k distinct feature vectors). A cluster need not be
    connected; :func:`kmeans_segmentation` cuts it into regions.

    k-means is fitted on at most ``max_fit_pixels`` pixels drawn at random (with
    ``random_state``), then every pixel goes to its nearest centre: the centres of 20,000
    pixels are as good as those of all 262,144 in a 512x512 image, at a tenth of the cost.
    """
    values = as_float_image(image)
    height, width = values.shape[:2]
    k = _check_k(k, height * width)
    features = _features(values, window, texture, use_position, texture_weight, position_weight)
    if isinstance(max_fit_pixels, bool) or not isinstance(max_fit_pixels, (int, np.integer)) or max_fit_pixels < 1:
        raise ValueError(f"max_fit_pixels must be a positive integer, got {max_fit_pixels!r}")
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)) \
            or not 0 <= random_state < 2**32:  # the seeds scikit-learn accepts
        raise ValueError(f"random_state must be an integer from 0 to 2**32 - 1, got {random_state!r}")

    # scikit-learn takes half a second to import: only k-means pays it, not every
    # `cnnzoo` command nor every user of region growing.
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(random_state)
    sample_size = min(len(features), max(int(max_fit_pixels), k))
    sample = features
    if sample_size < len(features):
        sample = features[rng.choice(len(features), sample_size, replace=False)]
    model = KMeans(n_clusters=k, n_init=3, random_state=random_state)
    # One thread: on problems this small, OpenMP's start-up and spinning cost more than the
    # arithmetic, and on a busy machine twenty times more (measured: 0.04 s vs 0.8 s).
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # Fewer distinct pixels than k (a flat image) is not an error here: it just gives
        # fewer clusters, which the renumbering below makes visible.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(sample)
        clusters = model.predict(features).reshape(height, width)
    return relabel_by_first_appearance(clusters)


def kmeans_segmentation(
    image: np.ndarray,
    k: int,
    window: int = 7,
    texture: str | None = "lbp",
    use_position: bool = False,
    texture_weight: float = 1.0,
    position_weight: float = 1.0,
    connectivity: int = 4,
    predicate: Predicate | None = None,
    random_state: int = 0,
    max_fit_pixels: int = 20_000,
) -> np.ndarray:
    """Segment ``image`` by k-means clustering of colour and texture; return an HxW int64 label map.

    Each cluster of :func:`kmeans_clusters` is cut into its connected pieces (4- or
    8-``connectivity``), numbered 0..R-1 in raster order of their first pixel. With a
    ``predicate``, adjacent pieces whose union satisfies it are then merged (the merge step
    of :func:`~cnnzoo.classical.split_merge.split_and_merge`), which cleans up the small
    fragments that clustering leaves along boundaries.
    """
    check_connectivity(connectivity)
    clusters = kmeans_clusters(image, k, window, texture, use_position, texture_weight, position_weight,
                               random_state, max_fit_pixels)
    # background=-1 (no cluster has that id) makes every pixel part of some component.
    regions = connected_components(clusters, background=-1, connectivity=1 if connectivity == 4 else 2) - 1
    regions = regions.astype(np.int64)
    if predicate is not None:
        regions = merge_adjacent_regions(image, regions, predicate, connectivity)
    return regions


def _local_mean_and_std(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over a window x window box (mirrored at the border)."""
    size = (window, window, 1)
    mean = ndimage.uniform_filter(values, size=size, mode="reflect")
    mean_sq = ndimage.uniform_filter(values**2, size=size, mode="reflect")
    return mean, np.sqrt(np.clip(mean_sq - mean**2, 0.0, None))


def _lbp_histograms(gray: np.ndarray, window: int) -> np.ndarray:
    """Per pixel, the fraction of each uniform LBP code in its window, (H, W, P + 2)."""
    # skimage warns that LBP on floats is fragile (tiny differences flip bits); an order-
    # preserving 16-bit quantisation keeps the comparisons meaningful.
    low, high = gray.min(), gray.max()
    levels = np.round((gray - low) / (high - low) * 65535) if high > low else np.zeros_like(gray)
    codes = local_binary_pattern(levels.astype(np.uint16), _LBP_NEIGHBOURS, _LBP_RADIUS, method="uniform")
    num_codes = _LBP_NEIGHBOURS + 2
    one_hot = (codes[..., None] == np.arange(num_codes)).astype(np.float32)  # fractions need no float64
    return ndimage.uniform_filter(one_hot, size=(window, window, 1), mode="reflect")


def _oriented_energy(gray: np.ndarray, window: int) -> np.ndarray:
    """Per pixel, the RMS response of each oriented derivative filter over its window, (H, W, 4)."""
    energies = []
    for kernel in _ORIENTED_KERNELS:
        response = ndimage.correlate(gray, kernel, mode="reflect")
        energies.append(np.sqrt(ndimage.uniform_filter(response**2, size=window, mode="reflect")))
    return np.stack(energies, axis=-1)


def _positions(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width].astype(np.float64)
    return np.stack([rows, cols], axis=-1) / max(height, width)


def _check_k(k: int, num_pixels: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k (the number of clusters) must be a positive integer, got {k!r}")
    if k > num_pixels:
        raise ValueError(f"k={k} is larger than the number of pixels ({num_pixels})")
    return int(k)


def _check_window(window: int) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd positive integer (1, 3, 5, ...), got {window!r}")
    return int(window)


def _check_texture(texture: str | None) -> str | None:
    if texture is None or (isinstance(texture, str) and texture.lower() == "none"):
        return None
    if isinstance(texture, str) and texture.lower() in TEXTURES:
        return texture.lower()
    raise ValueError(f"texture must be 'lbp', 'oriented' or None, got {texture!r}")


def _check_weight(name: str, weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {weight!r}")
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {weight}")
    return float(weight)
