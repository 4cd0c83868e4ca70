"""Vectorised colour maps from scalar values to 8-bit RGB."""

from __future__ import annotations

import numpy as np

__all__ = ["COLORMAPS", "colormap"]

NAN_COLOR = np.array([128, 128, 128], dtype=np.uint8)

# Polynomial fits avoid shipping 256-entry tables: close to the originals, not identical
# (turbo's published fit is a few percent darker at the very ends).
# Turbo: Mikhailov (Google, 2019), published degree-5 approximation, coefficients for 1, t..t^5.
_TURBO = np.array(
    [
        [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
        [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
        [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
    ]
)
# Viridis: degree-6 least-squares fit of matplotlib's table (Matt Zucker, shadertoy WlfXRN).
_VIRIDIS = np.array(
    [
        [
            0.2777273272234177,
            0.1050930431085774,
            -0.3308618287255563,
            -4.634230498983486,
            6.228269936347081,
            4.776384997670288,
            -5.435455855934631,
        ],
        [
            0.005407344544966578,
            1.404613529898575,
            0.214847559468213,
            -5.799100973351585,
            14.17993336680509,
            -13.74514537774601,
            4.645852612178535,
        ],
        [
            0.3340998053353061,
            1.384590162594685,
            0.09509516302823659,
            -19.33244095627987,
            56.69055260068105,
            -65.35303263337234,
            26.3124352495832,
        ],
    ]
)


def _polynomial(coeffs: np.ndarray):
    def apply(t: np.ndarray) -> np.ndarray:
        powers = t[:, None] ** np.arange(coeffs.shape[1])
        return powers @ coeffs.T

    return apply


COLORMAPS = {
    "turbo": _polynomial(_TURBO),
    "viridis": _polynomial(_VIRIDIS),
    "gray": lambda t: np.repeat(t[:, None], 3, axis=1),
    "grey": lambda t: np.repeat(t[:, None], 3, axis=1),
}


def colormap(
    values: np.ndarray,
    name: str = "turbo",
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Map ``values`` (N,) to (N, 3) uint8 RGB; NaN maps to grey.

    ``vmin``/``vmax`` default to the finite range of ``values``; a constant input maps to
    the middle of the map.
    """
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose from {sorted(COLORMAPS)}")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(v)
    if vmin is None or vmax is None:
        lo, hi = (v[finite].min(), v[finite].max()) if finite.any() else (0.0, 1.0)
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    span = float(vmax) - float(vmin)
    with np.errstate(invalid="ignore"):
        t = (v - vmin) / span if span > 0 else np.full_like(v, 0.5)
    t = np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0)
    rgb = np.clip(COLORMAPS[name](t), 0.0, 1.0)
    out = np.rint(rgb * 255.0).astype(np.uint8)
    out[np.isnan(v)] = NAN_COLOR
    return out
