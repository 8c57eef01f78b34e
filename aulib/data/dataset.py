"""PyTorch access to a canonical dataset: frames (and temporal triplets) as tensors."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision import tv_tensors

from .schema import CanonicalDataset, DatasetError


def temporal_neighbours(ds: CanonicalDataset, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(prev, next): for every row, the row ``offset`` frames before / after it in the same sequence, clamped
    at the sequence's ends (never another sequence's frame). Raises if no sequence has two frames."""
    f = ds.frames
    key = f.subject.astype(str) + "\x00" + f.sequence.astype(str)
    order = np.lexsort((f.frame.to_numpy(), key.to_numpy()))
    seq_sizes = key.value_counts()
    if seq_sizes.max() < 2:
        raise DatasetError(ds.meta.name, "the dataset has no temporal order: every sequence holds a single frame, "
                           "so frames t-T and t+T do not exist (use a video dataset for temporal models)")
    sorted_key = key.to_numpy()[order]
    starts = np.r_[0, np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1]
    ends = np.r_[starts[1:], len(order)] - 1
    seq_id = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    pos = np.arange(len(order))
    prev_pos = np.maximum(pos - offset, starts[seq_id])
    next_pos = np.minimum(pos + offset, ends[seq_id])
    prev, nxt = np.empty(len(order), np.int64), np.empty(len(order), np.int64)
    prev[order], nxt[order] = order[prev_pos], order[next_pos]
    return prev, nxt


class FrameDataset(Dataset):
    """Frames of ``ds`` (restricted to ``rows``) as dicts of tensors.

    item: ``image`` float (C, H, W) in [0, 1]; ``labels`` float (K,) with 0 at unknowns; ``valid`` bool (K,);
    ``landmarks`` float (68, 2) pixel (x, y); ``emotion`` long (-1 if none); ``row`` long. With
    ``temporal_offset=T`` also ``images`` (3, C, H, W): frames t-T, t, t+T of the same sequence, augmented
    together. ``size`` resizes (landmarks follow); ``channels`` converts grey <-> RGB.
    ``transform(sample) -> sample`` sees ``image`` (or the triplet stacked as ``image``) as tv_tensors.Image and
    ``landmarks`` as tv_tensors.KeyPoints (see aulib.data.transforms).
    """

    def __init__(self, ds: CanonicalDataset, rows: Sequence[int] | np.ndarray | None = None,
                 transform: Callable[[dict], dict] | None = None, temporal_offset: int | None = None,
                 size: int | None = None, channels: int | None = None):
        self.ds, self.transform, self.size = ds, transform, size
        self.rows = np.arange(len(ds)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.channels = channels or ds.meta.channels
        self.labels, self.valid = ds.au_matrix()
        self.emotion = ds.emotions() if ds.has("emotion") else np.full(len(ds), -1, np.int64)
        self.temporal_offset = temporal_offset
        if temporal_offset is not None:
            self.prev, self.next = temporal_neighbours(ds, temporal_offset)

    def __len__(self) -> int:
        return len(self.rows)

    def _load(self, rows: np.ndarray) -> torch.Tensor:
        img = torch.from_numpy(np.ascontiguousarray(self.ds.image_batch(rows))).permute(0, 3, 1, 2).float() / 255
        if img.shape[1] != self.channels:
            img = img.repeat(1, 3, 1, 1) if self.channels == 3 else (
                img * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if self.size is not None and img.shape[-1] != self.size:
            img = F.interpolate(img, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return img  # (n, C, H, W)

    def _landmarks(self, rows: np.ndarray) -> torch.Tensor:
        """(n, 68, 2) pixel landmarks of ``rows``, scaled to ``size`` like the images."""
        lm = torch.from_numpy(np.array(self.ds.landmarks[rows], dtype=np.float32))
        if self.size is not None:
            h0, w0 = self.ds.meta.image_size
            lm = lm * torch.tensor([self.size / w0, self.size / h0])
        return lm

    def __getitem__(self, i: int) -> dict:
        row = int(self.rows[i])
        rows = np.array([self.prev[row], row, self.next[row]]) if self.temporal_offset is not None else np.array([row])
        img = self._load(rows)
        lm = self._landmarks(np.array([row]))[0]
        h, w = img.shape[-2:]
        sample = {"image": tv_tensors.Image(img if self.temporal_offset is not None else img[0]),
                  "landmarks": tv_tensors.KeyPoints(lm, canvas_size=(h, w))}
        if self.transform is not None:
            sample = self.transform(sample)
        image = sample["image"].as_subclass(torch.Tensor)
        out = {"labels": torch.from_numpy(self.labels[row]), "valid": torch.from_numpy(self.valid[row]),
               "landmarks": sample["landmarks"].as_subclass(torch.Tensor).float(),
               "emotion": torch.tensor(int(self.emotion[row])), "row": torch.tensor(row)}
        if self.temporal_offset is not None:
            out["images"], out["image"] = image, image[1]
        else:
            out["image"] = image
        return out

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """The items ``indices``, as ``[self[i] for i in indices]`` gives them; a DataLoader calls this once per
        batch. Without a transform or temporal triplets the images are read, converted and resized as one
        batch (one ``image_batch`` call instead of one per frame)."""
        if self.transform is not None or self.temporal_offset is not None:
            return [self[i] for i in indices]
        rows = self.rows[np.asarray(indices, dtype=np.int64)]
        img = self._load(rows)  # (B, C, H, W)
        lm = self._landmarks(rows)  # (B, 68, 2)
        labels, valid = torch.from_numpy(self.labels[rows]), torch.from_numpy(self.valid[rows])
        emotion = torch.from_numpy(np.asarray(self.emotion[rows], dtype=np.int64))
        return [{"labels": labels[j], "valid": valid[j], "landmarks": lm[j], "emotion": emotion[j],
                 "row": torch.tensor(int(r)), "image": img[j]} for j, r in enumerate(rows)]
