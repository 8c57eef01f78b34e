"""Benchmark: ``aulib.predict`` throughput (detect + landmarks + crop + model), images/s and video frames/s.

    python -m aulib.bench predict [--quick] [--images 8] [--frames 30] [--checkpoint RUN]

Inputs are made on the spot from what ships in dependencies: scikit-image's astronaut (512 x 512, one face) as
image files, and a 640 x 360 mpeg4 video of that face drifting (written with PyAV). Rows: kind (image / video),
inputs, frames, faces, wall_s, per_s (images or frames per second, wall clock), cpu_s and per_cpu_s (per second of
process CPU time: what a shared machine's load does not change). dlib's HOG detector dominates; it
runs on one thread whatever the torch thread count.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aulib.bench import option

DEFAULTS: dict[str, Any] = {"images": 8, "frames": 30, "checkpoint": None}
QUICK: dict[str, Any] = {"images": 3, "frames": 10}


def run(args: Any = None) -> pd.DataFrame:
    from PIL import Image
    from skimage import data

    from aulib.inference import load_model, predict, write_video

    args = args or {}
    n_img = int(option(args, "images", DEFAULTS, QUICK))
    n_frames = int(option(args, "frames", DEFAULTS, QUICK))
    model = load_model(option(args, "checkpoint", DEFAULTS))
    astro = data.astronaut()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = []
        for i in range(n_img):
            p = tmp / f"img{i}.png"
            Image.fromarray(np.roll(astro, 4 * i, axis=1)).save(p)
            paths.append(p)
        face = np.asarray(Image.fromarray(astro[0:300, 100:360]).resize((208, 240)))
        frames = []
        for t in range(n_frames):
            f = np.full((360, 640, 3), 50, np.uint8)
            x = 100 + 4 * t % 300
            f[60:300, x:x + 208] = face
            frames.append(f)
        video = write_video(frames, tmp / "clip.mp4", fps=25)
        predict(paths[:1], checkpoint=model)  # warm-up: dlib's model files, torch's first call
        for kind, inputs, count in (("image", paths, n_img), ("video", [video], n_frames)):
            t0, c0 = time.perf_counter(), time.process_time()
            df = predict(inputs, checkpoint=model)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows.append({"kind": kind, "inputs": len(inputs), "frames": count, "faces": int(df.success.sum()),
                         "wall_s": round(wall, 3), "per_s": round(count / wall, 2), "cpu_s": round(cpu, 3),
                         "per_cpu_s": round(count / max(cpu, 1e-9), 2)})
    return pd.DataFrame(rows)
