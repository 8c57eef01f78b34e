"""aulib: a reproducible companion to five facial Action Unit detection papers.

Layers (each imports only those below it): data; models, losses; methods, train; eval; experiments; viz.
The command line and its modules (reproduce, runs = ``aulib train``, inference = ``aulib predict``) and the
notebooks sit on top. See README.md.
"""

__version__ = "0.1.0"


def predict(paths, checkpoint=None, **kwargs):
    """AUs of the faces in images, folders and videos: one row per (input, frame, face); see
    :func:`aulib.inference.predict` (imported on first use, so ``import aulib`` does not load torch)."""
    from aulib.inference import predict as _predict

    return _predict(paths, checkpoint=checkpoint, **kwargs)
