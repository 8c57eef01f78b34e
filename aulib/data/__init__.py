"""Data layer: the canonical format and everything that reads or writes it."""

from .schema import (
                     AU_UNION,
                     EMOTIONS,
                     UNKNOWN,
                     CanonicalDataset,
                     DatasetError,
                     DatasetMeta,
                     open_dataset,
                     write_dataset,
)

__all__ = ["AU_UNION", "EMOTIONS", "UNKNOWN", "CanonicalDataset", "DatasetError", "DatasetMeta", "open_dataset",
           "write_dataset"]
