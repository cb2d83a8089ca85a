"""The ``npvae`` command line: ``npvae <command> [options]``.

Each command lives in its own module under ``npvae/commands/`` with two
functions, ``add_arguments(parser)`` and ``run(args) -> int``, and a module
docstring whose first line is the command's one-line help.  Errors that a
user can fix (``ValueError``, ``FileNotFoundError``) are printed as one line
and give exit code 2; no traceback.
"""
import argparse
import importlib
import sys

COMMANDS = ("train", "evaluate", "sample", "plot", "variance", "compare", "exercises")


def _load(name):
    try:
        return importlib.import_module(f"npvae.commands.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"npvae.commands.{name}":
            return None
        raise


def build_parser():
    parser = argparse.ArgumentParser(
        prog="npvae",
        description="Auto-Encoding Variational Bayes in pure NumPy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        doc = (module.__doc__ or name).strip().splitlines()[0]
        p = sub.add_parser(name, help=doc, description=module.__doc__,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"npvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npvae {args.command}: interrupted", file=sys.stderr)
        return 130
