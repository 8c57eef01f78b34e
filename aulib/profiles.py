"""Run-size profiles: the only place where sizes per profile live.

``smoke``  seconds per notebook; the test suite runs every notebook in it.
``cpu``    the default of ``python -m aulib reproduce``: minutes per notebook on a laptop CPU, large enough
           for each paper's effect to show on the synthetic data.
``gpu``    the papers' sizes and hyper-parameters.

A profile is plain data: ``get(profile, section)`` returns a fresh dict of the section's settings, which a
notebook maps onto the dataclass config of the method it runs. Each section belongs to one notebook or method.
"""

from __future__ import annotations

import copy
from typing import Any

PROFILE_NAMES = ("smoke", "cpu", "gpu")

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "data": {"n_subjects": 6, "sequences_per_subject": 2, "frames_per_sequence": 12, "image_size": 64},
        "cnn_study": {},
        "tranet": {},
        "aunet": {},
        "rrl": {},
        "emoco": {},
        "real_data": {},
    },
    "cpu": {
        "data": {"n_subjects": 41, "sequences_per_subject": 4, "frames_per_sequence": 60, "image_size": 112},
        "cnn_study": {},
        "tranet": {},
        "aunet": {},
        "rrl": {},
        "emoco": {},
        "real_data": {},
    },
    "gpu": {
        "data": {"n_subjects": 41, "sequences_per_subject": 8, "frames_per_sequence": 400, "image_size": 224},
        "cnn_study": {},
        "tranet": {},
        "aunet": {},
        "rrl": {},
        "emoco": {},
        "real_data": {},
    },
}


def get(profile: str, section: str) -> dict[str, Any]:
    """Settings of ``section`` in ``profile`` (a deep copy, safe to modify)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    sections = PROFILES[profile]
    if section not in sections:
        raise KeyError(f"profile {profile!r} has no section {section!r}; sections: {', '.join(sections)}")
    return copy.deepcopy(sections[section])
