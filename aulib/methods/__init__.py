"""Methods: one module per paper method, each on :class:`aulib.methods.base.Method`."""

from aulib.methods.base import Method, cosine_ramp

__all__ = ["Method", "cosine_ramp"]
