"""Sessions: `nox -s tests`, `nox -s reproduce [-- --profile cpu]`, `nox -s bench`, `nox -s lint`.

Every session installs aulib from this checkout into its own virtual environment, so a fresh machine with
Python 3.11 needs nothing but `pip install nox`.
"""

import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = "3.11"
# The tests use tiny models and start helper processes (notebook kernels, DDP workers): one torch thread each
# keeps them from oversubscribing a 2-core machine. Notebooks and benchmarks use the cores they are given.
TEST_THREADS = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
THREADS = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}


@nox.session(python=PYTHON)
def tests(session):
    """The whole suite, every notebook included (smoke profile)."""
    session.install("-e", ".[dev]")
    session.run("pytest", *(session.posargs or ["-q"]), env=TEST_THREADS)


@nox.session(python=PYTHON)
def reproduce(session):
    """Every notebook through papermill into reports/ (default profile: cpu)."""
    session.install("-e", ".")
    session.run("python", "-m", "aulib", "reproduce", *session.posargs, env=THREADS)


@nox.session(python=PYTHON)
def bench(session):
    """Speed and memory figures (printed, never asserted)."""
    session.install("-e", ".")
    session.run("python", "-m", "aulib.bench", *session.posargs, env=THREADS)


@nox.session(python=PYTHON)
def lint(session):
    session.install("ruff>=0.5")
    session.run("ruff", "check", "aulib", "tests", "noxfile.py")
