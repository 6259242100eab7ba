"""The ``phonetune`` command: a thin dispatcher over library functions.

Each subcommand lives in ``phonetune.search.commands.<module>`` and exposes ``add_parser(subparsers)``, which
registers its arguments and sets ``handler`` (a function taking the parsed namespace and returning an exit code).
Modules are imported only when their command runs, so ``phonetune inspect`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from phonetune.errors import PhonetuneError

# command name -> module under phonetune.search.commands
COMMANDS: dict[str, str] = {
    "inspect": "inspect_data",
    "demo-data": "demo_data",
    "train": "train",
    "predict": "predict",
    "score": "score",
    "search": "search",
    "worker": "worker",
    "promote": "promote",
    "export": "export",
    "report": "report",
    "dashboard": "dashboard",
    "retrain": "retrain",
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phonetune", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if command is not None and name != command:
            # Register a placeholder so `phonetune --help` lists every command without importing them all.
            subparsers.add_parser(name, add_help=False)
            continue
        module = importlib.import_module(f"phonetune.search.commands.{module_name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except PhonetuneError as exc:
        print(f"phonetune {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"phonetune {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
