"""Build the course notebooks (.ipynb, no outputs) from their sources in ``_src/``.

    python notebooks/_build.py            # rebuild every notebook
    python notebooks/_build.py --check    # exit 1 if a committed notebook is out of date

A source is a Python file in "percent" format: ``# %%`` starts a code cell,
``# %% [markdown]`` a markdown cell whose lines each start with ``#``.
Editing the sources and rebuilding keeps diffs readable; the test suite
checks that the committed notebooks match their sources.
"""
import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE / "_src"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def _cell(kind, lines):
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if kind == "markdown":
        lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        return nbformat.v4.new_markdown_cell("\n".join(lines))
    return nbformat.v4.new_code_cell("\n".join(lines))


def build(source_text):
    """A notebook (NotebookNode) from the text of a percent-format source."""
    cells, kind, lines = [], None, []
    for line in source_text.splitlines():
        if line.startswith("# %%"):
            if kind is not None:
                cells.append(_cell(kind, lines))
            kind = "markdown" if "[markdown]" in line else "code"
            lines = []
        elif kind is not None:
            lines.append(line)
    if kind is not None:
        cells.append(_cell(kind, lines))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    nbformat.validate(nb)
    return nb


def sources():
    return sorted(SRC.glob("[0-9]*.py"))


def target(src):
    return HERE / (src.stem + ".ipynb")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for src in sources():
        text = nbformat.writes(build(src.read_text())) + "\n"
        out = target(src)
        if args.check:
            if not out.exists() or out.read_text() != text:
                stale.append(out.name)
        else:
            out.write_text(text)
            print(f"wrote {out.relative_to(HERE.parent)}")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python notebooks/_build.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
