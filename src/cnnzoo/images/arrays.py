"""Image arrays as the classical methods and the overlay writer take them."""

from __future__ import annotations

import numpy as np

__all__ = ["as_float_image"]


def as_float_image(image: np.ndarray) -> np.ndarray:
    """Check an HxW or HxWxC image and return it as float64 with shape (H, W, C).

    Values keep their units (0-255 for uint8): thresholds are given in the same units.
    """
    image = np.asarray(image)
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be HxW (grayscale) or HxWxC (colour), got shape {image.shape}")
    if image.dtype != bool and not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"image must hold integers, floats or booleans, got dtype {image.dtype}")
    values = image.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("image contains NaN or infinite values")
    return values[..., np.newaxis] if values.ndim == 2 else values
