"""Label samplers of the synthetic generator and its presets.

AU datasets (bp4d, disfa, gft, affwild2) use a Gaussian copula fitted to the real statistics: a latent
Z ~ N(0, R) per frame, AU i active when Z_i > tau_i with tau_i = Phi^-1(1 - rate_i). Each pairwise latent
correlation R_ij is the tetrachoric correlation that reproduces the joint rate P(i, j) = P(j | i) P(i) of
``aulib.data.stats.REFERENCE`` (au_statistics.md); R is then projected onto the correlation matrices.

Video: Z(t) = a * Z_subject + b * Z_sequence + c * Z_smooth(t) with a^2 + b^2 + c^2 = 1 and every part
N(0, R), so every frame keeps the preset's marginals and co-occurrence, while the smooth part (Gaussian-filtered
noise over tens of frames) makes AU episodes rise, peak and fall. The continuous intensity shown on the face is
c = clip(1.5 + kappa (Z - tau), 0, 5): a frame is labelled active exactly when its intensity rounds to 2 or more
(DISFA's rule), and an inactive frame may still show a trace (< 1.5) of the AU.

Emotion datasets (affectnet, emotionet) draw an emotion, then one of its EMFACS prototype AU combinations
(AUNet Table II, extended with the usual EMFACS variants), per-AU apex intensities, and emotion-independent
AUs (AU6/AU7 in smiles, AU25 talking, ...), so one emotion class holds many AU configurations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..folds import BP4D_PARTS, DISFA_PARTS
from ..schema import AU_UNION, EMOTIONS
from ..stats import REFERENCE

KAPPA = 2.6  # intensity units per latent std above the threshold
C_THRESHOLD = 1.5  # continuous intensity at the occurrence threshold (round(c) >= 2)


@dataclass(frozen=True)
class Preset:
    name: str
    aus: tuple[int, ...]
    label_kinds: tuple[str, ...]
    default_sizes: dict
    rates: tuple[float, ...] = ()  # AU datasets: positive rate per AU (same order as aus)
    kind: str = "au"  # "au" (copula) or "emotion"
    subject_ids: str = "generic"  # "bp4d", "disfa" or "generic"
    sequence_prefix: str = "S"
    episode_frames: float = 10.0  # std (frames) of the Gaussian smoothing of the latent process
    mix: tuple[float, float, float] = (0.3, 0.25, 0.92)  # subject, sequence, frame latent weights (normalised)
    extra_rates: dict = field(default_factory=dict)  # unlabelled AUs that still appear on the faces
    description: str = ""


_EXTRA = {5: 0.04, 9: 0.04, 20: 0.04, 25: 0.35, 26: 0.10, 1: 0.1, 2: 0.08, 4: 0.1, 6: 0.1, 12: 0.12, 17: 0.08}

PRESETS: dict[str, Preset] = {
    "bp4d": Preset("bp4d", REFERENCE["bp4d"].aus, ("occurrence",),
                   dict(n_subjects=41, sequences_per_subject=4, frames_per_sequence=60, image_size=112),
                   tuple(REFERENCE["bp4d"].rates), subject_ids="bp4d", sequence_prefix="T",
                   extra_rates={5: 0.04, 9: 0.05, 20: 0.04, 25: 0.35, 26: 0.10},
                   description="BP4D-like: 12 AUs, 41 real subject ids, tasks T1..; rates and co-occurrence of BP4D"),
    "disfa": Preset("disfa", REFERENCE["disfa"].aus, ("occurrence", "intensity"),
                    dict(n_subjects=27, sequences_per_subject=1, frames_per_sequence=240, image_size=112),
                    tuple(REFERENCE["disfa"].rates), subject_ids="disfa", sequence_prefix="V", episode_frames=14.0,
                    extra_rates={5: 0.04, 7: 0.06, 10: 0.04, 14: 0.05, 15: 0.04, 17: 0.06, 20: 0.03, 23: 0.04,
                                 24: 0.03},
                    description="DISFA-like: 8 AUs with 0-5 intensity (occurrence = intensity >= 2), SN ids"),
    "gft": Preset("gft", (1, 2, 4, 6, 10, 12, 14, 15, 23, 24), ("occurrence",),
                  dict(n_subjects=48, sequences_per_subject=2, frames_per_sequence=60, image_size=112),
                  (0.10, 0.13, 0.06, 0.32, 0.35, 0.31, 0.22, 0.12, 0.20, 0.10),
                  extra_rates={5: 0.03, 7: 0.3, 9: 0.03, 17: 0.2, 20: 0.03, 25: 0.4, 26: 0.1},
                  description="GFT-like: 10 AUs of group conversations, plausible rates"),
    "affwild2": Preset("affwild2", (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26), ("occurrence",),
                       dict(n_subjects=60, sequences_per_subject=1, frames_per_sequence=120, image_size=112),
                       (0.12, 0.05, 0.16, 0.24, 0.39, 0.34, 0.22, 0.03, 0.03, 0.03, 0.61, 0.09),
                       sequence_prefix="V", extra_rates={5: 0.04, 9: 0.03, 14: 0.1, 17: 0.08, 20: 0.03},
                       description="Aff-Wild2-like: 12 AUs in the wild, plausible rates"),
    # The CNN study's data (Bishay et al., Sec. II-A): ~55K in-the-wild videos of people watching ads, of which
    # AM-FED / AM-FED+ are the public part, coded for the 12 AUs of its Table I. The paper publishes no per-AU
    # rates ("most of the AUs ... highly imbalanced"); these are documented plausible values for spontaneous
    # ad viewing (mostly neutral faces, smiles and talking the commonest), not published numbers. AU28 (lip suck)
    # is only coded here. Co-occurrence: BP4D's table for the AUs it has, then DISFA's (AU9, AU25), then the FACS
    # priors of _PRIOR_RHO (AU9 and AU28 pairs).
    "amfed": Preset("amfed", (1, 2, 4, 6, 7, 9, 12, 15, 17, 24, 25, 28), ("occurrence",),
                    dict(n_subjects=82, sequences_per_subject=1, frames_per_sequence=24, image_size=112),
                    (0.14, 0.12, 0.15, 0.25, 0.30, 0.10, 0.30, 0.12, 0.20, 0.12, 0.35, 0.10),
                    sequence_prefix="V", extra_rates={5: 0.04, 10: 0.12, 14: 0.12, 20: 0.03, 23: 0.06, 26: 0.08},
                    description="AM-FED+-like: the CNN study's 12 AUs (AU9, AU25, AU28 included) of people "
                                "watching ads, plausible rates"),
    "affectnet": Preset("affectnet", AU_UNION, ("occurrence", "emotion"),
                        dict(n_subjects=3000, sequences_per_subject=1, frames_per_sequence=1, image_size=112),
                        kind="emotion",
                        description="AffectNet-like: 7 emotions, each a family of EMFACS AU combinations"),
    "emotionet": Preset("emotionet", (1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26), ("occurrence",),
                        dict(n_subjects=5000, sequences_per_subject=1, frames_per_sequence=1, image_size=112),
                        kind="emotion",
                        description="EmotioNet-like: many people, one image each (used unlabelled)"),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown synthetic preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


# -- copula fitting -----------------------------------------------------------------------------------------
def _upper_orthant(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """P(Z_i > h, Z_j > k) for standard bivariate normals with correlation rho (arrays broadcast).

    Plackett's identity dPhi2/drho = phi2 gives Phi2(-h, -k; rho) = Phi(-h) Phi(-k) + int_0^rho phi2(h, k; r) dr;
    the integral uses 24-point Gauss-Legendre quadrature."""
    x, w = np.polynomial.legendre.leggauss(24)
    r = rho[..., None] * (x + 1) / 2  # (..., 24) nodes in [0, rho]
    one = 1 - r * r
    dens = np.exp(-(h[..., None] ** 2 - 2 * r * h[..., None] * k[..., None] + k[..., None] ** 2) / (2 * one))
    dens /= 2 * np.pi * np.sqrt(one)
    return stats.norm.sf(h) * stats.norm.sf(k) + rho * (dens @ w) / 2


def _tetrachoric(p_i: np.ndarray, p_j: np.ndarray, p_ij: np.ndarray) -> np.ndarray:
    """Latent correlations rho with P(Z_i > tau_i, Z_j > tau_j) = p_ij, tau = Phi^-1(1 - p) (vectorised
    bisection; the joint rate is monotone in rho)."""
    p_i, p_j, p_ij = (np.asarray(v, float) for v in (p_i, p_j, p_ij))
    h, k = stats.norm.isf(p_i), stats.norm.isf(p_j)
    p_ij = np.clip(p_ij, np.maximum(0.0, p_i + p_j - 1) + 1e-6, np.minimum(p_i, p_j) - 1e-6)
    lo, hi = np.full(p_ij.shape, -0.97), np.full(p_ij.shape, 0.97)
    for _ in range(40):
        mid = (lo + hi) / 2
        up = _upper_orthant(h, k, mid) < p_ij
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    return (lo + hi) / 2


def _nearest_correlation(r: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Project a symmetric matrix onto positive-definite correlation matrices (eigenvalue clipping)."""
    r = (r + r.T) / 2
    for _ in range(50):
        w, v = np.linalg.eigh(r)
        if w.min() >= floor:
            break
        r = (v * np.maximum(w, floor)) @ v.T
        d = np.sqrt(np.diag(r))
        r = r / d[:, None] / d[None, :]
    return r


# Latent correlations between AUs the reference tables do not pair (hand priors from FACS co-activation).
_PRIOR_RHO = {(1, 5): 0.35, (2, 5): 0.4, (5, 26): 0.25, (5, 25): 0.2, (20, 25): 0.35, (4, 20): 0.2, (1, 20): 0.15,
              (9, 10): 0.55, (9, 4): 0.4, (9, 7): 0.35, (9, 17): 0.2, (10, 25): 0.3, (12, 25): 0.35, (6, 25): 0.3,
              (7, 25): 0.2, (17, 25): -0.2, (23, 25): -0.2, (24, 25): -0.4, (24, 26): -0.2, (23, 26): -0.1,
              (14, 25): 0.05, (15, 25): 0.0, (17, 26): -0.1, (10, 26): 0.15, (12, 26): 0.15, (4, 26): 0.1,
              # AU28 (lip suck) rolls the lips in: it goes with pressing / tightening and the chin boss, not with
              # parted lips or a dropped jaw
              (24, 28): 0.35, (23, 28): 0.3, (17, 28): 0.3, (15, 28): 0.15, (4, 28): 0.1, (14, 28): 0.15,
              (25, 28): -0.45, (26, 28): -0.35, (12, 28): -0.05, (10, 28): -0.1, (9, 28): 0.0}


@functools.cache
def _reference_rho(name: str) -> dict[tuple[int, int], float]:
    ref = REFERENCE[name]
    i, j = np.triu_indices(len(ref.aus), 1)
    r = np.asarray(ref.rates, float)
    # the published matrix is rounded: average the two estimates of the joint rate P(i, j)
    p_ij = 0.5 * (ref.cooccurrence[i, j] * r[i] + ref.cooccurrence[j, i] * r[j])
    rho = _tetrachoric(r[i], r[j], p_ij)
    return {(ref.aus[a], ref.aus[b]): float(v) for a, b, v in zip(i, j, rho)}


def latent_correlation(preset: str, aus: tuple[int, ...]) -> np.ndarray:
    """(K, K) latent correlation for ``aus``: the preset's own reference table where it has one, else BP4D,
    then DISFA, then the FACS priors; projected to a valid correlation matrix."""
    return _latent_correlation(preset, tuple(aus))


@functools.cache
def _latent_correlation(preset: str, aus: tuple[int, ...]) -> np.ndarray:
    sources = [preset] if preset in REFERENCE else []
    sources += [s for s in ("bp4d", "disfa") if s not in sources]
    tables = [_reference_rho(s) for s in sources]
    k = len(aus)
    r = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            a, b = aus[i], aus[j]
            rho = None
            for t in tables:
                if (a, b) in t or (b, a) in t:
                    rho = t.get((a, b), t.get((b, a)))
                    break
            if rho is None:
                rho = _PRIOR_RHO.get((a, b), _PRIOR_RHO.get((b, a), 0.05))
            r[i, j] = r[j, i] = rho
    return _nearest_correlation(r)


def _latent_model(preset: Preset) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    """(all AUs drawn, thresholds tau, Cholesky factor L, labelled mask) for a copula preset."""
    extra = [a for a in sorted(preset.extra_rates) if a not in preset.aus]
    aus = tuple(preset.aus) + tuple(extra)
    rates = np.array(list(preset.rates) + [preset.extra_rates[a] for a in extra])
    corr = latent_correlation(preset.name, aus)
    labelled = np.array([a in preset.aus for a in aus])
    return aus, stats.norm.ppf(1 - rates), np.linalg.cholesky(corr), labelled


def _smooth_noise(rng: np.random.Generator, t: int, k: int, width: float) -> np.ndarray:
    """(t, k) stationary Gaussian process with unit variance and Gaussian autocorrelation of ``width`` frames."""
    if t == 1 or width <= 0:
        return rng.standard_normal((t, k))
    half = int(np.ceil(3 * width))
    ker = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    ker /= np.sqrt((ker**2).sum())  # unit variance of the filtered white noise
    white = rng.standard_normal((t + 2 * half, k))
    idx = np.arange(t)[:, None] + np.arange(2 * half + 1)[None, :]  # (t, W) sliding windows
    return np.einsum("twk,w->tk", white[idx], ker)


def sample_au_sequences(preset: Preset, subject_rng: np.random.Generator, seq_rngs: list[np.random.Generator],
                        frames: int) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """Continuous AU intensities for one subject's sequences.

    Returns (aus drawn, intensity float32 (S, T, K) 0-5, labelled mask (K,)); occurrence is intensity >= 1.5.
    """
    aus, tau, chol, labelled = _latent_model(preset)
    k = len(aus)
    a, b, c = np.asarray(preset.mix, float) / np.linalg.norm(preset.mix)
    z_subj = chol @ subject_rng.standard_normal(k)
    out = np.empty((len(seq_rngs), frames, k), np.float32)
    for s, rng in enumerate(seq_rngs):
        z_seq = chol @ rng.standard_normal(k)
        z_t = _smooth_noise(rng, frames, k, preset.episode_frames) @ chol.T
        z = a * z_subj + b * z_seq + c * z_t
        out[s] = np.clip(C_THRESHOLD + KAPPA * (z - tau), 0, 5)
    return aus, out, labelled


# -- emotion sampler ----------------------------------------------------------------------------------------
# EMFACS prototypes (AUNet Table II) and their common variants; each emotion is a family of combinations.
EMOTION_PROTOTYPES: dict[str, list[tuple[int, ...]]] = {
    "neutral": [()],
    "happy": [(6, 12), (7, 12), (6, 7, 12), (12,), (6, 12, 25), (6, 12, 25, 26), (12, 25), (6, 10, 12, 25)],
    "sad": [(1,), (1, 4), (6, 15), (1, 4, 15), (1, 4, 15, 17), (15, 17), (1, 15)],
    "surprise": [(1, 2, 26), (1, 2, 5, 26), (1, 2, 5, 25, 26), (1, 2, 5), (1, 2, 25), (1, 2, 5, 25)],
    "fear": [(1, 2, 4), (1, 2, 4, 5, 20), (1, 2, 4, 5, 20, 25), (1, 2, 4, 5, 25, 26), (1, 4, 20, 25), (1, 2, 4, 5)],
    "disgust": [(9,), (10,), (9, 10), (9, 17), (10, 17), (9, 10, 25), (9, 15), (10, 14)],
    "anger": [(4, 7), (17, 24), (23,), (4, 5, 7, 23), (4, 7, 17, 24), (4, 5, 7, 10, 25), (4, 7, 23), (4, 24)],
}
EMOTION_FREQ = np.array([0.22, 0.30, 0.10, 0.10, 0.08, 0.08, 0.12])  # class frequencies, EMOTIONS order
# emotion-independent AUs: (probability, intensity range) whatever the emotion
INDEPENDENT_AUS = {6: 0.12, 7: 0.12, 25: 0.18, 5: 0.04, 17: 0.06, 14: 0.06, 2: 0.04, 10: 0.05, 26: 0.04,
                   28: 0.03}


def sample_emotion_sequences(rng: np.random.Generator, n_seq: int, frames: int
                             ) -> tuple[np.ndarray, np.ndarray]:
    """(emotion int (S,), intensity float32 (S, T, 18) in AU_UNION order)."""
    col = {a: i for i, a in enumerate(AU_UNION)}
    emo = rng.choice(len(EMOTIONS), size=n_seq, p=EMOTION_FREQ / EMOTION_FREQ.sum())
    out = np.zeros((n_seq, frames, len(AU_UNION)), np.float32)
    for s in range(n_seq):
        variants = EMOTION_PROTOTYPES[EMOTIONS[emo[s]]]
        combo = variants[rng.integers(len(variants))]
        strength = rng.uniform(0.55, 1.0)  # how intense this person's expression is
        apex = np.zeros(len(AU_UNION), np.float32)
        for a in combo:
            apex[col[a]] = rng.uniform(2.0, 5.0) * strength + 0.6
        for a, p in INDEPENDENT_AUS.items():
            if rng.random() < p:
                apex[col[a]] = max(apex[col[a]], rng.uniform(1.0, 4.5))
        if frames == 1:
            env = np.array([rng.uniform(0.75, 1.0)])
        else:  # onset - apex - offset within the clip
            t = np.arange(frames)
            on, off = rng.uniform(0.05, 0.35) * frames, rng.uniform(0.65, 1.0) * frames
            ramp = max(frames / 8, 2.0)
            env = np.clip(np.minimum((t - on) / ramp + 1, (off - t) / ramp + 1), 0, 1) ** 1.5
            env = np.maximum(env, 0.5)  # the expression never fully leaves the clip of an emotion
        out[s] = np.clip(env[:, None] * apex[None, :], 0, 5)
    return emo, out


# -- subject ids --------------------------------------------------------------------------------------------
def _spread(parts: tuple[tuple[str, ...], ...], n: int) -> list[str]:
    """n ids spread evenly over the parts (and evenly inside each part), in part order."""
    total = sum(len(p) for p in parts)
    if n > total:
        raise ValueError(f"this preset has {total} real subject ids; n_subjects={n} is too many")
    base, rem = divmod(n, len(parts))
    counts = [base + (1 if i < rem else 0) for i in range(len(parts))]
    # a part may be shorter than its share: hand the surplus to the others
    for i, p in enumerate(parts):
        if counts[i] > len(p):
            surplus = counts[i] - len(p)
            counts[i] = len(p)
            for j in range(len(parts)):
                take = min(surplus, len(parts[j]) - counts[j])
                counts[j] += take
                surplus -= take
    ids = []
    for p, c in zip(parts, counts):
        pick = np.round(np.linspace(0, len(p) - 1, c)).astype(int) if c > 1 else np.array([len(p) // 2])[:c]
        ids += [p[i] for i in pick]
    return ids


def subject_ids(preset: Preset, n: int) -> list[str]:
    if preset.subject_ids == "bp4d":
        return _spread(BP4D_PARTS, n)
    if preset.subject_ids == "disfa":
        return _spread(DISFA_PARTS, n)
    width = max(3, len(str(n)))
    return [f"S{i + 1:0{width}d}" for i in range(n)]
