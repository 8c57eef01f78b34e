"""Methods: one module per paper method, each on :class:`aulib.methods.base.Method`."""

from aulib.methods.base import Method

__all__ = ["Method"]
