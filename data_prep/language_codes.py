"""Language names → ISO 639-1 codes, for sources that name languages in words.

lhotse recipes write ``language="English"`` (LibriSpeech, GigaSpeech) or ``"Chinese"``
(AISHELL), and dataset columns sometimes do the same; what uses an item's language downstream
keys on codes: the aligner's default model per language (whisperX's ``en``, ``sw`` …), the
spoken-form normaliser (``num2words``) and the WER normaliser (English, or per character for
``zh``/``ja``). Every reader passes a row's language through :func:`language_code`.

The names are OpenAI Whisper's table of its 99 languages with their aliases (``mandarin`` →
``zh``, ``castilian`` → ``es``), in the copy transformers ships (a dependency already): one code
per name, so a name maps only where it is unambiguous. Codes (``sw``, ``pt-BR``, ``yue``) and
names the table lacks are kept as they are.
"""

from __future__ import annotations

import re
from functools import lru_cache

_TWO_LETTER = re.compile(r"[a-z]{2}([-_][A-Za-z0-9]+)*")
"""Codes no name can be mistaken for (``en``, ``pt-BR``, ``sw_ke``): kept without the table."""


@lru_cache(maxsize=1)
def codes_by_name() -> dict[str, str]:
    """Casefolded language name → ISO 639-1 code (Whisper's table)."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    return {name.casefold(): code for name, code in TO_LANGUAGE_CODE.items()}


def language_code(value: object, default: str) -> str:
    """The code of a row's language.

    Args:
        value: The row's language: a code, a name (``"English"``, ``"swahili"``) or empty.
        default: What an empty ``value`` means (the recipe's ``source.language``), itself
            mapped the same way.

    Returns:
        The code for a known name, else ``value`` as it is (stripped); ``default``'s when empty.
    """
    text = "" if value is None else str(value).strip()
    text = text or default.strip()
    if not text or _TWO_LETTER.fullmatch(text):
        return text or default
    return codes_by_name().get(text.casefold(), text)
