"""Phoneme inventories: the ordered symbol lists whose positions are the class indices.

``HW1P2_PHONEMES`` (40 symbols, ``[SIL]`` first) is the default and matches the current HW1P2 transcripts. The seed
notebook shows an older 46-symbol list with noise markers (``+BREATH+`` ...) and ``SIL`` instead of ``[SIL]``; it is
kept as ``SEED_46_PHONEMES`` for data labelled that way. Pick one by name with ``named_inventory``.
"""

from __future__ import annotations

from phonetune.errors import ConfigError

# Transcript markers that open and close every utterance's label array; they are stripped, never classes.
SOS = "[SOS]"
EOS = "[EOS]"

HW1P2_PHONEMES: tuple[str, ...] = tuple(
    "[SIL] AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
)

SEED_46_PHONEMES: tuple[str, ...] = tuple(
    (
        "+BREATH+ +COUGH+ +NOISE+ +SMACK+ +UH+ +UM+ AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG "
        "OW OY P R S SH SIL T TH UH UW V W Y Z ZH"
    ).split()
)

INVENTORIES: dict[str, tuple[str, ...]] = {
    "hw1p2-40": HW1P2_PHONEMES,
    "seed-46": SEED_46_PHONEMES,
}


def named_inventory(name: str) -> list[str]:
    """The phoneme list registered under ``name`` (``hw1p2-40`` or ``seed-46``), as a fresh list."""
    if name not in INVENTORIES:
        raise ConfigError(f"phoneme inventory must be one of {sorted(INVENTORIES)}, but got {name!r}")
    return list(INVENTORIES[name])


def phoneme_to_index(phonemes: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Map each symbol to its class index (its position in ``phonemes``)."""
    return {symbol: index for index, symbol in enumerate(phonemes)}
