"""Offline English text for the demo corpus: plain sentences harvested from Python's own standard library.

Every machine that runs phonetune has the interpreter's standard library sources, and their docstrings hold a few
thousand ordinary English sentences ("Return the number of threads required to trip the barrier."). Only sentences
made of plain words are kept, so flite's text normalization (numbers, acronyms, code) never decides what is said.

The list is deduplicated and sorted, so it is the same on every machine with the same Python minor release; another
release gives a different list, which is why the corpus manifest records its size and fingerprint.
"""

from __future__ import annotations

import hashlib
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from phonetune.errors import DataError

# Folders of the standard library that hold test fixtures, generated tables or third-party code, not prose.
_SKIPPED_FOLDERS = frozenset({"test", "tests", "site-packages", "dist-packages", "idlelib", "lib2to3", "turtledemo"})
_TRIPLE_QUOTED = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A plain word: lower case, or capitalized, with an optional contraction; "A" and "I" alone. This rejects code
# (snake_case, camelCase, dotted names), acronyms that flite would spell out, and numbers.
_PLAIN_WORD = re.compile(r"(?:[A-Z]?[a-z]+|[AI])(?:'[a-z]+)?")
# Fewer sentences than this means the standard library sources are missing (a stripped install), not a short list.
MIN_SENTENCES = 500


@dataclass(frozen=True)
class SentenceSource:
    """The harvested sentences and where they came from."""

    sentences: tuple[str, ...]  # sorted, unique
    origin: str  # folder the sentences were read from
    python_version: str  # major.minor of the interpreter whose library was read

    @property
    def fingerprint(self) -> str:
        """Short hash of the sentence list: equal fingerprints mean the same text source."""
        digest = hashlib.sha256("\n".join(self.sentences).encode("utf-8"))
        return digest.hexdigest()[:16]


def plain_sentences(text: str, min_words: int, max_words: int) -> list[str]:
    """Sentences of ``text`` that start with a capital, end with a full stop and hold only plain words.

    Commas are allowed between words; whitespace (including line breaks of a docstring) collapses to single spaces.
    """
    kept = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        if not sentence.endswith(".") or not sentence[:1].isupper():
            continue
        words = sentence[:-1].replace(",", " ").split()
        if min_words <= len(words) <= max_words and all(_PLAIN_WORD.fullmatch(word) for word in words):
            kept.append(sentence)
    return kept


def stdlib_sentences(min_words: int = 5, max_words: int = 20, library_dir: str | Path | None = None) -> SentenceSource:
    """Harvest plain sentences from the triple-quoted strings of the standard library's ``.py`` files.

    ``library_dir`` defaults to this interpreter's standard library. Raises ``DataError`` when it yields fewer than
    ``MIN_SENTENCES`` sentences (for example when the library ships only compiled files).
    """
    root = Path(library_dir or sysconfig.get_paths()["stdlib"])
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        if _SKIPPED_FOLDERS.intersection(path.relative_to(root).parts):
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        for match in _TRIPLE_QUOTED.finditer(source):
            found.update(plain_sentences(match.group(1) or match.group(2) or "", min_words, max_words))
    if len(found) < MIN_SENTENCES:
        raise DataError(
            f"the demo corpus needs at least {MIN_SENTENCES} plain English sentences from the Python standard "
            f"library sources, but {root} gave {len(found)}; install the interpreter's library sources "
            "(Debian: the libpythonX.Y-stdlib package) or run with a full Python installation"
        )
    version = sysconfig.get_python_version()
    return SentenceSource(sentences=tuple(sorted(found)), origin=str(root), python_version=version)
