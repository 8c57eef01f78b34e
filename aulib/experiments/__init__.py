"""Paper experiments: one module per paper, above :mod:`aulib.eval`.

Each module (``cnn_study``, ``tranet``, ``aunet``, ``rrl``, ``emoco``) reads like its paper's experiments
section: the protocol (datasets, folds, seeds, variants), the paper's reported numbers as data (table and row),
the driver that runs the variants through :func:`aulib.eval.crossval.run_folds` (so every table carries the
``always present`` and ``prior`` baselines, and the self-supervised papers an ``untrained encoder`` and a
``supervised`` reference), and its ``CLAIMS`` judged by the one rule of :mod:`aulib.eval.claims`.
:mod:`aulib.experiments.report` writes the two tables every report carries (``results.csv``, ``claims.csv``)
and the sentences a notebook's prose is made of.
"""
