"""Write the student versions of the course notebooks (solutions replaced by stubs).

Each solution notebook's code between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` becomes ``raise NotImplementedError("Exercise ...")``
(function signatures and docstrings kept), and every output is cleared.  The
checkers that follow each exercise then fail with "not implemented yet" until
the student fills it in.
"""
from npvae import student


def add_arguments(parser):
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory to write the student notebooks into (created if needed)")
    parser.add_argument("--src", default=None, metavar="DIR",
                        help="directory of the solution notebooks; if not given, the notebooks/ "
                             "directory of the npvae source checkout the package is installed from")
    parser.add_argument("--force", action="store_true",
                        help="overwrite student notebooks that already exist in --out")


def run(args):
    written = student.make_student_notebooks(args.out, args.src, overwrite=args.force)
    for path, n in written:
        print(f"wrote {path}  ({n} exercise{'s' if n != 1 else ''})")
    return 0
