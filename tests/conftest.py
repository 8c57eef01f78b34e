import os

# Tests must not oversubscribe a 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from aulib.data.schema import CanonicalDataset, DatasetMeta  # noqa: E402


def make_dataset(n_subjects=3, seqs=2, frames=5, aus=(1, 2, 4), size=16, seed=0, intensity=False,
                 emotion=False) -> CanonicalDataset:
    """A tiny hand-made canonical dataset (random pixels) for format/loader tests."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        for q in range(seqs):
            for f in range(frames):
                rows.append({"subject": f"S{s:03d}", "sequence": f"T{q}", "frame": f})
    frames_df = pd.DataFrame(rows)
    n = len(frames_df)
    frames_df["image"] = np.arange(n)
    for a in aus:
        frames_df[f"AU{a}"] = rng.integers(0, 2, n).astype(np.int8)
        if intensity:
            frames_df[f"AU{a}_int"] = (frames_df[f"AU{a}"] * rng.integers(2, 6, n)).astype(np.int8)
    kinds = ["occurrence"] + (["intensity"] if intensity else []) + (["emotion"] if emotion else [])
    if emotion:
        frames_df["emotion"] = rng.integers(0, 7, n).astype(np.int8)
    meta = DatasetMeta("tiny", list(aus), (size, size), 1, kinds)
    images = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
    landmarks = rng.uniform(0, size - 1, (n, 68, 2)).astype(np.float32)
    return CanonicalDataset(meta, frames_df, landmarks, images)


@pytest.fixture
def tiny_dataset():
    return make_dataset()
