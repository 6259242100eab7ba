"""phonetune: find the best MLP for frame-level phoneme classification (CMU 11-785 HW1P2) within a budget.

The ``phonetune`` command dispatches to its subcommands and does no work of its own. Each subcommand lives in ``phonetune.cli.commands.<module>`` (listed in ``COMMANDS``) and exposes
``add_parser(subparsers)``, which registers its arguments and sets ``handler`` (a function taking the parsed
namespace and returning an exit code). Modules are imported only when their command runs, so ``phonetune inspect``
does not pay for importing torch. ``python -m phonetune.cli`` runs ``main``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import logging
import re
import shlex
import signal
import sys
import time
from typing import Callable

from phonetune import interrupts
from phonetune.cli.commands import COMMANDS
from phonetune.configs import did_you_mean
from phonetune.errors import PhonetuneError, as_disk_full

DESCRIPTION = __doc__.splitlines()[0].removeprefix("phonetune: ")


def _version() -> str:
    try:
        return importlib.metadata.version("phonetune")
    except importlib.metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown (not installed)"


class _HelpFormatter(argparse.HelpFormatter):
    """An option's help ends with ``(default: X)`` only where that tells something: not on a required option, a
    flag, an empty default, or a help line that already says its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (action.required or not action.option_strings or "default" in text or default is argparse.SUPPRESS
                or default is None or isinstance(default, bool) or default in ("", [])):
            return text
        return f"{text} (default: %(default)s)"


def build_parser(command: str | None) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser | None]:
    """The parser, and the subcommand's own parser when ``command`` names one."""
    parser = argparse.ArgumentParser(prog="phonetune", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"phonetune {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, summary) in COMMANDS.items():
        if name != command:
            # A placeholder: `phonetune --help` lists every command without importing any of them (torch, optuna).
            subparsers.add_parser(name, help=summary, add_help=False)
            continue
        module = importlib.import_module(f"phonetune.cli.commands.{module_name}")
        module.add_parser(subparsers)
        subparsers.choices[name].formatter_class = _HelpFormatter
    return parser, subparsers.choices.get(command) if command else None


def _options(parser: argparse.ArgumentParser) -> list[str]:
    # argparse keeps a parser's options only in private fields; ``_actions`` has been stable since Python 3.2.
    return [option for action in parser._actions for option in action.option_strings]


def check_spelling(parser: argparse.ArgumentParser, command_parser: argparse.ArgumentParser | None,
                   argv: list[str]) -> None:
    """Exit with a did-you-mean for a misspelt command or option, before argparse blames something else (a
    misspelt ``--budegt`` would otherwise read "the following arguments are required: --budget")."""
    if command_parser is None:
        words = [arg for arg in argv if not arg.startswith("-")]
        if words and did_you_mean(words[0], COMMANDS):
            parser.error(f"unknown command {words[0]!r};{did_you_mean(words[0], COMMANDS)}")
        return
    known = _options(parser) + _options(command_parser)
    for arg in argv:
        if arg == "--":
            break
        option = arg.split("=", 1)[0]
        if not option.startswith("--") or any(name.startswith(option) for name in known):
            continue  # argparse takes an unambiguous prefix of an option (allow_abbrev)
        close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
        if close:
            command_parser.error(f"unrecognized option {option}; did you mean {close[0]}?")


class _EventFormatter(logging.Formatter):
    """One line per event: progress as plain lines, warnings and errors with their level, the module only in
    --verbose (where it helps to find the code)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == "py.warnings":  # "path:line: Category: text" and the source line; keep the text
            message = message.strip().splitlines()[0]
            message = re.sub(r"^.*?:\d+: \w+: ", "", message)
        if record.exc_info and self.verbose:
            message += "\n" + self.formatException(record.exc_info)
        where = f" [{record.name}]" if self.verbose else ""
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}{where}: {message}"
        return f"{message}{where}"


# Without --verbose a command's terminal shows what a user acts on: warnings from anywhere, and the steps of the job,
# the screen's trials and the data it caches; the trainer's per-evaluation lines and the deadline's replanning go to
# --verbose (a live progress bar shows the run on a terminal).
QUIET_INFO_LOGGERS = ("phonetune.job", "phonetune.cli", "phonetune.search.supervisor", "phonetune.data_pipeline")


def _shown_without_verbose(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.startswith(QUIET_INFO_LOGGERS)


def _configure_logging(verbose: bool) -> Callable[[], None]:
    """Route phonetune's, Optuna's and Python's warnings through one plain handler; returns the undo, so that
    ``main()`` called in a process that goes on (tests, notebooks) leaves its logging as it found it."""
    root = logging.getLogger()
    level = root.level
    handler = logging.StreamHandler()  # the sys.stderr of this call (main() removes it again when it returns)
    handler.setFormatter(_EventFormatter(verbose))
    if not verbose:
        handler.addFilter(_shown_without_verbose)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)  # Optuna's and torch's warnings, as one line each through the same handler
    # Optuna logs every trial it finishes through its own handler; the workers log each trial once themselves.
    optuna = sys.modules.get("optuna")  # imported by the command's module when the command uses it
    if optuna is not None:
        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
        if optuna is not None:
            optuna.logging.disable_propagation()
            optuna.logging.enable_default_handler()

    return undo


# What an interrupted command kept, and how to go on; a command not named here kept nothing worth saying (a worker's
# parent, `search` or `run`, says it for the whole job).
_KEPT_ON_INTERRUPT = {
    "run": "the job's state and the time it spent are kept",
    "search": "finished trials are kept and the running ones re-queued",
    "promote": "finished full-data runs are kept, and a run cut mid-way continues from its checkpoint",
}


def interrupted_hint(command: str, argv: list[str], kept_state: bool = True) -> str:
    """``: the job's state ... kept. Continue: phonetune run ...; start over: ... --fresh`` for an interrupted
    command that can go on; empty for the others. ``kept_state`` False: it stopped before it wrote anything."""
    kept = _KEPT_ON_INTERRUPT.get(command)
    if kept is None:
        return ""
    again = shlex.join(["phonetune", *[arg for arg in argv if arg != "--fresh"]])
    if not kept_state:
        return (" before the job was planned; nothing was kept (no state, no trial). Run it again with: "
                + shlex.join(["phonetune", *argv]))
    hint = f"; {kept}. Continue with the same command: {again}"
    if command == "run":
        hint += f" (a --budget changed there replans what is left); start over with: {again} --fresh"
    return hint


def main(argv: list[str] | None = None) -> int:
    # A budget is the user's wall clock from the moment the command started: importing torch and the command's
    # modules (seconds on a loaded 2-core machine) is part of it.
    entered_at = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if arg in COMMANDS), None)
    # A process started in the background of a script inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: its workers would not stop on their parent's SIGINT, nor `run` at its deadline. The
    # handler also records the request, so an interrupt that lands in a garbage-collection callback is not lost.
    # Installed first: importing the command's modules (torch) takes seconds, and a Ctrl-C then must stop it too.
    interrupts.install(signal.SIGINT)
    try:
        parser, command_parser = build_parser(command)
        if interrupts.requested():
            raise KeyboardInterrupt  # one that an imported module's own code caught and went on from
    except KeyboardInterrupt:
        interrupts.clear()
        print(f"phonetune {command or ''}: interrupted while starting".replace(" :", ":"), file=sys.stderr)
        return 130
    check_spelling(parser, command_parser, argv)
    args = parser.parse_args(argv)
    args.entered_at = entered_at
    if args.command is None:
        parser.print_help()
        return 2
    undo_logging = _configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except PhonetuneError as exc:
        print(f"phonetune {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        hint = interrupted_hint(args.command, argv, kept_state=not isinstance(exc, interrupts.InterruptedBeforeState))
        print(f"phonetune {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:
        # A full disk surfaces as OSError, or as a storage error wrapping SQLite's "database or disk is full":
        # either way one named error, not a traceback.
        disk_full = as_disk_full(exc)
        if disk_full is None:
            raise
        print(f"phonetune {args.command}: error: {disk_full}", file=sys.stderr)
        return 1
    finally:
        undo_logging()
        interrupts.clear()
