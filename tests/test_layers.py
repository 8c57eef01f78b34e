"""The architecture's rules, checked on the source: layers import downwards only, notebooks define nothing."""

import ast
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
METHODS = sorted((ROOT / "aulib" / "methods").glob("*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FORBIDDEN_IN_METHODS = ("aulib.eval", "aulib.train", "aulib.experiments")


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import anywhere in ``tree`` (inside functions too)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return out


def forbidden(mod: str, prefixes) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", METHODS, ids=[p.stem for p in METHODS])
def test_methods_import_no_upper_layer(path: Path):
    tree = ast.parse(path.read_text())
    bad = [(line, m) for line, m in imported_modules(tree, "aulib.methods") if forbidden(m, FORBIDDEN_IN_METHODS)]
    assert not bad, f"{path.relative_to(ROOT)} imports an upper layer: {bad}"


def test_the_import_checker_sees_imports_inside_functions():
    src = "def f():\n    from aulib.train import fit\n    from ..eval import metrics\n"
    found = [m for _, m in imported_modules(ast.parse(src), "aulib.methods")]
    assert any(forbidden(m, FORBIDDEN_IN_METHODS) for m in found)
    assert "aulib.eval" in found  # the relative import resolved against the package
    assert not any(forbidden(m, FORBIDDEN_IN_METHODS) for m in ("aulib.models", "aulib.evaluation"))


@pytest.mark.parametrize("layer,upper", [("data", ("aulib.models", "aulib.losses", "aulib.methods", "aulib.train",
                                                   "aulib.eval", "aulib.experiments", "aulib.viz")),
                                         ("models", ("aulib.methods", "aulib.train", "aulib.eval",
                                                     "aulib.experiments")),
                                         ("losses", ("aulib.methods", "aulib.train", "aulib.eval",
                                                     "aulib.experiments")),
                                         ("train", ("aulib.eval", "aulib.experiments")),
                                         ("eval", ("aulib.experiments",))])
def test_lower_layers_do_not_import_upper_ones(layer: str, upper):
    for path in sorted((ROOT / "aulib" / layer).rglob("*.py")):
        pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
        bad = [(line, m) for line, m in imported_modules(ast.parse(path.read_text()), pkg) if forbidden(m, upper)]
        assert not bad, f"{path.relative_to(ROOT)} imports an upper layer: {bad}"


def notebook_code(path: Path) -> list[tuple[int, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def parse_cell(source: str) -> ast.AST:
    # IPython magics and shell escapes are not Python
    return ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()))


def definitions(tree: ast.AST) -> list[str]:
    return [getattr(n, "name", "lambda") for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_define_no_function(path: Path):
    bad = [(i, definitions(parse_cell(src))) for i, src in notebook_code(path)]
    bad = [(i, d) for i, d in bad if d]
    assert not bad, f"{path.name} defines {bad} (cell index, names): move them into aulib"


def test_the_definition_checker_sees_defs_and_lambdas():
    assert definitions(parse_cell("%matplotlib inline\nx = sorted(a, key=lambda t: t)\n")) == ["lambda"]
    assert definitions(parse_cell("class A:\n    def f(self):\n        pass\n")) == ["A", "f"]
    assert definitions(parse_cell("plot(x)\n")) == []


PLOT_CALLS = ("plt.", "ax.", "axes", "fig", "sns.", "save_figure")


def work_lines(source: str) -> int:
    """Lines of a cell that do something: not blank, not comments, not import statements."""
    tree = parse_cell(source)
    imports = {ln for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               for ln in range(n.lineno, n.end_lineno + 1)}
    return sum(1 for i, line in enumerate(source.splitlines(), 1)
               if line.strip() and not line.strip().startswith("#") and i not in imports)


def test_work_lines_skip_imports_comments_and_blanks():
    assert work_lines("import a\nfrom b import (c,\n    d)\n\n# note\nx = 1\ny = f(x)\n") == 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_code_cells_are_short_unless_they_plot(path: Path):
    long = [i for i, src in notebook_code(path)
            if work_lines(src) > 15 and not any(k in src for k in PLOT_CALLS)]
    assert not long, f"{path.name}: code cells {long} exceed 15 lines and draw nothing; move the work into aulib"
