"""Student versions of the course notebooks: solutions replaced by stubs.

:func:`make_student_notebooks` (the ``npvae exercises`` command) replaces what
lies between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` in a code cell by
``raise NotImplementedError("Exercise ...")``.  Put the markers inside a
``def`` to keep its signature and docstring; a marked region that starts with
a ``def`` keeps its header (and docstring) too.  In markdown cells,
``<!-- BEGIN SOLUTION -->`` / ``<!-- END SOLUTION -->`` mark a written answer.
Outputs are cleared.  The checkers the stubs are run against live in
:mod:`npvae.exercises`.
"""
import re
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
MD_BEGIN, MD_END = "<!-- BEGIN SOLUTION -->", "<!-- END SOLUTION -->"


class SolutionMarkerError(ValueError):
    """A notebook's solution markers are unbalanced or misplaced."""


def _indent(line):
    return line[: len(line) - len(line.lstrip())]


def _enclosing_def(lines, i, indent):
    """The name of the function whose body holds line i (at ``indent``), if any."""
    for j in range(i - 1, -1, -1):
        m = re.match(r"(\s*)def\s+(\w+)", lines[j])
        if m and len(m.group(1)) < len(indent):
            return m.group(2)
    return None


def _def_header(region):
    """Split a region starting with ``def``: (header lines incl. docstring, body indent)."""
    k = 0
    while not region[k].rstrip().endswith(":"):
        k += 1
        if k == len(region):
            raise SolutionMarkerError("a solution region starts with a def whose header never ends")
    keep = region[: k + 1]
    rest = region[k + 1:]
    body_indent = next((_indent(r) for r in rest if r.strip()), _indent(region[0]) + "    ")
    if rest and rest[0].strip()[:3] in ('"""', "'''"):
        quote = rest[0].strip()[:3]
        j = 0
        if rest[0].strip().count(quote) < 2 or rest[0].strip() == quote:
            j = 1
            while j < len(rest) and quote not in rest[j]:
                j += 1
        keep += rest[: j + 1]
    return keep, body_indent


def strip_solutions(source, counter=None, md=False):
    """Replace every marked solution region of a cell's source by a stub.

    Code: ``raise NotImplementedError("Exercise N: <function or cell>")`` at the
    region's indentation (a region starting with ``def`` keeps the def header and
    docstring).  Markdown: an "answer here" line.  ``counter`` is a one-element
    list numbering the exercises across a notebook.  Raises
    :class:`SolutionMarkerError` for unbalanced markers.
    """
    begin, end = (MD_BEGIN, MD_END) if md else (BEGIN, END)
    counter = counter if counter is not None else [0]
    lines = source.split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == end:
            raise SolutionMarkerError(f"{end!r} without {begin!r}: {source[:60]!r}...")
        if line.strip() != begin:
            out.append(line)
            i += 1
            continue
        indent = _indent(line)
        j = i + 1
        while j < len(lines) and lines[j].strip() != end:
            if lines[j].strip() == begin:
                raise SolutionMarkerError(f"nested {begin!r}: {source[:60]!r}...")
            j += 1
        if j == len(lines):
            raise SolutionMarkerError(f"{begin!r} without {end!r}: {source[:60]!r}...")
        region = lines[i + 1: j]
        counter[0] += 1
        if md:
            out.append("*Write your answer here.*")
        else:
            first = next((r for r in region if r.strip()), "")
            m = re.match(r"\s*def\s+(\w+)", first)
            if m:
                keep, body_indent = _def_header(region[region.index(first):])
                out += keep
                name = m.group(1)
            else:
                body_indent = indent
                name = _enclosing_def(lines, i, indent) or "this cell"
            out.append(f"{body_indent}# YOUR CODE HERE")
            out.append(f'{body_indent}raise NotImplementedError("Exercise {counter[0]}: '
                       f'{name} (see the instructions above)")')
        i = j + 1
    return "\n".join(out)


def make_student_notebook(nb):
    """A student copy of a notebook (an ``nbformat.NotebookNode``): solutions stubbed,
    outputs and execution counts cleared.  Returns (new notebook, number of exercises)."""
    import copy
    nb = copy.deepcopy(nb)
    counter = [0]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, counter)
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            cell.source = strip_solutions(cell.source, counter, md=True)
    return nb, counter[0]


def find_notebooks(src=None):
    """The solution notebooks: ``src`` (a directory), else the repository's
    ``notebooks/`` next to the installed package (an editable install or a source
    checkout).  Returns the sorted list of ``.ipynb`` paths (names starting with
    ``_`` or ``.`` skipped); raises FileNotFoundError with what to do."""
    if src is not None:
        root = Path(src).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"--src {root}: no such directory")
    else:
        import npvae
        root = Path(npvae.__file__).resolve().parents[1] / "notebooks"
        if not root.is_dir():
            raise FileNotFoundError(
                f"the solution notebooks are not next to the installed package (looked in "
                f"{root}); they live in the notebooks/ directory of the npvae source "
                f"repository: pass it with --src DIR")
    paths = sorted(p for p in root.glob("*.ipynb") if not p.name.startswith(("_", ".")))
    if not paths:
        raise FileNotFoundError(f"no .ipynb notebooks in {root}")
    return paths


def make_student_notebooks(out_dir, src_dir=None, overwrite=False):
    """Write the student version of every solution notebook into ``out_dir``.

    Returns a list of (path written, number of exercises).  Refuses to replace
    an existing file unless ``overwrite`` (a student's work may be in it).
    """
    import nbformat
    paths = find_notebooks(src_dir)
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} exists and is not a directory")
    if out_dir.resolve() == paths[0].parent.resolve():
        raise ValueError(f"--out {out_dir} is the solutions' own directory; choose another")
    targets = [out_dir / p.name for p in paths]
    clash = [str(t) for t in targets if t.exists()]
    if clash and not overwrite:
        raise ValueError(f"{clash[0]} already exists (a student's work may be in it); "
                         f"pass --force to overwrite")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, target in zip(paths, targets):
        nb = nbformat.read(path, as_version=4)
        try:
            student, n = make_student_notebook(nb)
        except SolutionMarkerError as err:
            raise ValueError(f"{path.name}: {err}") from None
        nbformat.validate(student)
        nbformat.write(student, target)
        written.append((target, n))
    return written
