"""Offline NLTK data for whisperX: a minimal, untrained Punkt ``punkt_tab`` resource.

``whisperx.alignment.align`` splits every segment into sentences with NLTK's Punkt tokenizer,
loading ``tokenizers/punkt_tab/<language>`` and calling ``nltk.download('punkt_tab')`` when it is
missing, which fails without network. Our utterances reach whisperX as one segment each and only
the sentence *spans* are used (to group words, never to move them), so a Punkt model without
training data is enough: it still splits after ``.``/``?``/``!`` followed by a capital, which at
worst cuts one utterance into two sentences whose words keep their aligned times.

The resource is written under ``<sys.prefix>/nltk_data`` (the virtual environment, one of the
directories on ``nltk.data.path``) in the layout NLTK 3.10's ``PunktTokenizer.load_lang`` reads::

    <sys.prefix>/nltk_data/tokenizers/punkt_tab/<language>/
        abbrev_types.txt  collocations.tab  ortho_context.tab  sent_starters.txt

Run ``python -m data_prep.nltk_data`` (``make setup`` does); it is idempotent and never
overwrites files that already exist, so a real ``punkt_tab`` download stays untouched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

PUNKT_TAB_FILES: tuple[str, ...] = (
    "abbrev_types.txt",
    "collocations.tab",
    "ortho_context.tab",
    "sent_starters.txt",
)
"""The four parameter files ``nltk.tokenize.punkt.load_punkt_params`` opens (empty = untrained)."""

# Languages of whisperx.utils.PUNKT_LANGUAGES (3.8.6) plus English, its fallback for every other
# language. The live mapping is merged in by `punkt_languages` when whisperX is importable.
_WHISPERX_PUNKT_LANGUAGES: tuple[str, ...] = (
    "czech",
    "danish",
    "dutch",
    "english",
    "estonian",
    "finnish",
    "french",
    "german",
    "greek",
    "italian",
    "malayalam",
    "norwegian",
    "polish",
    "portuguese",
    "russian",
    "slovene",
    "spanish",
    "swedish",
    "turkish",
)


def default_root() -> Path:
    """The ``nltk_data`` directory of the running environment (``<sys.prefix>/nltk_data``)."""
    return Path(sys.prefix) / "nltk_data"


def punkt_languages() -> list[str]:
    """Punkt language names whisperX may ask for, sorted."""
    names = set(_WHISPERX_PUNKT_LANGUAGES)
    try:
        from whisperx.utils import PUNKT_LANGUAGES
    except ImportError:  # whisperX is optional for data_prep; the built-in list covers 3.8.6
        pass
    else:
        names.update(PUNKT_LANGUAGES.values())
    return sorted(names)


def write_punkt_tab(root: Path | None = None, languages: list[str] | None = None) -> list[Path]:
    """Create the empty Punkt parameter files that are missing.

    Args:
        root: ``nltk_data`` directory to write into; defaults to :func:`default_root`.
        languages: Punkt language names; defaults to :func:`punkt_languages`.

    Returns:
        The files created by this call (empty when everything was already there).
    """
    root = default_root() if root is None else root
    created: list[Path] = []
    for lang in punkt_languages() if languages is None else languages:
        lang_dir = root / "tokenizers" / "punkt_tab" / lang
        lang_dir.mkdir(parents=True, exist_ok=True)
        for name in PUNKT_TAB_FILES:
            target = lang_dir / name
            if target.exists():
                continue
            # Write then rename: a concurrent `make setup` never sees a half-created model.
            fd, tmp = tempfile.mkstemp(dir=lang_dir, prefix=f".{name}.")
            os.close(fd)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            created.append(target)
    return created


def punkt_tab_available(language: str = "english") -> bool:
    """Whether NLTK finds a ``punkt_tab`` model for ``language`` on its search path."""
    import nltk.data

    try:
        nltk.data.find(f"tokenizers/punkt_tab/{language}/")
    except LookupError:
        return False
    return True


def ensure_punkt_tab(language: str = "english") -> None:
    """Make whisperX's sentence splitter loadable offline; a no-op when NLTK already finds it.

    Args:
        language: Punkt language name (``whisperx.utils.PUNKT_LANGUAGES`` value).
    """
    if punkt_tab_available(language):
        return
    languages = sorted({*punkt_languages(), language})
    try:
        write_punkt_tab(languages=languages)
    except OSError:  # a read-only environment: ~/nltk_data is on NLTK's path too
        write_punkt_tab(Path.home() / "nltk_data", languages)


def check(root: Path | None = None, languages: list[str] | None = None) -> None:
    """Load every written model through NLTK, as whisperX does, and split a test text.

    Raises:
        RuntimeError: a model did not load or did not split the text into two sentences.
    """
    import nltk.data

    root = default_root() if root is None else root
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    for lang in punkt_languages() if languages is None else languages:
        # The ".pickle" name is what whisperX passes; NLTK 3.10 maps it onto punkt_tab.
        splitter = nltk.data.load(f"tokenizers/punkt_tab/{lang}.pickle")
        spans = list(splitter.span_tokenize("one two three. Four five"))
        if spans != [(0, 14), (15, 24)]:
            raise RuntimeError(f"punkt_tab/{lang} split the test text into {spans}")


def main(argv: list[str] | None = None) -> None:
    """Write (if missing) and verify the offline ``punkt_tab`` resource."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=default_root(), help="nltk_data directory")
    args = parser.parse_args(argv)
    created = write_punkt_tab(args.root)
    check(args.root)
    n_langs = len(punkt_languages())
    print(f"punkt_tab: {n_langs} languages under {args.root} ({len(created)} files created)")


if __name__ == "__main__":
    main()
