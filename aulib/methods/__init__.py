"""Methods: algorithms only, one module per paper method on :class:`aulib.methods.base.Method`, by name.

    from aulib import methods
    methods.available()                       # ['aunet', 'cnn_study', 'emoco', 'rrl', 'supervised', 'tranet']
    m = methods.create("rrl", image_size=64)  # config fields by keyword, validated

A method module holds the model assembly, the training step, the loss wiring and the config dataclass. It knows
nothing of folds, seeds, tables or claims (those live in :mod:`aulib.experiments`) and imports neither
:mod:`aulib.train`, :mod:`aulib.eval` nor :mod:`aulib.experiments`.
"""

from aulib.methods.base import Method, cosine_ramp, unpack_batch
from aulib.methods.registry import UnknownMethodError, available, config_of, create, get, register

__all__ = ["Method", "UnknownMethodError", "available", "config_of", "cosine_ramp", "create", "get", "register",
           "unpack_batch"]
