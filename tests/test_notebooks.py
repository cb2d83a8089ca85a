"""The course notebooks: executed through a real Jupyter kernel, and their student versions.

Each notebook runs with ``NPVAE_FAST=1`` (its settings cell then picks tiny
sizes).  The run walks the *student* version cell by cell in one kernel:
every ordinary cell must succeed; every exercise cell must fail on its stub
(``NotImplementedError``, or a checker's "not implemented yet"), and the cell
that checks it must fail too; then the solution cell and its checks run and
must pass, and execution continues.  So one run shows that the solution
notebook executes top to bottom, that the student notebook stops at its
first exercise, and that every checker fails on the stub and passes on the
solution.
"""
import json
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from nbclient.exceptions import CellExecutionError  # noqa: E402

from npvae import student as student_nb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p for p in NB_DIR.glob("[0-9]*.ipynb"))
TIMEOUT = 600           # seconds per cell; a FAST notebook takes well under a minute in all

sys.path.insert(0, str(NB_DIR))
import _build  # noqa: E402

sys.path.pop(0)


def _ids(paths):
    return [p.stem for p in paths]


def _marked_lines(source):
    """The non-blank lines between solution markers (what must not reach students)."""
    lines, inside = [], False
    for line in source.split("\n"):
        s = line.strip()
        if s in (student_nb.BEGIN, student_nb.MD_BEGIN):
            inside = True
        elif s in (student_nb.END, student_nb.MD_END):
            inside = False
        elif inside and s:
            lines.append(s)
    return lines


def test_every_notebook_has_a_source_and_is_up_to_date():
    assert NOTEBOOKS, "no notebooks found"
    assert sorted(p.stem for p in _build.sources()) == _ids(NOTEBOOKS)
    for src in _build.sources():
        built = nbformat.writes(_build.build(src.read_text())) + "\n"
        assert _build.target(src).read_text() == built, \
            f"{src.name} changed: run python notebooks/_build.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'os.environ.get("NPVAE_FAST") == "1"' in text, "no FAST settings cell"
    assert student_nb.BEGIN in text, "a notebook without exercises"
    # never redefine library code: no classes, and no function named like a library one
    import npvae
    library = {name for mod in ("distributions", "nn", "vae", "estimators", "evaluate")
               for name in dir(getattr(npvae, mod))}
    for name in re.findall(r"^class (\w+)", text, re.M):
        pytest.fail(f"{path.name} defines class {name}")
    for name in re.findall(r"^def (\w+)", text, re.M):
        src = next(c.source for c in nb.cells if f"def {name}(" in c.source)
        if name in library:
            assert student_nb.BEGIN in src, f"{path.name} redefines npvae's {name} outside an exercise"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_student_version_has_no_solution(path, tmp_path):
    written = student_nb.make_student_notebooks(tmp_path, NB_DIR)
    student_path = tmp_path / path.name
    assert student_path in [w for w, _ in written]
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(student_path, as_version=4)
    nbformat.validate(student)
    assert len(student.cells) == len(solution.cells)
    text = json.dumps(student)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    n = 0
    for sol, stu in zip(solution.cells, student.cells):
        kept = set(stu.source.split("\n"))
        for line in _marked_lines(sol.source):
            # a def header and docstring kept on purpose are the only survivors allowed
            if line in {k.strip() for k in kept}:
                assert line.startswith(("def ", '"""', "'''")), \
                    f"{path.name}: solution line left in the student version: {line!r}"
        if stu.source != sol.source:
            n += 1
            if stu.cell_type == "code":
                assert "raise NotImplementedError(" in stu.source
                compile(stu.source, path.name, "exec")
    assert n >= 1


def _error_text(err):
    return f"{getattr(err, 'ename', '')}: {getattr(err, 'evalue', '')}\n{err}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_and_every_exercise_is_checked(path, tmp_path, monkeypatch):
    monkeypatch.setenv("NPVAE_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    solution = nbformat.read(path, as_version=4)
    student, n_exercises = student_nb.make_student_notebook(solution)
    assert n_exercises >= 1
    client = nbclient.NotebookClient(solution, timeout=TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    code = [i for i, c in enumerate(solution.cells) if c.cell_type == "code"]
    stubs_failed = 0
    with client.setup_kernel():
        for k, i in enumerate(code):
            sol, stu = solution.cells[i], student.cells[i]
            where = f"{path.name} cell {i}"
            if stu.source != sol.source:
                with pytest.raises(CellExecutionError) as err:
                    client.execute_cell(nbformat.from_dict(dict(stu)), i)
                text = _error_text(err.value)
                assert "NotImplementedError" in text or "not implemented yet" in text, \
                    f"{where}: the stub failed for another reason:\n{text}"
                stubs_failed += 1
                if "not implemented yet" not in text:
                    # a top-level stub: the next cell checks it, and must fail on it too
                    nxt = solution.cells[code[k + 1]]
                    assert "cmp(" in nxt.source or "check_" in nxt.source, \
                        f"{where}: an exercise cell not followed by a check"
                    with pytest.raises(CellExecutionError):
                        client.execute_cell(nbformat.from_dict(dict(nxt)), code[k + 1])
            client.execute_cell(sol, i)
            for out in sol.outputs:
                assert out.output_type != "error", f"{where}: {out}"
    assert stubs_failed == n_exercises
