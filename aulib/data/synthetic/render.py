"""Vectorised numpy rasteriser of the synthetic faces.

A batch of faces is drawn in *template space* (a square grid over the face's own units, see ``face.py``),
where every facial contour is a function of x: jaw, forehead, brows, lids and lips are piecewise-linear curves
through the landmarks evaluated once per column, and a pixel's coverage is a soft comparison with them. Each
feature and each AU's appearance cue works in a fixed window of the grid (the face is normalised there), so
nothing loops over pixels or faces in python. One bilinear warp then places the face in the image with its
head pose (rotation, scale, shift, slight yaw); lighting, occluders, blur and sensor noise follow in image space.

Appearance cues of the AUs (amplitude ``a = cue_amplitude(intensity x au_strength)``, 1 at intensity 5):
AU1/AU2 horizontal forehead wrinkles above the inner / outer brows, AU4 vertical glabellar furrows and brow
shadow, AU5 bright upper lid (crease gone), AU6 cheek bulge, lower-lid furrow and crow's feet, AU7 lower-lid
bulge and dark lid rim, AU9 wrinkles across the nose bridge and dark alar wings, AU10 deep upper nasolabial fold
and shadow over the upper lip, AU12 lower nasolabial fold and cheek highlight, AU14 dimples beside the corners,
AU15 shadow below the corners, AU17 wrinkled chin boss and deep mentolabial crease, AU20 horizontal stretch lines
and neck cords, AU23 vertical lines on narrowed lips, AU24 bulges above and below pressed lips, AU25/AU26 the
mouth opening (dark cavity, teeth) from the landmark geometry itself, AU26 a darker, deeper cavity, AU28 lips
rolled in (lip colour hidden, deep dark seam, taut bright skin above and below, dark pits at the corners).

Version 2 (GENERATOR_VERSION "2"; version 1 cues were mostly below one grey level at 64 px): the amplitude is
concave in the intensity (0.58 at the occurrence threshold 1.5 instead of 0.3; unchanged 1 at 5); the cues have
about twice the contrast (forehead lines 0.30 -> 0.60 plus a broad darkening, glabellar furrows 0.42 -> 0.65 plus
a broad knot and a lid shadow for AU4, AU5 lid 0.16 -> 0.45, AU6 furrow / crow's feet 0.22 / 0.28 -> 0.40 / 0.45,
AU7 bulge 0.18 -> 0.60 and a wider, darker rim, AU9 wings / lines 0.35 / 0.45 -> 0.50 / 0.60, AU10 / AU12 fold
0.40 / 0.45 -> 0.60, AU12 cheek 0.12 -> 0.30, AU15 shadow 0.35 -> 0.80 and wider, AU17 crease 0.35 -> 0.65 and a
broad boss, AU23 darker lips and a dark rolled border, AU24 bulges 0.22 -> 0.70 and blanched lips); thin cues
are at least ~1 template pixel wide (``Renderer.w``) and wrinkle periods at least 4 pixels (``Renderer.period``),
so they survive at 64 px. Landmark motion (``face.py``) is unchanged.

Tried for a version 3 and not adopted (measured 2026-12-06): the AUs the 64-px ladder CNN ranks lowest (AU7,
AU14, AU15, AU23, AU24) got stronger cues (AU7 a broader, brighter lid bulge 0.60 -> 0.90 and a dark line under
it; AU14 wider dimples and a vertical crease beside each corner; AU23 vertical purse lines above and below the
lips; AU24 bulges 0.70 -> 0.90 with shaded edges). On BP4D-like fold 1 (aligned, 64 px, 24 epochs) the CNN's
mean AUC moved from 0.876 to 0.881 (AU14 0.86 -> 0.89, AU24 0.78 -> 0.81, AU23 0.82 -> 0.78, AU7 0.80 -> 0.81)
and aligned-pixel logistic regression from AU14 0.70 -> 0.90 but AU24 0.81 -> 0.70: within one fold's noise
except AU14, not worth regenerating every report. A frame below the occurrence threshold still shows a trace of
the AU (``labels.py``), as real faces do. Rendering without those traces (labels unchanged; the same fold, 8
epochs, the ladder's cpu settings) lifted every rung a little: aligned-pixel regression 0.893 -> 0.930, landmarks
0.871 -> 0.893, the aligned CNN 0.815 -> 0.844, with its rare AUs moving both ways (AU15 0.52 -> 0.84, AU24
0.77 -> 0.63): the traces cost a few points of AUC everywhere and are kept (measured 2026-12-06).
"""

from __future__ import annotations

import numpy as np

from .face import AU_INDEX

HALF = 1.4  # template grid spans [-HALF, HALF] in both axes (beyond: the border repeats)
UNIT = 0.37  # face units -> fraction of the image size (jaw half-width = 0.37 S)
YAW_DEPTH = 0.3  # depth of the face's midline used by the yaw approximation
CUE_K = 2.5  # appearance response: amp = (1 - exp(-k i / 5)) / (1 - exp(-k)), concave, 1 at intensity 5

F32 = np.float32


def _a(au_amp: np.ndarray, au: int) -> np.ndarray:
    """(B, 1, 1) amplitude of one AU."""
    return au_amp[:, AU_INDEX[au], None, None]


def cue_amplitude(intensity: np.ndarray) -> np.ndarray:
    """Appearance amplitude of AU intensities (0-5, times au_strength): concave, so that the wrinkles and bulges
    of a B-C intensity (just above the occurrence threshold) are clearly visible (0.58 at 1.5, 0.78 at 2.5 where
    version 1 had i / 5 = 0.3, 0.5) and saturate towards E (1 at 5, as in version 1)."""
    i = np.maximum(np.asarray(intensity, F32), 0)
    return ((1 - np.exp(-CUE_K * i / 5)) / (1 - np.exp(-CUE_K))).astype(F32)


def pl_curve(xq: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Piecewise-linear curve through nodes (nx, ny) (B, n), nx increasing, at columns xq (w,) -> (B, w).
    Constant beyond the end nodes."""
    nx = np.maximum.accumulate(nx, axis=1) + np.arange(nx.shape[1], dtype=F32) * 1e-4
    out = np.repeat(ny[:, :1], len(xq), axis=1).astype(F32)
    dx = np.diff(nx, axis=1)
    dy = np.diff(ny, axis=1)
    for k in range(nx.shape[1] - 1):
        t = (xq[None, :] - nx[:, k : k + 1]) / dx[:, k : k + 1]
        np.clip(t, 0, 1, out=t)
        out += t * dy[:, k : k + 1]
    return out


def _ramp(d: np.ndarray, e: float) -> np.ndarray:
    """Soft step: 0 below -e/2, 1 above e/2 (anti-aliased edge of width e)."""
    r = d * (1.0 / e)
    r += 0.5
    np.clip(r, 0, 1, out=r)
    return r


def _gauss(d2: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * d2)


def _g2(vx, cx, sx, vy, cy, sy) -> np.ndarray:
    """Axis-aligned 2-D Gaussian bump as the product of its separable factors (B, 1, w) x (B, h, 1)."""
    return _gauss(((vx - cx) / sx) ** 2) * _gauss(((vy - cy) / sy) ** 2)


class Renderer:
    """Draws faces of one image size and channel count; reusable across batches."""

    def __init__(self, image_size: int = 112, channels: int = 1):
        if not 32 <= image_size <= 512:
            raise ValueError(f"image_size must be in 32..512 (64..256 recommended), got {image_size}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        self.S, self.C = int(image_size), int(channels)
        self.R = int(round(2 * HALF * UNIT * self.S))
        self.du = 2 * HALF / self.R  # template units per template pixel
        self.xs = (-HALF + (np.arange(self.R) + 0.5) * self.du).astype(F32)
        self.ys = self.xs.copy()
        self.e = F32(self.du * 1.2)  # edge softness
        # generator v2: thin cues (wrinkles, furrows, creases) are at least ~1 pixel wide and wrinkle periods at
        # least ~4 pixels, so they survive at 64 px instead of vanishing between the samples
        self.lw = F32(0.5 * self.du)
        # fixed fine texture (pores, chin dimpling) shared by all faces, values ~[-1, 1]
        rng = np.random.default_rng(12345)
        fine = rng.standard_normal((self.R, self.R)).astype(F32)
        fine = (fine + np.roll(fine, 1, 0) + np.roll(fine, 1, 1) + np.roll(fine, (1, 1), (0, 1))) / 2
        self.fine = fine
        # bilinear upsampling matrix for the per-subject low-resolution skin texture
        self.tex_res = 12
        self.U = self._interp_matrix(self.tex_res, self.R)
        self.noise_bank = rng.standard_normal((8, self.S + 24, self.S + 24)).astype(F32)
        px = np.arange(self.S, dtype=F32) + 0.5
        self.px, self.py = px[None, None, :], px[None, :, None]

    @staticmethod
    def _interp_matrix(n: int, m: int) -> np.ndarray:
        pos = np.linspace(0, n - 1, m)
        i0 = np.clip(np.floor(pos).astype(int), 0, n - 2)
        f = pos - i0
        u = np.zeros((m, n), F32)
        u[np.arange(m), i0] = 1 - f
        u[np.arange(m), i0 + 1] += f
        return u

    def w(self, sigma: float) -> F32:
        """Width of a thin cue: ``sigma`` (template units) widened by half a template pixel."""
        return F32(np.hypot(sigma, self.lw))

    def period(self, p: float) -> F32:
        """Wrinkle period: ``p`` template units, at least 4 template pixels."""
        return F32(max(p, 4.0 * self.du))

    # -- windows ---------------------------------------------------------------------------------------------
    def win(self, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        c0, c1 = (np.clip(np.round((np.array([x0, x1]) + HALF) / self.du), 0, self.R)).astype(int)
        r0, r1 = (np.clip(np.round((np.array([y0, y1]) + HALF) / self.du), 0, self.R)).astype(int)
        return slice(r0, r1), slice(c0, c1), self.xs[c0:c1], self.ys[r0:r1]

    # -- geometry --------------------------------------------------------------------------------------------
    def to_image(self, lm_t: np.ndarray, pose: dict) -> np.ndarray:
        """Template landmarks (B, 68, 2) -> image pixels (B, 68, 2) under ``pose``."""
        x, y = lm_t[..., 0], lm_t[..., 1]
        yaw = pose["yaw"][:, None]
        xp = x * np.cos(yaw) + np.sin(yaw) * YAW_DEPTH * (1 - np.minimum(x * x, 1))
        s = pose["scale"][:, None] * UNIT * self.S
        th = pose["theta"][:, None]
        c, sn = np.cos(th), np.sin(th)
        cx = self.S / 2 + pose["tx"][:, None] * self.S
        cy = self.S / 2 + pose["ty"][:, None] * self.S
        return np.stack([cx + s * (c * xp - sn * y), cy + s * (sn * xp + c * y)], -1).astype(F32)

    # -- drawing ---------------------------------------------------------------------------------------------
    def render(self, fp: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Render a batch. ``fp`` holds per-frame arrays (see ``generate``); returns
        (images uint8 (B, S, S, C), landmarks float32 (B, 68, 2) image pixels, before landmark noise)."""
        lm = fp["lm"].astype(F32)  # (B, 68, 2) template units
        amp = cue_amplitude(fp["au"])  # (B, 18) appearance amplitude
        B, R, e = lm.shape[0], self.R, self.e
        rgb = self.C == 3
        X, Y = self.xs[None, None, :], self.ys[None, :, None]

        def col(v):
            return np.asarray(v, F32).reshape(B, 1, 1)

        skin = col(fp["skin"])
        # background: grey level with a gradient (template space; the warp turns it with the head)
        L = col(fp["bg"]) + col(fp["bg_gx"]) * X + col(fp["bg_gy"]) * Y
        L = np.broadcast_to(L, (B, R, R)).copy()
        chroma = np.full((B, R, R), -1.0, F32) if rgb else None  # -1 background, 0 neutral grey, 1 skin
        red = np.zeros((B, R, R), F32) if rgb else None

        def paint(region, alpha, lum, ch=None, rd=None):
            """Alpha-blend luminance ``lum`` into L[region] (and the RGB helper maps)."""
            Lr = L[region]
            Lr += alpha * (lum - Lr)
            if rgb:
                if ch is not None:
                    c = chroma[region]
                    c += alpha * (ch - c)
                if rd is not None:
                    r = red[region]
                    r += alpha * (rd - r)

        full = (slice(None), slice(None), slice(None))
        # face outline: jaw below, forehead arc above, both functions of x
        jaw_y = pl_curve(self.xs, lm[:, 0:17, 0], lm[:, 0:17, 1])[:, None, :]  # (B, 1, R)
        x0, x16 = lm[:, 0, 0][:, None], lm[:, 16, 0][:, None]
        xc, hw = (x0 + x16) / 2, (x16 - x0) / 2
        y_ends = (lm[:, 0, 1] + lm[:, 16, 1])[:, None] / 2
        u = np.clip((self.xs[None, :] - xc) / hw, -1, 1)
        arc = np.sqrt(1 - u * u)
        fh = col(fp["forehead"])[:, 0]  # forehead height (units)
        top_y = (y_ends - fh * arc)[:, None, :]  # (B, 1, R)
        fcol = _ramp(self.xs[None, :] - x0, e) * _ramp(x16 - self.xs[None, :], e)
        face = _ramp(Y - top_y, e) * _ramp(jaw_y - Y, e) * fcol[:, None, :]  # (B, R, R)
        # hair volume over the head (rows above the eyes only)
        hair_on = col(fp["hair_amount"])
        rs, _, _, yw = self.win(-HALF, HALF, -HALF, 0.15)
        Yw = yw[None, :, None]
        hy = (y_ends - (fh + 0.12) * np.sqrt(np.clip(1 - ((self.xs[None, :] - xc) / (hw * 1.1)) ** 2, 0, 1)))
        hcol = _ramp(1.08 * hw - np.abs(self.xs[None, :] - xc), e)[:, None, :]
        hair = _ramp(Yw - hy[:, None, :], e) * _ramp(y_ends[:, :, None] + 0.15 - Yw, e * 6) * hcol * hair_on
        paint((slice(None), rs), hair, col(fp["hair"]), 0.3, 0.0)
        # neck (rows below the mouth only)
        rs, _, _, yw = self.win(-HALF, HALF, 0.35, HALF)
        neck_w = 0.5 * hw[:, :, None]
        neck = _ramp(neck_w - np.abs(X - xc[:, :, None]), e * 2) * _ramp(yw[None, :, None] - 0.4, e)
        paint((slice(None), rs), neck, skin * 0.72, 1.0, 0.0)
        # skin: per-subject low-res texture, a little 3-D shading towards the sides
        tex = np.einsum("rn,bnm,km->brk", self.U, fp["tex"].astype(F32), self.U, optimize=True)
        tex *= 0.05
        tex += 1 + 0.015 * self.fine
        tex *= skin * (1 - 0.16 * (X / hw[:, :, None]) ** 2)
        paint(full, face, tex, 1.0, 0.0)
        # fringe: hair over the forehead above the hairline
        rs, _, _, yw = self.win(-HALF, HALF, -HALF, -0.3)
        hl = col(fp["hairline"])  # distance of the hairline above the brows (units)
        brow_top = np.minimum(lm[:, 19, 1], lm[:, 24, 1])[:, None, None]
        fringe = face[:, rs] * _ramp((brow_top - hl) - yw[None, :, None], e * 3) * hair_on
        paint((slice(None), rs), fringe, col(fp["hair"]), 0.3, 0.0)

        # cheek blush (RGB only)
        if rgb:
            w = self.win(-0.9, 0.9, -0.2, 0.6)
            reg = (slice(None), w[0], w[1])
            bl = _gauss(((np.abs(w[2][None, None, :]) - 0.55) / 0.18) ** 2 + ((w[3][None, :, None] - 0.2) / 0.15) ** 2)
            red[reg] += 0.25 * bl * face[reg]

        self._forehead(L, lm, amp, face, fp)
        self._brows(L, lm, paint, fp, amp, e)
        self._eyes(L, lm, paint, fp, amp, e)
        self._nose(L, lm, amp, fp)
        self._cheeks(L, lm, amp, fp, face)
        self._mouth(L, lm, paint, fp, amp, e, face)
        if rgb:
            L = np.stack([L, chroma, red], -1)
        img = self._warp(L, fp)
        lm_px = self.to_image(lm, fp)
        img = self._image_space(img, fp, rng)
        return img, lm_px

    # -- features --------------------------------------------------------------------------------------------
    def _forehead(self, L, lm, amp, face, fp):
        rs, cs, xw, yw = self.win(-0.95, 0.95, -1.3, -0.35)
        reg = (slice(None), rs, cs)
        nodes = np.r_[17:27]
        yb = pl_curve(xw, lm[:, nodes, 0], lm[:, nodes, 1])[:, None, :]  # brow line per column
        d = yb - yw[None, :, None]  # height above the brow
        stripes = (0.5 + 0.5 * np.cos(d * (2 * np.pi / self.period(0.095)))) ** 2
        band = _ramp(d - 0.07, 0.04) * _ramp(0.36 - d, 0.08)
        xc = (lm[:, 21, 0] + lm[:, 22, 0])[:, None, None] / 2
        e1 = _gauss(((xw[None, None, :] - xc) / 0.22) ** 2)
        e2 = _gauss(((np.abs(xw[None, None, :] - xc) - 0.55) / 0.17) ** 2)
        age = fp["age"].reshape(-1, 1, 1)
        a12 = _a(amp, 1) * e1 + _a(amp, 2) * e2
        a = 0.60 * a12 + 0.05 * age
        L[reg] *= 1 - (a * stripes + 0.25 * a12) * band * face[reg]  # lines, and the folded skin a little darker
        # AU4: vertical furrows between the brows and a shadow under the lowered brows
        rs, cs, xw, yw = self.win(-0.35, 0.35, -0.95, -0.2)
        reg = (slice(None), rs, cs)
        ym = (lm[:, 21, 1] + lm[:, 22, 1])[:, None, None] / 2
        dx = np.abs(xw[None, None, :] - xc)
        vy = yw[None, :, None]
        furrow = _gauss(((dx - 0.05) / self.w(0.018)) ** 2) * _ramp(vy - (ym - 0.17), 0.06) * _ramp(ym + 0.1 - vy, 0.06)
        bump = _gauss((dx / 0.05) ** 2) * _gauss(((vy - ym + 0.02) / 0.05) ** 2)
        a4 = _a(amp, 4)
        glab = _gauss((dx / 0.13) ** 2) * _gauss(((vy - ym + 0.06) / 0.09) ** 2)  # knotted skin between the brows
        L[reg] *= (1 - 0.65 * a4 * furrow) * (1 + 0.15 * a4 * bump) * (1 - 0.2 * a4 * glab)

    def _brows(self, L, lm, paint, fp, amp, e):
        for nodes, (x0, x1) in ((np.r_[17:22], (-1.0, -0.0)), (np.r_[22:27], (0.0, 1.0))):
            rs, cs, xw, yw = self.win(x0, x1, -1.05, -0.3)
            reg = (slice(None), rs, cs)
            yb = pl_curve(xw, lm[:, nodes, 0], lm[:, nodes, 1])[:, None, :]
            xa, xb = lm[:, nodes[0], 0][:, None, None], lm[:, nodes[-1], 0][:, None, None]
            t = np.clip((xw[None, None, :] - xa) / (xb - xa), 0, 1)
            if nodes[0] == 22:
                t = 1 - t  # thicker towards the inner end
            th = fp["brow_th"].reshape(-1, 1, 1) * (0.7 + 0.6 * t)
            inside = _ramp(xw[None, None, :] - xa, e) * _ramp(xb - xw[None, None, :], e)
            alpha = _ramp(th - np.abs(yw[None, :, None] - yb), e) * inside * fp["brow_density"].reshape(-1, 1, 1)
            paint(reg, alpha, fp["brow_lum"].reshape(-1, 1, 1), 0.2, 0.0)

    def _eyes(self, L, lm, paint, fp, amp, e):
        for up, lo, (x0, x1), outer in (((36, 37, 38, 39), (36, 41, 40, 39), (-0.95, -0.05), 36),
                                        ((42, 43, 44, 45), (42, 47, 46, 45), (0.05, 0.95), 45)):
            rs, cs, xw, yw = self.win(x0, x1, -0.62, 0.0)
            reg = (slice(None), rs, cs)
            up, lo = list(up), list(lo)
            yu = pl_curve(xw, lm[:, up, 0], lm[:, up, 1])[:, None, :]
            yl = pl_curve(xw, lm[:, lo, 0], lm[:, lo, 1])[:, None, :]
            vy, vx = yw[None, :, None], xw[None, None, :]
            Lr = L[reg]
            a4, a5, a6, a7 = _a(amp, 4), _a(amp, 5), _a(amp, 6), _a(amp, 7)
            # lid crease (pushed up and faded by AU5), upper lid brightness (AU5), lower lid bulge (AU7)
            crease = _gauss(((vy - (yu - 0.075 - 0.03 * a5)) / 0.016) ** 2)
            lid = _gauss(((vy - (yu - 0.04)) / 0.04) ** 2)
            bulge = _gauss(((vy - (yl + 0.04)) / self.w(0.028)) ** 2)
            furrow6 = _gauss(((vy - (yl + 0.085)) / self.w(0.022)) ** 2)
            shade4 = _gauss(((vy - (yu - 0.07)) / 0.045) ** 2)  # the lowered brow shades the upper lid (AU4)
            xin = _ramp(vx - lm[:, min(up), 0][:, None, None] + 0.05, 0.05) * \
                _ramp(lm[:, max(up), 0][:, None, None] + 0.05 - vx, 0.05)
            Lr *= (1 - 0.12 * (1 - 0.8 * np.minimum(a5, 1)) * crease * xin) * (1 + 0.45 * a5 * lid * xin) \
                * (1 + 0.60 * a7 * bulge * xin) * (1 - 0.40 * a6 * furrow6 * xin) * (1 - 0.45 * a4 * shade4 * xin)
            # crow's feet at the outer corner (AU6)
            ox, oy = lm[:, outer, 0][:, None, None], lm[:, outer, 1][:, None, None]
            side = -1.0 if outer == 36 else 1.0
            dx = (vx - ox) * side  # > 0 outside the corner
            slope = (vy - oy) / (np.abs(dx) + 0.03)
            feet = (0.5 + 0.5 * np.cos(slope * 6.0)) ** 4 * _ramp(dx - 0.03, 0.03) * _ramp(0.2 - dx, 0.05) \
                * (np.abs(slope) < 1.3)
            Lr *= 1 - 0.45 * a6 * feet
            # the eye opening
            inside = _ramp(vx - lm[:, min(up), 0][:, None, None], e) * _ramp(lm[:, max(up), 0][:, None, None] - vx, e)
            opening = _ramp(vy - yu, e) * _ramp(yl - vy, e) * inside
            paint(reg, opening, F32(0.86) * fp["sclera"].reshape(-1, 1, 1), 0.1, 0.0)
            cx = lm[:, up[1:3] + lo[1:3], 0].mean(1)[:, None, None] + fp["gaze"][:, 0, None, None]
            cy = lm[:, up[1:3] + lo[1:3], 1].mean(1)[:, None, None] + fp["gaze"][:, 1, None, None]
            r = 0.36 * (lm[:, max(up), 0] - lm[:, min(up), 0])[:, None, None] / 2 * 1.05
            dist = np.sqrt((vx - cx) ** 2 + (vy - cy) ** 2)
            paint(reg, _ramp(r - dist, e) * opening, fp["iris"].reshape(-1, 1, 1), 0.2, 0.0)
            paint(reg, _ramp(0.45 * r - dist, e) * opening, F32(0.04), 0.0, 0.0)
            # lash line on the upper lid, faint rim on the lower lid (darker with AU7)
            lash = _ramp(0.02 - np.abs(vy - yu + 0.004), e) * inside
            paint(reg, lash * fp["lash"].reshape(-1, 1, 1), F32(0.06), 0.0, 0.0)
            rim = _ramp(0.012 + 0.01 * np.minimum(a7, 1) - np.abs(vy - yl), e) * inside  # tensed rim (AU7)
            Lr = L[reg]
            Lr *= 1 - np.minimum(0.15 + 0.55 * a7, 0.8) * rim

    def _nose(self, L, lm, amp, fp):
        rs, cs, xw, yw = self.win(-0.45, 0.45, -0.32, 0.42)
        reg = (slice(None), rs, cs)
        vx, vy = xw[None, None, :], yw[None, :, None]
        rx = lm[:, 27:31, 0].mean(1)[:, None, None]
        y27, y29, y30 = (lm[:, i, 1][:, None, None] for i in (27, 29, 30))
        along = _ramp(vy - y27, 0.05) * _ramp(y30 - vy, 0.05)
        dx = vx - rx
        ridge = _gauss((dx / 0.035) ** 2) * along
        sides = _gauss(((np.abs(dx) - 0.12) / 0.04) ** 2) * along
        tip = _g2(vx, lm[:, 30, 0][:, None, None], 0.07, vy, y30, 0.06)
        nost = sum(_g2(vx, lm[:, i, 0][:, None, None], 0.035, vy, lm[:, i, 1][:, None, None] - 0.012, 0.018)
                   for i in (32, 34))
        wings = sum(_gauss(((np.sqrt((vx - lm[:, i, 0][:, None, None] + s * 0.05) ** 2 + (vy - lm[:, i, 1][:, None, None] + 0.04) ** 2) - 0.06) / self.w(0.018)) ** 2)
                    for i, s in ((31, -1), (35, 1)))
        a9 = _a(amp, 9)
        wr = (0.5 + 0.5 * np.cos((vy - y27) * (2 * np.pi / self.period(0.065)))) ** 2 * _gauss((dx / 0.11) ** 2) * \
            _ramp(vy - (y27 + 0.04), 0.03) * _ramp(y29 + 0.03 - vy, 0.03)
        L[reg] *= (1 + 0.08 * ridge + 0.07 * tip) * (1 - 0.10 * sides) * (1 - 0.55 * nost) \
            * (1 - np.minimum(0.10 + 0.50 * a9, 0.75) * wings) * (1 - 0.60 * a9 * wr)

    def _cheeks(self, L, lm, amp, fp, face):
        rs, cs, xw, yw = self.win(-0.85, 0.85, -0.2, 0.85)
        reg = (slice(None), rs, cs)
        vx, vy = xw[None, None, :], yw[None, :, None]
        a6, a9, a10, a12 = _a(amp, 6), _a(amp, 9), _a(amp, 10), _a(amp, 12)
        age = fp["age"].reshape(-1, 1, 1)
        mult = np.ones((lm.shape[0], len(yw), len(xw)), F32)
        for wing, corner, eye_lo, side in ((31, 48, 41, -1.0), (35, 54, 46, 1.0)):
            # nasolabial fold from the nose wing to beside the mouth corner, bowing outwards
            xs_, ys_ = lm[:, wing, 0][:, None, None] + side * 0.05, lm[:, wing, 1][:, None, None] - 0.04
            xe, ye = lm[:, corner, 0][:, None, None] + side * 0.07, lm[:, corner, 1][:, None, None] + 0.07
            s = np.clip((vy - ys_) / (ye - ys_), 0, 1)
            xf = xs_ + (xe - xs_) * s + side * 0.07 * s * (1 - s)
            on = _ramp(vy - ys_, 0.03) * _ramp(ye - vy, 0.05)
            line = _gauss(((vx - xf) / self.w(0.026)) ** 2) * on
            depth = 0.06 + 0.12 * age + 0.60 * a10 * (1 - s) + 0.60 * a12 * (0.3 + s) + 0.15 * a9 + 0.10 * a6
            mult *= 1 - np.minimum(depth, 0.8) * line
            # cheek bulge under the eye (AU6) and raised cheek by the smile (AU12)
            ex, ey = lm[:, eye_lo, 0][:, None, None], lm[:, eye_lo, 1][:, None, None]
            hb = _g2(vx, ex + side * 0.03, 0.15, vy, ey + 0.26, 0.1)
            hc = _g2(vx, xe, 0.12, vy, ey + 0.45, 0.09)
            mult *= 1 + 0.40 * a6 * hb + 0.30 * a12 * hc
        # shadow over the upper lip when it is raised (AU10)
        sh = _gauss(((vx - lm[:, 33, 0][:, None, None]) / 0.14) ** 2) * _ramp(vy - lm[:, 33, 1][:, None, None] - 0.02, 0.03) \
            * _ramp(lm[:, 51, 1][:, None, None] - 0.01 - vy, 0.03)
        mult *= 1 - 0.40 * a10 * sh
        L[reg] *= 1 + (mult - 1) * face[reg]

    def _mouth(self, L, lm, paint, fp, amp, e, face):
        rs, cs, xw, yw = self.win(-0.8, 0.8, 0.3, 1.25)
        reg = (slice(None), rs, cs)
        vx, vy = xw[None, None, :], yw[None, :, None]
        B = lm.shape[0]
        a14, a15, a17, a20, a23, a24, a26, a28 = (_a(amp, k) for k in (14, 15, 17, 20, 23, 24, 26, 28))
        Lr = L[reg]
        # stubble / beard around mouth and chin (identity nuisance)
        beard = fp["beard"].reshape(-1, 1, 1)
        bmask = _ramp(vy - lm[:, 33, 1][:, None, None] - 0.05, 0.05) * face[reg]
        Lr *= 1 - beard * bmask * (0.35 + 0.2 * self.fine[rs, cs][None])
        # cues around the mouth, relative to the current landmarks
        m = np.ones((B, len(yw), len(xw)), F32)
        for corner, side in ((48, -1.0), (54, 1.0)):
            cx, cy = lm[:, corner, 0][:, None, None], lm[:, corner, 1][:, None, None]
            dimple = _g2(vx, cx + side * 0.075, self.w(0.038), vy, cy + 0.01, 0.05)
            below = _g2(vx, cx + side * 0.01, 0.065, vy, cy + 0.11, 0.08)
            dxo = (vx - cx) * side
            stretch = sum(_gauss(((vy - cy - o) / self.w(0.014)) ** 2) for o in (-0.035, 0.0, 0.035)) * _ramp(dxo - 0.03, 0.03) \
                * _ramp(0.25 - dxo, 0.06)
            tuck = _g2(vx, cx + side * 0.02, self.w(0.014), vy, cy, 0.045)
            m *= (1 - np.minimum(0.8 * a14, 0.85) * dimple) * (1 - np.minimum(0.6 * a14, 0.7) * tuck) \
                * (1 - np.minimum(0.8 * a15, 0.8) * below) * (1 - np.minimum(0.6 * a20, 0.6) * stretch)
        # chin: mentolabial crease and wrinkled boss (AU17)
        y57, y8 = lm[:, 57, 1][:, None, None], lm[:, 8, 1][:, None, None]
        x57 = lm[:, 57, 0][:, None, None]
        crease = _gauss(((vy - y57 - 0.075) / self.w(0.022)) ** 2) * _gauss(((vx - x57) / 0.16) ** 2)
        boss = _g2(vx, x57, 0.17, vy, (y57 + y8) / 2 + 0.03, 0.1)
        m *= (1 - np.minimum(0.12 + 0.65 * a17, 0.8) * crease) \
            * (1 - a17 * boss * (0.4 + 0.4 * np.clip(self.fine[rs, cs] * 0.6 + 0.3, 0, 1)[None]))
        # lip pressor bulges (AU24)
        y51 = lm[:, 51, 1][:, None, None]
        over = _g2(vx, x57, 0.18, vy, y51 - 0.06, 0.045)
        under = _g2(vx, x57, 0.16, vy, y57 + 0.05, 0.045)
        m *= 1 + 0.7 * a24 * (over + under)
        # lip suck (AU28): taut, bright skin stretched over the teeth above and below the line, dark pits at the
        # corners where the lips roll in
        taut = _g2(vx, x57, 0.2, vy, y51 - 0.035, 0.035) + _g2(vx, x57, 0.18, vy, y57 + 0.035, 0.035)
        pits = sum(_g2(vx, lm[:, c, 0][:, None, None] + s_ * 0.015, 0.03, vy, lm[:, c, 1][:, None, None], 0.03)
                   for c, s_ in ((48, -1.0), (54, 1.0)))
        m *= (1 + 0.25 * a28 * taut) * (1 - 0.55 * a28 * pits)
        Lr *= 1 + (m - 1) * face[reg]
        # lips and the mouth opening
        ou = pl_curve(xw, lm[:, [48, 49, 50, 51, 52, 53, 54], 0], lm[:, [48, 49, 50, 51, 52, 53, 54], 1])[:, None, :]
        iu = pl_curve(xw, lm[:, [48, 60, 61, 62, 63, 64, 54], 0], lm[:, [48, 60, 61, 62, 63, 64, 54], 1])[:, None, :]
        il = pl_curve(xw, lm[:, [48, 60, 67, 66, 65, 64, 54], 0], lm[:, [48, 60, 67, 66, 65, 64, 54], 1])[:, None, :]
        ol = pl_curve(xw, lm[:, [48, 59, 58, 57, 56, 55, 54], 0], lm[:, [48, 59, 58, 57, 56, 55, 54], 1])[:, None, :]
        xa, xb = lm[:, 48, 0][:, None, None], lm[:, 54, 0][:, None, None]
        inside = _ramp(vx - xa, e) * _ramp(xb - vx, e)
        lips = (_ramp(vy - ou, e) * _ramp(iu - vy, e) + _ramp(vy - il, e) * _ramp(ol - vy, e)) * inside
        skin_lum = fp["skin"].reshape(-1, 1, 1)
        lip_lum = skin_lum * fp["lip"].reshape(-1, 1, 1)
        lines = (1 - 0.45 * a23) * (1 - 0.5 * a23 * (0.5 + 0.5 * np.cos(vx * (2 * np.pi / self.period(0.04)))) ** 4)
        # AU28: the red parts roll inwards, what shows is skin-coloured; AU24: pressed lips blanch
        hide = np.minimum(0.75 * np.minimum(a28, 1) + 0.6 * np.minimum(a24, 1), 0.85)
        paint(reg, lips, (lip_lum + hide * (skin_lum - lip_lum)) * lines, 0.6, 1.0 - hide)
        border = (_gauss(((vy - ou) / self.w(0.012)) ** 2) + _gauss(((vy - ol) / self.w(0.012)) ** 2)) * inside
        Lr = L[reg]
        Lr *= 1 - np.minimum(0.45 * a23, 0.5) * border  # AU23: the tightened lips' rolled, dark border
        cav = _ramp(vy - iu, e) * _ramp(il - vy, e) * inside
        paint(reg, cav, F32(0.10) * (1 - 0.5 * np.minimum(a26, 1)), 0.0, 0.3)
        teeth = cav * _ramp(iu + 0.055 - vy, e) * (0.85 + 0.15 * np.cos(vx * (2 * np.pi / 0.07)))
        paint(reg, teeth, F32(0.9) * fp["teeth"].reshape(-1, 1, 1), 0.05, 0.0)
        seam = _gauss(((vy - (iu + il) / 2) / (0.009 + 0.012 * np.minimum(a28, 1))) ** 2) * inside
        Lr = L[reg]
        Lr *= 1 - np.minimum(0.45 + 0.4 * a28, 0.9) * seam  # AU28: the pressed line is deep and dark

    # -- image space -----------------------------------------------------------------------------------------
    def _warp(self, T: np.ndarray, fp: dict) -> np.ndarray:
        """Bilinear sample of the template image(s) T (B, R, R[, 3]) at the inverse head pose -> (B, S, S[, 3]).
        torch's affine_grid / grid_sample do the sampling in C++; only the yaw correction is added to the grid."""
        import torch

        B, S = T.shape[0], self.S
        # output pixel p = S/2 (1 + o) for normalised o in [-1, 1]; template x / HALF = R(-theta) (p - c) / (s HALF)
        k = (S / 2) / (fp["scale"].astype(np.float64) * UNIT * S * HALF)
        th = fp["theta"].astype(np.float64)
        c, sn = np.cos(th) * k, np.sin(th) * k
        tx, ty = -2 * fp["tx"].astype(np.float64), -2 * fp["ty"].astype(np.float64)  # centre offset in o units
        yaw = fp["yaw"].astype(np.float64)
        inv_cy = 1.0 / np.cos(yaw)
        A = np.zeros((B, 2, 3))
        A[:, 0] = np.stack([c, sn, c * tx + sn * ty], 1) * inv_cy[:, None]
        A[:, 1] = np.stack([-sn, c, -sn * tx + c * ty], 1)
        grid = torch.nn.functional.affine_grid(torch.from_numpy(A.astype(F32)), [B, 1, S, S], align_corners=False)
        # x' = x cos(yaw) + sin(yaw) d (1 - x^2): one fixed-point step inverts it well for small yaw
        gx = grid[..., 0]
        u = torch.clamp(gx * gx * (HALF * HALF), max=1.0) - 1.0
        u *= torch.from_numpy((np.sin(yaw) * YAW_DEPTH / HALF * inv_cy).astype(F32)).view(B, 1, 1)
        gx += u
        src = torch.from_numpy(T if T.ndim == 3 else np.ascontiguousarray(np.moveaxis(T, -1, 1)))
        if T.ndim == 3:
            src = src[:, None]
        out = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out = out.numpy()
        return out[:, 0] if T.ndim == 3 else np.moveaxis(out, 1, -1)

    def _image_space(self, img: np.ndarray, fp: dict, rng: np.random.Generator) -> np.ndarray:
        B, S = img.shape[0], self.S
        col = lambda v: np.asarray(v, F32).reshape(B, 1, 1)  # noqa: E731
        if self.C == 3:
            L, chroma, red = img[..., 0], img[..., 1], img[..., 2]
            tint = fp["tint"].astype(F32)[:, None, None, :]  # (B, 1, 1, 3)
            lip_tint = np.array([1.25, 0.78, 0.82], F32)
            bg_tint = fp["bg_tint"].astype(F32)[:, None, None, :]
            ch = chroma[..., None]
            t = 1 + np.maximum(ch, 0) * (tint - 1) + np.maximum(-ch, 0) * (bg_tint - 1) + red[..., None] * (lip_tint - 1)
            img = L[..., None] * t
        else:
            img = img[..., None]
        # lighting: gain and a linear gradient across the image
        g = col(fp["gain"] * 255.0) * (1 + col(fp["light_gx"]) * (self.px / S - 0.5)
                                       + col(fp["light_gy"]) * (self.py / S - 0.5))
        img *= g[..., None]  # from here on: grey levels 0-255
        # occluders: an ellipse (hand, microphone) or a bar (hair strand, glasses arm)
        occ = np.flatnonzero(fp["occ"] > 0)
        if len(occ):
            o = fp["occ_params"][occ].astype(F32)  # cx, cy, rx, ry, lum, kind
            dx = (self.px - o[:, 0, None, None] * S) / (o[:, 2, None, None] * S)
            dy = (self.py - o[:, 1, None, None] * S) / (o[:, 3, None, None] * S)
            ell = np.where(o[:, 5, None, None] > 0.5, dx * dx + dy * dy, np.maximum(np.abs(dx), np.abs(dy * 0.3)))
            a = np.clip((1 - ell) * 8, 0, 1)[..., None]
            lum = (255.0 * o[:, 4, None, None] * (1 + 0.1 * (self.py / S - 0.5)))[..., None]
            img[occ] += a * (lum - img[occ])
        # optical blur: a separable 3-tap kernel of per-frame weight
        w = col(fp["blur"])[..., None]
        if np.any(w > 0):
            for ax in (2, 1):  # [w, 1 - 2w, w] along x then y, edges replicated
                out = img * (1 - 2 * w)
                a, b = [slice(None)] * 4, [slice(None)] * 4
                a[ax], b[ax] = slice(1, None), slice(None, -1)
                out[tuple(a)] += w * img[tuple(b)]
                out[tuple(b)] += w * img[tuple(a)]
                a[ax], b[ax] = slice(0, 1), slice(-1, None)
                out[tuple(a)] += w * img[tuple(a)]
                out[tuple(b)] += w * img[tuple(b)]
                img = out
        # sensor noise: random crops of a fixed bank of Gaussian fields (as good as fresh noise, far cheaper)
        sig = np.asarray(fp["noise"], F32) * 255.0
        k = rng.integers(0, len(self.noise_bank), (B, self.C))
        off = rng.integers(0, self.noise_bank.shape[1] - S + 1, (B, self.C, 2))
        for b in range(B):
            for ch in range(self.C):
                oy, ox = off[b, ch]
                img[b, :, :, ch] += sig[b] * self.noise_bank[k[b, ch], oy : oy + S, ox : ox + S]
        img += 0.5
        np.clip(img, 0, 255, out=img)
        return img.astype(np.uint8)
