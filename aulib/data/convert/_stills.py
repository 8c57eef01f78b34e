"""Helpers for still-image datasets (AffectNet, EmotioNet): chunk per-image records into units."""

from __future__ import annotations

from ._engine import FrameRec, Unit

CHUNK = 256


def chunk(recs: list[FrameRec], size: int = CHUNK) -> list[Unit]:
    """Units of at most ``size`` stills; each record keeps its own subject / sequence."""
    return [Unit(recs[i].subject or "", recs[i].sequence or "still", recs[i:i + size])
            for i in range(0, len(recs), size)]
