"""Face geometry of the synthetic generator: the 68-point iBUG mean shape, identity shape modes and the
landmark displacement of each Action Unit.

Template units: x to the subject's left on the image's right (image convention), y down; the jaw spans
x in [-1, 1] and the origin is the "face centre" between nose root (27) and nose tip (30), so a face drawn
with its template origin at the image centre has the nose near the centre (TRA-Net's hard masks rely on it).

Each AU displacement ``AU_DISPLACEMENT[au]`` is the (68, 2) landmark motion at intensity 5 (FACS "E") with
au_strength 1; intensity i moves the landmarks by i/5 of it. The motions follow FACS / AUNet Table I: AU1
raises the inner brows, AU2 the outer brows, AU4 lowers the brows and draws them together, and so on.
Only landmarks of the AU's own region move (checked by tests/test_synthetic.py).
"""

from __future__ import annotations

import numpy as np

from ..schema import AU_UNION

N = 68
JAW, BROW_R, BROW_L = np.arange(0, 17), np.arange(17, 22), np.arange(22, 27)  # R/L: image left / right
NOSE_BRIDGE, NOSE_BASE = np.arange(27, 31), np.arange(31, 36)
EYE_R, EYE_L = np.arange(36, 42), np.arange(42, 48)
MOUTH_OUT, MOUTH_IN = np.arange(48, 60), np.arange(60, 68)
REGIONS: dict[str, np.ndarray] = {"jaw": JAW, "brows": np.arange(17, 27), "nose": np.arange(27, 36),
                                  "eyes": np.arange(36, 48), "mouth": np.arange(48, 68)}
AU_INDEX = {au: k for k, au in enumerate(AU_UNION)}
N_AU = len(AU_UNION)


def _mean_shape() -> np.ndarray:
    p = np.zeros((N, 2))
    # jaw 0..16: from the right temple (image left, eye level) round the chin to the left temple
    t = np.linspace(0.0, 1.0, 17)
    ang = np.pi * t
    p[JAW, 0] = -np.cos(ang) * (1.0 - 0.10 * np.sin(ang) ** 4)
    p[JAW, 1] = -0.28 + 1.28 * np.sin(ang) ** 0.85
    # brows 17..21 (outer -> inner, image left) and 22..26 (inner -> outer, image right)
    bx = np.array([-0.86, -0.70, -0.52, -0.34, -0.16])
    by = np.array([-0.50, -0.60, -0.63, -0.61, -0.55])
    p[BROW_R] = np.stack([bx, by], 1)
    p[BROW_L] = np.stack([-bx[::-1], by[::-1]], 1)
    # nose bridge 27..30 (root -> tip), base 31..35 (image left -> right)
    p[NOSE_BRIDGE] = [[0, -0.26], [0, -0.11], [0, 0.04], [0, 0.19]]
    p[NOSE_BASE] = [[-0.19, 0.27], [-0.10, 0.30], [0, 0.32], [0.10, 0.30], [0.19, 0.27]]
    # eyes: 36 outer, 37 38 upper, 39 inner, 40 41 lower (image left); 42 inner, 43 44 upper, 45 outer, 46 47
    ex = np.array([-0.70, -0.58, -0.39, -0.26, -0.39, -0.58])
    ey = np.array([-0.28, -0.355, -0.36, -0.275, -0.205, -0.205])
    p[EYE_R] = np.stack([ex, ey], 1)
    p[EYE_L] = np.stack([-ex[[3, 2, 1, 0, 5, 4]], ey[[3, 2, 1, 0, 5, 4]]], 1)
    # mouth outer 48..59 (48 corner image left, clockwise on the image: upper lip then lower lip)
    p[MOUTH_OUT] = [[-0.38, 0.56], [-0.25, 0.50], [-0.10, 0.465], [0, 0.48], [0.10, 0.465], [0.25, 0.50],
                    [0.38, 0.56], [0.25, 0.635], [0.12, 0.67], [0, 0.675], [-0.12, 0.67], [-0.25, 0.635]]
    # inner 60..67: 60 corner, 61-63 upper, 64 corner, 65-67 lower (lips closed: a thin line)
    p[MOUTH_IN] = [[-0.31, 0.56], [-0.12, 0.553], [0, 0.556], [0.12, 0.553], [0.31, 0.56], [0.12, 0.562],
                   [0, 0.564], [-0.12, 0.562]]
    return p.astype(np.float32)


MEAN_SHAPE = _mean_shape()  # (68, 2) template units


def _mirror_pairs() -> np.ndarray:
    """Index of each landmark's mirror image (iBUG symmetric pairs)."""
    m = np.arange(N)
    pairs = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + [(31, 35), (32, 34)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
    for a, b in pairs:
        m[a], m[b] = b, a
    return m


MIRROR = _mirror_pairs()


def _sym(d: dict[int, tuple[float, float]]) -> np.ndarray:
    """A symmetric (68, 2) displacement from image-left entries: each index and its mirror (x negated)."""
    out = np.zeros((N, 2), np.float32)
    for i, (dx, dy) in d.items():
        out[i] = (dx, dy)
        j = MIRROR[i]
        if j != i:
            out[j] = (-dx, dy)
    return out


# Displacements at intensity 5, template units (the inner-eye-corner ruler is 0.52 units).
AU_DISPLACEMENT: dict[int, np.ndarray] = {
    1: _sym({21: (0.01, -0.15), 20: (0.0, -0.11), 19: (0.0, -0.05), 18: (0, -0.015)}),  # inner brow raiser
    2: _sym({17: (-0.01, -0.14), 18: (0, -0.13), 19: (0, -0.07), 20: (0, -0.02)}),  # outer brow raiser
    4: _sym({17: (0.01, 0.03), 18: (0.02, 0.05), 19: (0.04, 0.08), 20: (0.06, 0.10), 21: (0.07, 0.10)}),
    5: _sym({37: (0, -0.055), 38: (0, -0.055), 36: (0, -0.01), 39: (0, -0.005)}),  # upper lid raiser
    6: _sym({40: (0, -0.035), 41: (0, -0.05), 36: (0.01, -0.02), 37: (0, 0.01), 38: (0, 0.005)}),  # cheek raiser
    7: _sym({40: (0, -0.05), 41: (0, -0.035), 37: (0, 0.025), 38: (0, 0.03), 39: (-0.005, 0)}),  # lid tightener
    9: _sym({31: (-0.03, -0.05), 32: (-0.01, -0.045), 33: (0, -0.04), 29: (0, -0.02), 30: (0, -0.03),
             50: (0, -0.02), 51: (0, -0.02), 61: (0, -0.012), 62: (0, -0.012)}),  # nose wrinkler
    10: _sym({49: (0, -0.05), 50: (0, -0.075), 51: (0, -0.07), 61: (0, -0.055), 62: (0, -0.05),
              31: (-0.01, -0.02), 32: (0, -0.01), 48: (0, -0.01)}),  # upper lip raiser
    12: _sym({48: (-0.08, -0.10), 49: (-0.035, -0.035), 59: (-0.04, -0.05), 60: (-0.07, -0.085),
              61: (-0.02, -0.02), 67: (-0.02, -0.02), 58: (-0.01, -0.01), 50: (-0.01, -0.01)}),  # lip corner puller
    14: _sym({48: (0.065, -0.025), 60: (0.055, -0.02), 49: (0.02, -0.005), 59: (0.02, -0.005)}),  # dimpler
    15: _sym({48: (-0.01, 0.085), 60: (-0.01, 0.07), 59: (0, 0.04), 49: (0, 0.03), 67: (0, 0.02),
              61: (0, 0.015), 58: (0, 0.01)}),  # lip corner depressor
    17: _sym({57: (0, -0.06), 58: (0, -0.055), 59: (0, -0.03), 66: (0, -0.02), 67: (0, -0.018),
              7: (0, -0.03), 8: (0, -0.05), 6: (0, -0.012)}),  # chin raiser
    20: _sym({48: (-0.10, 0.015), 60: (-0.09, 0.012), 49: (-0.04, 0.01), 59: (-0.05, 0.0), 58: (-0.02, 0),
              61: (-0.02, 0.004), 67: (-0.02, 0)}),  # lip stretcher
    23: _sym({48: (0.05, 0), 60: (0.045, 0), 49: (0.025, 0.03), 50: (0.005, 0.04), 51: (0, 0.04),
              59: (0.025, -0.03), 58: (0.005, -0.045), 57: (0, -0.045)}),  # lip tightener
    24: _sym({49: (0.005, 0.04), 50: (0, 0.055), 51: (0, 0.055), 59: (0, -0.045), 58: (0, -0.065),
              57: (0, -0.065), 48: (0.015, 0.005), 60: (0.015, 0.005)}),  # lip pressor
    25: _sym({61: (0, -0.02), 62: (0, -0.022), 67: (0, 0.07), 66: (0, 0.085), 59: (0, 0.04), 58: (0, 0.055),
              57: (0, 0.06), 60: (0.01, 0), 49: (0, -0.01), 50: (0, -0.012), 51: (0, -0.012)}),  # lips part
    26: _sym({67: (0, 0.09), 66: (0, 0.11), 59: (0, 0.09), 58: (0, 0.11), 57: (0, 0.115), 48: (0.01, 0.02),
              60: (0.01, 0.02), 4: (0.005, 0.04), 5: (0.01, 0.07), 6: (0.01, 0.10), 7: (0.005, 0.12),
              8: (0, 0.13), 3: (0, 0.015)}),  # jaw drop
    # lip suck: both lips rolled into the mouth, the red parts nearly vanish into one pressed line; corners in
    28: _sym({49: (0.01, 0.04), 50: (0, 0.07), 51: (0, 0.075), 59: (0.01, -0.05), 58: (0, -0.085), 57: (0, -0.09),
              48: (0.03, 0.0), 60: (0.025, 0.0), 61: (0, 0.004), 62: (0, 0.004), 67: (0, -0.004), 66: (0, -0.004)}),
}
# Array form, AU_UNION order: (18, 68, 2)
AU_BASIS = np.stack([AU_DISPLACEMENT[a] for a in AU_UNION]).astype(np.float32)


def _shape_modes() -> np.ndarray:
    """Identity shape modes (M, 68, 2), each a plausible between-person difference at 1 std."""
    m = MEAN_SHAPE
    modes = []
    d = np.zeros((N, 2), np.float32)
    d[JAW, 0] = m[JAW, 0] * 0.07  # face width
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    low = JAW[m[JAW, 1] > 0.1]
    d[low, 1] = (m[low, 1] - 0.1) * 0.08  # face length
    d[48:68, 1] = 0.03
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    d[36:48, 0] = np.sign(m[36:48, 0]) * 0.03  # eye spacing
    d[17:27, 0] = np.sign(m[17:27, 0]) * 0.02
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    d[48:68, 0] = m[48:68, 0] * 0.09  # mouth width
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    d[28:36, 1] = np.array([0.01, 0.02, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03])  # nose length
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    d[17:27, 1] = -0.035  # brow height
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    for eye in (EYE_R, EYE_L):  # eye size
        c = m[eye].mean(0)
        d[eye] = (m[eye] - c) * 0.10
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    d[49:54, 1] = -0.015  # lip thickness
    d[55:60, 1] = 0.02
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    sq = [3, 4, 5, 11, 12, 13]
    d[sq, 0] = np.sign(m[sq, 0]) * 0.05  # jaw squareness
    modes.append(d)
    d = np.zeros((N, 2), np.float32)
    d[27:68, 1] = 0.025  # lower-face position
    d[27, 1] = 0.0
    modes.append(d)
    return np.stack(modes).astype(np.float32)


SHAPE_MODES = _shape_modes()  # (10, 68, 2)

# Landmark pairs (upper, lower) that must not cross: eyelids, inner lips, outer/inner lips.
LID_PAIRS = np.array([[37, 41], [38, 40], [43, 47], [44, 46]])
INNER_LIP_PAIRS = np.array([[61, 67], [62, 66], [63, 65]])


def deform(identity_shape: np.ndarray, intensity: np.ndarray, blink: np.ndarray | None = None) -> np.ndarray:
    """Template landmarks (B, 68, 2) of faces with AU ``intensity`` (B, 18) in AU_UNION order (0-5, may be
    scaled by au_strength) on identity shapes (B, 68, 2); ``blink`` (B,) in [0, 1] closes the eyes."""
    # a mild saturation keeps very strong settings (au_strength > 1) anatomically plausible
    w = np.asarray(intensity, np.float32) / 5.0
    w = np.where(w > 1, 1 + np.tanh(w - 1) * 0.5, w).astype(np.float32)
    lm = identity_shape + np.einsum("bk,knd->bnd", w, AU_BASIS, optimize=True)
    if blink is not None:
        b = np.clip(np.asarray(blink, np.float32), 0, 1)[:, None]
        up, lo = LID_PAIRS[:, 0], LID_PAIRS[:, 1]
        lm[:, up, 1] += b * (lm[:, lo, 1] - lm[:, up, 1]) * 0.92
    # lids and inner lips may close but never cross
    for pairs in (LID_PAIRS, INNER_LIP_PAIRS):
        up, lo = pairs[:, 0], pairs[:, 1]
        lm[:, lo, 1] = np.maximum(lm[:, lo, 1], lm[:, up, 1])
    return lm


# FACS names (AUNet Table I) and what the generator does for each AU: landmark motion, appearance cue.
AU_DESCRIPTIONS: dict[int, tuple[str, str, str]] = {
    1: ("Inner brow raiser", "inner brow ends (20-23) up", "horizontal wrinkles over the central forehead"),
    2: ("Outer brow raiser", "outer brow ends (17-19, 24-26) up", "wrinkles over the lateral forehead"),
    4: ("Brow lowerer", "brows down and drawn together", "vertical furrows between the brows"),
    5: ("Upper lid raiser", "upper lids (37, 38, 43, 44) up", "brighter upper lid, crease pushed up, more sclera"),
    6: ("Cheek raiser", "lower lids up from below", "cheek bulge, lower-lid furrow, crow's feet"),
    7: ("Lid tightener", "lower lids up, upper lids slightly down", "lower-lid bulge and dark lid rim"),
    9: ("Nose wrinkler", "nostrils and upper lip up", "wrinkles across the nose bridge, dark alar wings"),
    10: ("Upper lip raiser", "upper lip up", "deep upper nasolabial fold, shadow over the upper lip"),
    12: ("Lip corner puller", "lip corners up and out", "lower nasolabial fold, raised cheek highlight"),
    14: ("Dimpler", "lip corners tucked inwards", "dimples beside the corners"),
    15: ("Lip corner depressor", "lip corners down", "shadow below the corners"),
    17: ("Chin raiser", "chin and lower lip up", "wrinkled chin boss, deep mentolabial crease"),
    20: ("Lip stretcher", "lip corners pulled sideways", "horizontal stretch lines beside the corners"),
    23: ("Lip tightener", "lips narrowed", "vertical lines on the narrowed lips"),
    24: ("Lip pressor", "lips pressed together", "bulges above and below the lips"),
    25: ("Lips part", "inner lips apart", "dark mouth opening with teeth"),
    26: ("Jaw drop", "jaw and lower lip down", "deeper, darker mouth cavity, longer face"),
    28: ("Lip suck", "both lips drawn inwards (48-67): thin, pressed, little red showing",
         "lip colour hidden, deep dark seam, taut bright skin above and below, dimpled corners"),
}
