"""Identities and per-frame nuisance of the synthetic generator: who the person is (shape, skin, hair,
resting quirks) and how each frame of a sequence is filmed (head motion, blinks, gaze, lighting, background,
blur, noise, occluders). Everything is drawn from numpy Generators seeded per subject and per sequence.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from .face import AU_INDEX, MEAN_SHAPE, N_AU, SHAPE_MODES
from .labels import _smooth_noise

# AUs a person's resting face may resemble (permanent furrow ~ AU4, down-turned mouth ~ AU15, ...)
QUIRK_AUS = (4, 15, 1, 12, 6, 17, 14, 7, 2, 10)


def sample_identity(rng: np.random.Generator, quirk_rate: float = 0.35) -> dict:
    """One person's constant appearance."""
    coef = np.clip(rng.standard_normal(len(SHAPE_MODES)), -2.5, 2.5).astype(np.float32)
    shape = MEAN_SHAPE + np.tensordot(coef, SHAPE_MODES, 1)
    skin = rng.uniform(0.32, 0.82)
    warm = rng.uniform(0.0, 1.0)
    tint = np.array([1.08 + 0.08 * warm, 0.98, 0.90 - 0.08 * warm]) + rng.normal(0, 0.02, 3)
    hair = rng.uniform(0.04, 0.55)
    quirk = np.zeros(N_AU, np.float32)
    if rng.random() < quirk_rate:
        quirk[AU_INDEX[int(rng.choice(QUIRK_AUS))]] = rng.uniform(1.0, 2.2)
    return dict(
        shape=shape.astype(np.float32), skin=skin, tint=tint, hair=hair,
        hair_amount=float(rng.random() < 0.88), hairline=rng.uniform(0.32, 0.52), forehead=rng.uniform(0.85, 1.02),
        brow_th=rng.uniform(0.022, 0.042), brow_density=rng.uniform(0.65, 1.0), brow_lum=min(hair, skin * 0.7) * rng.uniform(0.4, 1.0),
        lash=rng.uniform(0.5, 1.0), iris=rng.uniform(0.08, 0.45), sclera=rng.uniform(0.85, 1.0),
        lip=rng.uniform(0.62, 0.86), teeth=rng.uniform(0.8, 1.0), age=rng.uniform(0, 1),
        beard=rng.uniform(0.15, 0.6) if rng.random() < 0.18 else 0.0,
        tex=rng.standard_normal((12, 12)).astype(np.float32), quirk=quirk,
    )


def neutral_identity() -> dict:
    """A deterministic average person (figures)."""
    return dict(shape=MEAN_SHAPE.copy(), skin=0.62, tint=np.array([1.12, 0.98, 0.86]), hair=0.2, hair_amount=1.0,
                hairline=0.42, forehead=0.95, brow_th=0.032, brow_density=0.9, brow_lum=0.12, lash=0.8, iris=0.25,
                sclera=0.95, lip=0.75, teeth=0.92, age=0.3, beard=0.0, tex=np.zeros((12, 12), np.float32),
                quirk=np.zeros(N_AU, np.float32))


def sample_sequence_nuisance(rng: np.random.Generator, frames: int, pose_jitter: float = 1.0,
                             nuisance: float = 1.0, occlusion_rate: float = 0.0) -> dict:
    """Per-frame pose, blink, gaze, lighting and camera parameters of one sequence (arrays of length T)."""
    T = frames
    pj, nz = pose_jitter, nuisance
    smooth = _smooth_noise(rng, T, 6, 8.0)  # (T, 6) slow head motion and gaze
    out = dict(
        theta=rng.normal(0, 0.05 * pj) + 0.03 * pj * smooth[:, 0],
        scale=rng.normal(1.0, 0.035 * pj) + 0.012 * pj * smooth[:, 1],
        tx=rng.normal(0, 0.018 * pj) + 0.008 * pj * smooth[:, 2],
        ty=rng.normal(0, 0.018 * pj) + 0.008 * pj * smooth[:, 3],
        yaw=rng.normal(0, 0.12 * pj) + 0.05 * pj * smooth[:, 4],
    )
    gaze = np.stack([0.015 * smooth[:, 5], 0.006 * np.roll(smooth[:, 5], 3)], 1)
    # blinks: ~one every 40-70 frames, closing and opening over 3-5 frames
    blink = np.zeros(T, np.float32)
    n_bl = rng.poisson(T / rng.uniform(40, 70)) if T > 1 else int(rng.random() < 0.03)
    for _ in range(n_bl):
        t0, half = rng.uniform(-2, T + 2), rng.uniform(1.5, 2.5)
        blink = np.maximum(blink, np.clip(1 - np.abs(np.arange(T) - t0) / half, 0, 1))
    bg = rng.uniform(0.12, 0.88)
    out.update(
        gaze=gaze.astype(np.float32), blink=blink,
        bg=np.full(T, bg), bg_gx=np.full(T, rng.normal(0, 0.08 * nz)), bg_gy=np.full(T, rng.normal(0, 0.08 * nz)),
        bg_tint=np.tile(1 + rng.normal(0, 0.12 * nz, 3), (T, 1)),
        gain=rng.uniform(1 - 0.2 * nz, 1 + 0.12 * nz) * (1 + 0.02 * nz * smooth[:, 0]),
        light_gx=np.full(T, rng.normal(0, 0.35 * nz)), light_gy=np.full(T, rng.normal(0, 0.2 * nz)),
        blur=np.full(T, rng.uniform(0, 0.24) * min(nz, 1.5)),
        noise=np.full(T, rng.uniform(0.004, 0.03) * nz),
    )
    # occluders come and go in episodes covering ~occlusion_rate of the frames
    occ = np.zeros(T, np.float32)
    if occlusion_rate >= 1:
        occ[:] = 1
    elif occlusion_rate > 0:
        z = _smooth_noise(rng, T, 1, 6.0)[:, 0] if T > 1 else rng.standard_normal(1)
        occ = (z > NormalDist().inv_cdf(1 - occlusion_rate)).astype(np.float32)
    kind = float(rng.random() < 0.6)  # ellipse (hand) or bar
    params = np.array([rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.85), rng.uniform(0.1, 0.22), rng.uniform(0.08, 0.2),
                       rng.uniform(0.1, 0.9), kind], np.float32)
    out.update(occ=occ, occ_params=np.tile(params, (T, 1)))
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
