"""Face alignment by similarity transforms: landmarks -> a paper's template, done once at conversion time.

Coordinates are (x, y) pixels with integer values at pixel centres (the convention of OpenCV's ``warpAffine``
and of most landmark files): the centre of the top-left pixel is (0, 0). A 2x3 matrix ``M`` maps a point
``p`` of the source image to ``M[:, :2] @ p + M[:, 2]`` in the output image.

The templates place the landmarks of a mean 68-point face (iBUG order, :data:`MEAN_SHAPE_68`) in each
paper's input frame:

==========  =====  ========  ==========================================================================
name        size   channels  points used
==========  =====  ========  ==========================================================================
emoco       256    3         all 68 (EmoCo aligns on 5 SeetaFace points; we use the 68 the data has)
aunet       256    3         all 68
rrl         224    3         all 68 (RRL resizes dlib-landmarked faces to 224)
tranet      224    3         2: mid-point of nose root/tip (27, 30) at the centre, chin (8) near the bottom
cnn_study   96     1         4: outer eye corners (36, 45), nose tip (30), chin (8); grey
==========  =====  ========  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["MEAN_SHAPE_68", "TEMPLATES", "Template", "align_dataset", "align_face", "aligned", "apply_transform", "face_crop",
           "get_template", "invert_transform", "resized_template", "similarity_transform", "warp"]


def _mean_shape() -> np.ndarray:
    """A symmetric mean frontal face in iBUG 68-point order, in face-width units (jaw 0..16 spans x -0.5..0.5,
    eyes at y -0.12, chin at y 0.66). Built from simple curves rather than fitted to any dataset: it only has
    to put each landmark in the right place relative to the others."""
    pts = np.zeros((68, 2))
    t = np.linspace(0.0, np.pi, 17)
    pts[0:17] = np.c_[-0.5 * np.cos(t), -0.10 + 0.68 * np.sin(t) ** 0.8]          # jaw, ear to ear via chin
    s = np.linspace(0.0, 1.0, 5)
    brow_x = -0.40 + 0.33 * s
    brow_y = -0.27 - 0.06 * np.sin(np.pi * (0.3 + 0.7 * s))                      # arch peaks outer-middle
    pts[17:22] = np.c_[brow_x, brow_y]                                             # right brow (image left)
    pts[22:27] = np.c_[-brow_x[::-1], brow_y[::-1]]                                # left brow, mirrored
    pts[27:31] = np.c_[np.zeros(4), np.linspace(-0.15, 0.10, 4)]                  # nose bridge, 30 = tip
    pts[31:36] = np.c_[np.linspace(-0.10, 0.10, 5), [0.15, 0.17, 0.18, 0.17, 0.15]]  # nostrils
    ang = np.deg2rad([180, 120, 60, 0, -60, -120])                                # corner, upper, corner, lower
    eye = np.c_[0.11 * np.cos(ang), -0.045 * np.sin(ang) * 0.9]
    pts[36:42] = eye + [-0.22, -0.12]                                              # 36 outer .. 39 inner
    pts[42:48] = pts[[39, 38, 37, 36, 41, 40]] * [-1, 1]                           # 42 inner .. 45 outer
    pts[48:60] = [[-0.20, 0.33], [-0.13, 0.29], [-0.05, 0.27], [0.0, 0.28], [0.05, 0.27], [0.13, 0.29],
                  [0.20, 0.33], [0.13, 0.38], [0.06, 0.41], [0.0, 0.42], [-0.06, 0.41], [-0.13, 0.38]]
    pts[60:68] = [[-0.15, 0.335], [-0.05, 0.315], [0.0, 0.32], [0.05, 0.315], [0.15, 0.335], [0.05, 0.35],
                  [0.0, 0.355], [-0.05, 0.35]]
    # stretch the face below the eyes so that, in eye-corner units, nose tip, mouth corners and chin sit where
    # they do on typical adult frontal faces (about 0.25, 0.50 and 0.78 face widths below the eye line)
    lower = np.r_[0:17, 27:36, 48:68]
    pts[lower, 1] = -0.12 + (pts[lower, 1] + 0.12) * 1.12
    return pts.astype(np.float32)


#: Mean frontal 68-point face shape, (68, 2) float32 in face-width units, centred on x = 0.
MEAN_SHAPE_68: np.ndarray = _mean_shape()


@dataclass(frozen=True)
class Template:
    """Where chosen landmark groups go in an ``size`` x ``size`` output.

    ``groups[g]`` lists landmark indices whose mean is point g (a single index for most points);
    ``points`` (G, 2) are their destinations in output pixels; ``channels`` 1 converts to grey, 3 to RGB."""

    name: str
    size: int
    channels: int
    groups: tuple[tuple[int, ...], ...]
    points: np.ndarray

    @cached_property
    def _weights(self) -> np.ndarray:
        w = np.zeros((len(self.groups), 68))  # (G, 68): row g averages the landmarks of group g
        for g, idx in enumerate(self.groups):
            w[g, list(idx)] = 1.0 / len(idx)
        return w

    def source_points(self, landmarks: np.ndarray) -> np.ndarray:
        """(G, 2) points of ``landmarks`` (68, 2) matching ``points``."""
        return self._weights @ np.asarray(landmarks, dtype=np.float64)

    def template_landmarks(self) -> np.ndarray:
        """All 68 mean-shape landmarks mapped into this template's frame (68, 2)."""
        m = similarity_transform(self.source_points(MEAN_SHAPE_68), self.points)
        return apply_transform(m, MEAN_SHAPE_68)


def _placed(size: int, face_width: float, centre_y: float) -> np.ndarray:
    """Mean shape scaled to ``face_width`` x size and shifted so its bounding-box centre is at
    (size/2, centre_y x size); pixel-centre coordinates, so the image centre is (size-1)/2."""
    shape = MEAN_SHAPE_68.astype(np.float64)
    mid = (shape.min(axis=0) + shape.max(axis=0)) / 2
    c = np.array([(size - 1) / 2, centre_y * (size - 1)])
    return (shape - mid) * face_width * size + c


def _full(name: str, size: int, channels: int, face_width: float = 0.74, centre_y: float = 0.54) -> Template:
    return Template(name, size, channels, tuple((i,) for i in range(68)), _placed(size, face_width, centre_y))


def _tranet() -> Template:
    # TRA-Net §4 "Implementation details": nose mid-point near the frame centre, lower-jaw middle near the bottom.
    size = 224
    c = (size - 1) / 2
    return Template("tranet", size, 3, ((27, 30), (8,)), np.array([[c, c], [c, 0.94 * (size - 1)]]))


def _cnn_study() -> Template:
    size = 96
    full = _placed(size, 0.80, 0.52)
    idx = (36, 45, 30, 8)
    return Template("cnn_study", size, 1, tuple((i,) for i in idx), full[list(idx)])


TEMPLATES: dict[str, Template] = {
    "emoco": _full("emoco", 256, 3),
    "aunet": _full("aunet", 256, 3),
    "rrl": _full("rrl", 224, 3),
    "tranet": _tranet(),
    "cnn_study": _cnn_study(),
}


def get_template(template: str | Template) -> Template:
    if isinstance(template, Template):
        return template
    if template not in TEMPLATES:
        raise KeyError(f"unknown alignment template {template!r}; choose one of {', '.join(TEMPLATES)}")
    return TEMPLATES[template]


# -- transforms ---------------------------------------------------------------------------------------------
def similarity_transform(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift; no reflection) mapping ``src_pts`` onto
    ``dst_pts``, both (N, 2) with N >= 2. Umeyama (1991), Eq. 40-42. Returns a 2x3 float64 matrix."""
    src = np.asarray(src_pts, dtype=np.float64)
    dst = np.asarray(dst_pts, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape:
        raise ValueError(f"src_pts and dst_pts must both be (N, 2), got {src.shape} and {dst.shape}")
    if len(src) < 2:
        raise ValueError("a similarity transform needs at least 2 point pairs")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("landmarks contain NaN or inf")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("source points all coincide; no transform is defined")
    cov = dc.T @ sc / len(src)                      # (2, 2) Eq.38
    u, d, vt = np.linalg.svd(cov)
    e = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:    # Eq.39: flip the weakest axis rather than reflect
        e[-1] = -1
    rot = u @ np.diag(e) @ vt                       # Eq.40
    scale = (d * e).sum() / var_s                   # Eq.42
    shift = mu_d - scale * rot @ mu_s               # Eq.41
    return np.c_[scale * rot, shift]


def apply_transform(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a 2x3 matrix."""
    m = np.asarray(matrix, dtype=np.float64)
    p = np.asarray(pts, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def invert_transform(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    return np.c_[a_inv, -a_inv @ m[:, 2]]


def warp(image: np.ndarray, matrix: np.ndarray, out_size: int | tuple[int, int], fill: int = 0) -> np.ndarray:
    """Resample uint8 ``image`` (H, W) or (H, W, C) so that source pixel p lands at ``matrix @ p`` in an
    output of ``out_size`` (an int for square, or (H, W)); bilinear, outside filled with ``fill``."""
    from PIL import Image

    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"warp expects a uint8 image, got {img.dtype}")
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    oh, ow = (out_size, out_size) if np.isscalar(out_size) else tuple(int(v) for v in out_size)
    inv = invert_transform(matrix)
    # PIL samples output pixel centres at (x + .5, y + .5) in a frame where source pixel i spans [i, i+1):
    # move our centre-at-integer convention into PIL's by a half-pixel shift on both sides.
    a = inv[:, :2]
    t = inv[:, 2] + 0.5 - a @ np.array([0.5, 0.5])
    coeffs = (a[0, 0], a[0, 1], t[0], a[1, 0], a[1, 1], t[1])

    def one(plane: np.ndarray, mode: str) -> np.ndarray:
        im = Image.fromarray(plane, mode=None)
        out = im.transform((ow, oh), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR,
                           fillcolor=fill if mode == "L" else (fill,) * 3)
        return np.asarray(out)

    if img.ndim == 2:
        return one(img, "L")
    if img.shape[2] == 3:
        return one(np.ascontiguousarray(img), "RGB")
    return np.stack([one(np.ascontiguousarray(img[..., c]), "L") for c in range(img.shape[2])], axis=-1)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W, C) with C converted to ``channels`` (grey by ITU-R 601 luma, as PIL's "L")."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    c = img.shape[2]
    if c == channels:
        return img
    if channels == 1 and c == 3:
        luma = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    if channels == 3 and c == 1:
        return np.repeat(img, 3, axis=2)
    raise ValueError(f"cannot convert an image with {c} channels to {channels}")


def align_face(image: np.ndarray, landmarks: np.ndarray, template: str | Template = "aunet",
               return_matrix: bool = False):
    """Align a face to ``template``.

    image: uint8 (H, W, C) or (H, W); landmarks: (68, 2) pixel (x, y). Returns the aligned uint8
    (size, size, template.channels) image and the (68, 2) float32 landmarks in it (and the 2x3 matrix when
    ``return_matrix``)."""
    tpl = get_template(template)
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2), got {lm.shape}")
    m = similarity_transform(tpl.source_points(lm), tpl.points)
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    out = to_channels(warp(img, m, tpl.size), tpl.channels)
    out_lm = apply_transform(m, lm).astype(np.float32)
    return (out, out_lm, m) if return_matrix else (out, out_lm)


# -- whole datasets -----------------------------------------------------------------------------------------
def resized_template(template: str | Template, size: int | None = None, channels: int | None = None) -> Template:
    """``template`` at another output size (points scaled with the pixel-centre convention) and/or channels."""
    tpl = get_template(template)
    size = size or tpl.size
    channels = channels or tpl.channels
    if size == tpl.size and channels == tpl.channels:
        return tpl
    pts = (np.asarray(tpl.points, dtype=np.float64) + 0.5) * size / tpl.size - 0.5
    return Template(f"{tpl.name}_{size}", size, channels, tpl.groups, pts)


def align_dataset(ds, template: str | Template, size: int | None = None, channels: int | None = None):
    """Every frame of canonical dataset ``ds`` aligned to ``template`` (optionally resized to ``size`` px and
    ``channels``); returns a packed, in-memory :class:`~aulib.data.schema.CanonicalDataset` whose landmarks
    moved with the faces. The original is untouched."""
    import dataclasses

    from .schema import CanonicalDataset

    tpl = resized_template(template, size, channels)
    n = len(ds)
    images = np.empty((n, tpl.size, tpl.size, tpl.channels), np.uint8)
    landmarks = np.empty((n, 68, 2), np.float32)
    for i in range(n):
        images[i], landmarks[i] = align_face(ds.image(i), ds.landmarks[i], tpl)
    meta = dataclasses.replace(ds.meta, image_size=(tpl.size, tpl.size), channels=tpl.channels, storage="packed",
                               provenance={**ds.meta.provenance, "aligned": f"{tpl.name} template {tpl.size}px"})
    frames = ds.frames.drop(columns=[c for c in ("path",) if c in ds.frames]).assign(image=np.arange(n))
    return CanonicalDataset(meta, frames, landmarks, images)


def aligned(ds, template: str | Template | None, size: int | None = None, channels: int | None = None):
    """``ds`` cut by ``template`` (:func:`align_dataset`), or ``ds`` itself when ``template`` is None: what a
    profile's ``align`` setting asks of an experiment's data."""
    return ds if not template else align_dataset(ds, template, size=size, channels=channels)


# -- the one crop recipe ------------------------------------------------------------------------------------
def face_crop(image: np.ndarray, landmarks: np.ndarray, template: str | Template = "rrl", size: int | None = None,
              channels: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The crop every part of aulib applies to a face: converters (``--align``), :func:`align_dataset`,
    ``python -m aulib train`` and ``python -m aulib predict`` all go through these steps, so a face found in a
    user's photo is cut exactly as the faces a checkpoint was trained on (its ``preprocessing`` records
    ``template``, ``size`` and ``channels``):

    1. 68 iBUG landmarks (x, y) in source pixels (dlib's 68-point model, or the dataset's own);
    2. the template's points scaled to ``size`` px (:func:`resized_template`, pixel-centre convention);
    3. the least-squares similarity transform (rotation, uniform scale, shift; Umeyama) from the template's
       landmark groups in ``landmarks`` onto those points (:func:`similarity_transform`);
    4. bilinear resampling into ``size`` x ``size``, outside filled with black (:func:`warp`);
    5. conversion to ``channels`` (grey by ITU-R 601 luma, :func:`to_channels`).

    Returns (crop uint8 (size, size, channels), landmarks (68, 2) in the crop, the 2x3 source -> crop matrix)."""
    return align_face(image, landmarks, resized_template(template, size, channels), return_matrix=True)
