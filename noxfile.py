"""Sessions: `nox -s tests`, `nox -s reproduce [-- --profile cpu]`, `nox -s bench`, `nox -s lint`, `nox -s mutants`.

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


# The mutants `nox -s mutants` runs by default (mutmut's names: module.x_function or module.xǁClassǁmethod):
# every loss, and the methods' training steps with the methods that compute their loss terms (EmoCo's
# contrastive_loss, AUNet's consistency, RRL's relation_inputs). The rest of the method code (set-up,
# evaluation) is mutated in mutants/ but not run.
METHOD_LOSS_PARTS = ("training_step", "contrastive_loss", "consistency", "relation_inputs")


def _mutant_globs(arg: str) -> list[str]:
    """mutmut globs for a path (a losses file or folder: all its mutants; a methods file or folder: its loss
    parts only); anything else is taken as a mutmut glob already."""
    if not (arg.endswith(".py") or "/" in arg):
        return [arg]
    module = arg.removesuffix(".py").strip("/").replace("/", ".")
    if module.startswith("aulib.methods"):
        return [f"{module}*ǁ{m}__mutmut_*" for m in METHOD_LOSS_PARTS]
    return [f"{module}.*"]


MUTANT_TARGETS = ("aulib/losses/", "aulib/methods/")


@nox.session(python=PYTHON)
def mutants(session):
    """Mutation testing with mutmut ([tool.mutmut] in pyproject.toml: what is mutated, the fast loss and method
    tests that must kill the mutants), then the surviving mutants. Narrow it with paths or mutmut globs:
    `nox -s mutants -- aulib/losses/ot_relation.py aulib/methods/rrl.py` or `-- "aulib.losses.byol.x_byol_loss*"`.
    `mutmut show NAME` (in the session's environment) prints one mutant's diff."""
    session.install("-e", ".[dev]", "mutmut>=3.8,<4")
    targets = [g for a in (session.posargs or MUTANT_TARGETS) for g in _mutant_globs(a)]
    session.run("mutmut", "run", *targets, env=TEST_THREADS)
    session.run("mutmut", "results", env=TEST_THREADS)
