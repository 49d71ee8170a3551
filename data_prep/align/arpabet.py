"""Pronunciations for words the CMU dictionary lacks: espeak-ng's IPA mapped to ARPAbet.

PocketSphinx's English model knows only the phones of the CMU dictionary (39 ARPAbet phones,
without stress digits); a word outside its dictionary cannot be aligned until it is given a
pronunciation in those phones. espeak-ng has letter-to-sound rules for any English spelling
("choledocholithiasis"), so :func:`arpabet` asks it for the word's IPA phonemes
(``--ipa --sep=_``: one token per phoneme) and maps each to the closest ARPAbet phone.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

# Longest IPA sequences first, so "aɪ" is one phone (AY), not "a" + "ɪ". Stress marks and the
# length mark are removed before matching. r-coloured vowels (ɑɹ, ɪɹ …) fall out of the vowel
# and ɹ → R entries; "iə" (espeak's unstressed final "-ia") is two phones as in the CMU entry
# for "pneumonia" (... N IY AH).
IPA_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # diphthongs and affricates
    "aɪ": ("AY",),
    "aʊ": ("AW",),
    "ɔɪ": ("OY",),
    "oʊ": ("OW",),
    "əʊ": ("OW",),
    "eɪ": ("EY",),
    "iə": ("IY", "AH"),
    "tʃ": ("CH",),
    "dʒ": ("JH",),
    # vowels
    "i": ("IY",),
    "ɪ": ("IH",),
    "ᵻ": ("IH",),
    "e": ("EY",),
    "ɛ": ("EH",),
    "æ": ("AE",),
    "a": ("AE",),
    "ɐ": ("AH",),
    "ɑ": ("AA",),
    "ɒ": ("AA",),
    "ɔ": ("AO",),
    "o": ("OW",),
    "ʊ": ("UH",),
    "u": ("UW",),
    "ʌ": ("AH",),
    "ə": ("AH",),
    "ɚ": ("ER",),
    "ɝ": ("ER",),
    "ɜ": ("ER",),
    # consonants
    "p": ("P",),
    "b": ("B",),
    "t": ("T",),
    "d": ("D",),
    "ɾ": ("D",),  # the American flap ("butter"); the CMU entries write it T or D
    "ʔ": ("T",),
    "k": ("K",),
    "g": ("G",),
    "ɡ": ("G",),
    "x": ("K",),
    "f": ("F",),
    "v": ("V",),
    "θ": ("TH",),
    "ð": ("DH",),
    "s": ("S",),
    "z": ("Z",),
    "ʃ": ("SH",),
    "ʒ": ("ZH",),
    "h": ("HH",),
    "ç": ("HH",),
    "m": ("M",),
    "n": ("N",),
    "ŋ": ("NG",),
    "l": ("L",),
    "ɫ": ("L",),
    "ɹ": ("R",),
    "r": ("R",),
    "w": ("W",),
    "j": ("Y",),
}
"""IPA phoneme (as espeak-ng writes it, stress and length removed) → ARPAbet phones."""

_DROPPED = str.maketrans("", "", "ˈˌːˑ̩̯‿-")  # stress, length, syllabic and tie marks
_LONGEST = max(len(k) for k in IPA_TO_ARPABET)


def ipa_to_arpabet(ipa: str) -> list[str]:
    """Map IPA phonemes to ARPAbet phones, longest match first; unknown symbols are skipped.

    Args:
        ipa: Phonemes as espeak-ng writes them, any separators (``_``, spaces) included.

    Returns:
        ARPAbet phones without stress digits, e.g. ``["T", "AE", "K"]``.
    """
    out: list[str] = []
    for token in ipa.translate(_DROPPED).replace(" ", "_").split("_"):
        i = 0
        while i < len(token):
            for size in range(min(_LONGEST, len(token) - i), 0, -1):
                phones = IPA_TO_ARPABET.get(token[i : i + size])
                if phones is not None:
                    out.extend(phones)
                    i += size
                    break
            else:
                i += 1  # a symbol without an ARPAbet counterpart
    return out


@functools.lru_cache(maxsize=4096)
def arpabet(word: str, voice: str = "en-us") -> tuple[str, ...]:
    """A pronunciation of ``word`` in ARPAbet phones, from espeak-ng's letter-to-sound rules.

    Args:
        word: One word, as spelled.
        voice: espeak-ng voice; ``en-us`` matches the CMU dictionary's American English.

    Returns:
        The phones; empty when espeak-ng gives none (a word of only symbols).

    Raises:
        RuntimeError: espeak-ng is not installed or fails.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng, or make setup)")
    # "--" ends the options, so a word starting with "-" is spoken, not parsed.
    proc = subprocess.run(
        [exe, "-q", "-v", voice, "--ipa", "--sep=_", "--", word],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"espeak-ng failed on {word!r}: {proc.stderr.strip()}")
    return tuple(ipa_to_arpabet(proc.stdout))
