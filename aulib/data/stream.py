"""Synthetic faces drawn on the fly: an IterableDataset for the pretraining sets at paper size (no disk, bounded RAM).

    stream = FaceStream("emotionet", n=950_000, image_size=224, channels=3, seed=100, block=256,
                        item=my_item_fn)                      # item(face: dict) -> what the loader batches
    loader = DataLoader(stream, batch_size=256, num_workers=16, drop_last=True)

Face ``index`` (0 <= index < n) is a one-frame person drawn from ``SeedSequence([seed, index])`` alone: the
same (seed, index) gives the same bytes whatever the worker count, the rank or the order it is drawn in.
An epoch visits the n faces in the order of a permutation seeded by (seed, epoch) (``set_epoch``; identity with
``shuffle=False``); ``start`` skips the first positions of the epoch, so a run resumed at position p continues
exactly where it stopped. With ``align`` each face is drawn at ``draw_size`` (default ``image_size``) and cut
by that template (:func:`aulib.data.align.face_crop`, landmarks moved with it) at ``image_size``, as
:func:`aulib.data.align.align_dataset` cuts a stored set.

Positions from ``start`` on are cut into blocks of ``block`` (use the batch size); block k goes to rank
k % world_size, and there to its workers in turn, so the DataLoader, which takes one batch from each worker in
turn, yields the positions in order for any number of workers. RAM is bounded by what the loader prefetches
(workers x prefetch_factor batches): nothing is stored.

Cost: about 35 ms of one CPU core per 224 px RGB face (render), measured on this project's CPU, so 16 cores
draw ~450 faces/s before augmentation; :mod:`aulib.experiments.plan` takes this into account.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .align import face_crop
from .synthetic import SynthConfig, _frame_params, _renderer
from .synthetic.face import AU_INDEX, N_AU, deform
from .synthetic.labels import get_preset, sample_au_sequences, sample_emotion_sequences
from .synthetic.video import sample_identity, sample_sequence_nuisance

#: CPU seconds to draw one 224 x 224 RGB face on one core (measured 0.031-0.034 s on this project's shared CPU);
#: other sizes scale with the pixel count
SECONDS_PER_FACE_224 = 0.035


def draw_face(preset: str, index: int, seed: int = 0, image_size: int = 224, channels: int = 3,
              cfg: SynthConfig | None = None) -> dict[str, Any]:
    """Face ``index`` of the stream ``(preset, seed)``: ``image`` uint8 (H, W, C), ``landmarks`` float32
    (68, 2) pixel (x, y), ``au`` int8 (K,) occurrence of the preset's AUs, ``emotion`` int (-1 if none), ``index``."""
    cfg = cfg or SynthConfig(preset=preset)
    p = get_preset(preset)
    id_ss, seq_ss, render_ss, lm_ss = np.random.SeedSequence([seed, index]).spawn(4)
    id_rng, seq_rng = np.random.default_rng(id_ss), np.random.default_rng(seq_ss)
    ident = sample_identity(id_rng, cfg.quirk_rate)
    if p.kind == "emotion":
        emo, full = sample_emotion_sequences(id_rng, 1, 1)  # (1,), (1, 1, 17)
        emotion = int(emo[0])
    else:
        aus, inten, _ = sample_au_sequences(p, id_rng, [seq_rng], 1)
        full = np.zeros((1, 1, N_AU), np.float32)
        for j, a in enumerate(aus):
            full[:, :, AU_INDEX[a]] = inten[:, :, j]
        emotion = -1
    nuis = sample_sequence_nuisance(seq_rng, 1, cfg.pose_jitter, cfg.nuisance, cfg.occlusion_rate)
    fp = _frame_params(ident, nuis, full[0], cfg)
    fp["lm"] = deform(fp["shape"], fp["au"], fp["blink"])
    img, lm = _renderer(int(image_size), int(channels)).render(fp, np.random.default_rng(render_ss))
    lm = lm[0]  # (68, 2)
    if cfg.landmark_noise > 0:
        iod = np.linalg.norm(lm[45] - lm[36])
        lm = lm + (cfg.landmark_noise * iod * np.random.default_rng(lm_ss).standard_normal(lm.shape))
    occ = (full[0, 0, [AU_INDEX[a] for a in p.aus]] >= 1.5).astype(np.int8)  # (K,) as generate() thresholds
    return {"image": img[0], "landmarks": lm.astype(np.float32), "au": occ, "emotion": emotion, "index": int(index)}


def default_item(face: dict) -> dict:
    """``image`` float (C, H, W) in [0, 1], ``landmarks`` (68, 2), ``emotion`` long, ``index`` long."""
    return {"image": torch.from_numpy(face["image"]).permute(2, 0, 1).float() / 255,
            "landmarks": torch.from_numpy(face["landmarks"]), "emotion": torch.tensor(face["emotion"]),
            "index": torch.tensor(face["index"])}


class FaceStream(IterableDataset):
    """``n`` synthetic faces of ``preset``, drawn in DataLoader workers (see the module's docstring)."""

    def __init__(self, preset: str, n: int, image_size: int = 224, channels: int = 3, seed: int = 0,
                 start: int = 0, block: int = 1, shuffle: bool = True,
                 item: Callable[[dict], Any] = default_item, rank: int | None = None, world_size: int | None = None,
                 align: str | None = None, draw_size: int | None = None, **synth: Any):
        if not 0 <= start <= n:
            raise ValueError(f"FaceStream: start={start} must be in [0, n={n}]")
        self.preset, self.n, self.image_size, self.channels, self.seed = preset, int(n), image_size, channels, seed
        self.start, self.block, self.shuffle, self.item = int(start), max(1, int(block)), shuffle, item
        self.cfg = SynthConfig(preset=preset, image_size=image_size, channels=channels, **synth)
        self.rank, self.world_size = rank, world_size
        self.align, self.draw_size = align, int(draw_size or image_size)
        self.epoch, self._passes = 0, 0

    @property
    def aus(self) -> list[int]:
        return list(get_preset(self.preset).aus)

    @property
    def subjects(self) -> range:  # one person per face
        return range(self.n)

    @property
    def meta(self):
        from types import SimpleNamespace

        return SimpleNamespace(name=f"synthetic-{self.preset} (streamed)", channels=self.channels,
                               image_size=(self.image_size, self.image_size))

    def image(self, index: int) -> np.ndarray:
        return self.face(index)["image"]

    def emotions(self) -> np.ndarray:
        """(n,) emotion of every face (-1 for AU presets), drawn without rendering (~50 us a face)."""
        if get_preset(self.preset).kind != "emotion":
            return np.full(self.n, -1, np.int64)
        out = np.empty(self.n, np.int64)
        for i in range(self.n):
            id_rng = np.random.default_rng(np.random.SeedSequence([self.seed, i]).spawn(4)[0])
            sample_identity(id_rng, self.cfg.quirk_rate)
            out[i] = sample_emotion_sequences(id_rng, 1, 1)[0][0]
        return out

    def set_epoch(self, epoch: int) -> None:
        """Order of the next pass (``aulib.train.fit`` calls it before each epoch). Each pass after it counts
        one epoch on, also in persistent workers, which keep the copy they were started with."""
        self.epoch, self._passes = int(epoch), 0

    def __len__(self) -> int:
        """Faces this rank draws in the rest of the epoch (its blocks: ``b % world_size == rank``)."""
        rank, world = self._rank_world()
        b, left = self.block, self.n - self.start
        n_blocks = (left + b - 1) // b
        return sum(min(b, left - k * b) for k in range(rank, n_blocks, world))

    def order(self, epoch: int | None = None) -> np.ndarray:
        """(n,) face index at each position of ``epoch`` (default: the next pass's)."""
        if not self.shuffle:
            return np.arange(self.n)
        e = self.epoch + self._passes if epoch is None else epoch
        return np.random.default_rng([self.seed, e, 0x5EED]).permutation(self.n)

    def face(self, index: int) -> dict:
        if not self.align:
            return draw_face(self.preset, index, self.seed, self.image_size, self.channels, self.cfg)
        f = draw_face(self.preset, index, self.seed, self.draw_size, self.channels, self.cfg)
        img, lm, _ = face_crop(f["image"], f["landmarks"], self.align, self.image_size, self.channels)
        return {**f, "image": img, "landmarks": lm.astype(np.float32)}

    def _rank_world(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        import torch.distributed as dist

        on = dist.is_available() and dist.is_initialized()
        return (dist.get_rank(), dist.get_world_size()) if on else (0, 1)

    def __iter__(self):
        rank, world = self._rank_world()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        order = self.order()
        self._passes += 1
        b, s = self.block, self.start
        n_blocks = (self.n - s + b - 1) // b  # blocks cut from ``start``: every batch is one reader's block
        # block k goes to rank k % world and, on that rank, to worker (k // world) % nw: each rank sees its
        # blocks in order whatever its worker count, and the ranks' blocks interleave to the 1-process order
        for blk in range(wid * world + rank, n_blocks, world * nw):
            for pos in range(s + blk * b, min(s + (blk + 1) * b, self.n)):
                yield self.item(self.face(int(order[pos])))


def resident_bytes(batch_size: int, item_bytes: int, workers: int, prefetch_factor: int) -> int:
    """Host memory a streamed loader holds at once: the batches in flight (prefetched + in use)."""
    return (max(1, workers) * prefetch_factor + 2) * batch_size * item_bytes
