"""Sentences to speak: a small fixed vocabulary of everyday and clinical words.

:func:`sentence_corpus` makes the short sentences that :func:`data_prep.synth.synthesize`
speaks for tests, benchmarks and the demo: English here (general and medical), Spanish and
Russian general sentences in :mod:`data_prep.sentences_es` and :mod:`data_prep.sentences_ru`;
:data:`MEDICAL_TERMS` lists the clinical words the medical sentences carry. Kept apart from the
synthesizer: the corpus is plain text, needs neither espeak-ng nor numpy, and changes for
different reasons (vocabulary, not timing).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

from data_prep import sentences_es, sentences_ru

SENTENCE_LANGUAGES: tuple[str, ...] = ("en", "es", "ru")
"""Languages :func:`sentence_corpus` writes (ISO 639-1); only English has medical sentences."""

MEDICAL_TERMS: tuple[str, ...] = (
    "tachycardia",
    "bradycardia",
    "arrhythmia",
    "fibrillation",
    "hypertension",
    "hypotension",
    "myocardial",
    "infarction",
    "pneumothorax",
    "pneumonia",
    "embolism",
    "thrombosis",
    "stenosis",
    "ischemia",
    "dyspnea",
    "edema",
    "sepsis",
    "diabetes",
    "anemia",
    "metformin",
    "warfarin",
    "heparin",
    "lisinopril",
    "atorvastatin",
    "furosemide",
    "amoxicillin",
    "insulin",
    "anticoagulant",
    "echocardiogram",
    "electrocardiogram",
    "angiogram",
    "creatinine",
    "hemoglobin",
    "troponin",
)
"""Single-word clinical terms; every medical sentence carries at least one."""

# Each phrase below holds at least one MEDICAL_TERMS word. No articles: espeak-ng speaks "for a"
# and "of a" as one word, which would leave the "a" without a measured time.
_CONDITIONS = (
    "tachycardia",
    "bradycardia",
    "arrhythmia",
    "atrial fibrillation",
    "hypertension",
    "hypotension",
    "myocardial infarction",
    "pneumothorax",
    "pneumonia",
    "pulmonary embolism",
    "venous thrombosis",
    "aortic stenosis",
    "cardiac ischemia",
    "sepsis",
    "diabetes",
    "anemia",
)
_SYMPTOMS = ("dyspnea", "leg edema", "tachycardia", "hypotension")
_DRUGS = (
    "metformin",
    "warfarin",
    "heparin",
    "lisinopril",
    "atorvastatin",
    "furosemide",
    "amoxicillin",
    "insulin",
)
_TESTS = ("echocardiogram", "electrocardiogram", "angiogram")
_LABS = ("creatinine", "hemoglobin", "troponin")
_DOSES = ("five", "ten", "twenty", "forty", "fifty")
_PATIENTS = ("the patient", "she", "he", "my patient")
_CHANGES = ("rising", "falling", "stable", "normal", "high", "low")

_PEOPLE = (
    "the teacher",
    "my sister",
    "my brother",
    "our neighbor",
    "the driver",
    "a young boy",
    "the old man",
    "the farmer",
    "her friend",
    "the doctor",
)
_ADJECTIVES = ("red", "small", "old", "new", "heavy", "quiet", "bright", "warm", "green", "clean")
_THINGS = (
    "book",
    "box",
    "chair",
    "letter",
    "window",
    "garden",
    "kettle",
    "basket",
    "ticket",
    "bottle",
    "jacket",
    "lamp",
)
_VERBS_PAST = ("found", "opened", "moved", "painted", "carried", "cleaned", "sold", "bought")
_VERBS_BASE = ("find", "open", "move", "paint", "carry", "clean", "sell", "buy")
_PLACES = ("the kitchen", "the station", "the market", "the school", "the river", "the park")
_PREPOSITIONS = ("near", "behind", "inside", "beside")
_TIMES = ("today", "tomorrow", "tonight", "this morning", "next week", "on sunday")


def _general_sentence(rng: random.Random) -> str:
    c = rng.choice
    templates = (
        lambda: f"{c(_PEOPLE)} {c(_VERBS_PAST)} the {c(_ADJECTIVES)} {c(_THINGS)}.",
        lambda: f"{c(_PEOPLE)} {c(_VERBS_PAST)} a {c(_THINGS)} {c(_PREPOSITIONS)} {c(_PLACES)}.",
        lambda: f"we will {c(_VERBS_BASE)} the {c(_THINGS)} {c(_TIMES)}.",
        lambda: f"please {c(_VERBS_BASE)} the {c(_ADJECTIVES)} {c(_THINGS)} {c(_TIMES)}.",
        lambda: f"is the {c(_THINGS)} {c(_PREPOSITIONS)} {c(_PLACES)}?",
        lambda: f"the {c(_THINGS)} is {c(_ADJECTIVES)}, and the {c(_THINGS)} is {c(_ADJECTIVES)}.",
    )
    return c(templates)()


def _medical_sentence(rng: random.Random) -> str:
    c = rng.choice
    templates = (
        lambda: f"{c(_PATIENTS)} was treated for {c(_CONDITIONS)}.",
        lambda: f"start {c(_DRUGS)} {c(_DOSES)} milligrams twice daily.",
        lambda: f"the {c(_TESTS)} showed {c(_CONDITIONS)}.",
        lambda: f"{c(_PATIENTS)} takes {c(_DRUGS)} for {c(_CONDITIONS)}.",
        lambda: f"{c(_PATIENTS)} was admitted with {c(_CONDITIONS)}.",
        lambda: f"{c(_PATIENTS)} reports {c(_SYMPTOMS)} since yesterday.",
        lambda: f"hold the anticoagulant before the {c(_TESTS)}.",
        lambda: f"the {c(_LABS)} level is {c(_CHANGES)} today.",
        lambda: f"we ordered an {c(_TESTS)} for {c(_CONDITIONS)}.",
    )
    return c(templates)()


def _capitalised(sentence: str) -> str:
    """First letter upper case, after any opening punctuation ("¿está" → "¿Está")."""
    i = next((k for k, ch in enumerate(sentence) if ch.isalpha()), 0)
    return sentence[:i] + sentence[i : i + 1].upper() + sentence[i + 1 :]


def sentence_corpus(
    n: int,
    seed: int,
    vocabulary: Literal["general", "basic", "medical"] = "general",
    language: str = "en",
) -> list[str]:
    """Make ``n`` short sentences from a fixed vocabulary.

    Args:
        n: number of sentences.
        seed: the same seed gives the same list.
        vocabulary: ``"general"`` everyday words, ``"basic"`` everyday words at the English
            general sentences' size (under 100 words, no digits; English and Spanish), or
            ``"medical"`` clinical sentences each carrying at least one of
            :data:`MEDICAL_TERMS` (English only).
        language: one of :data:`SENTENCE_LANGUAGES`: English (4 to 10 words, under 100 general
            words), Spanish or Russian (4 to 12 words, several hundred words, some numbers
            written as digits).

    Returns:
        ``n`` sentences, capitalised, ending in ``.`` or ``?``; duplicates are possible.

    Raises:
        ValueError: ``n < 0``, an unknown vocabulary or language, or medical sentences in a
            language other than English.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    makers: dict[str, dict[str, Callable[[random.Random], str]]] = {
        # English general sentences are basic already (under 100 words).
        "en": {
            "general": _general_sentence,
            "basic": _general_sentence,
            "medical": _medical_sentence,
        },
        "es": {"general": sentences_es.general_sentence, "basic": sentences_es.basic_sentence},
        "ru": {"general": sentences_ru.general_sentence},
    }
    if language not in makers:
        raise ValueError(f"language must be one of {SENTENCE_LANGUAGES}, got {language!r}")
    if vocabulary not in ("general", "basic", "medical"):
        raise ValueError(f"vocabulary must be 'general', 'basic' or 'medical', got {vocabulary!r}")
    if vocabulary not in makers[language]:
        raise ValueError(
            f"there are no {vocabulary} sentences in {language!r}: medical sentences are "
            "English only (use general sentences, or language 'en')"
        )
    # A private generator: the global `random` state is neither used nor disturbed. English
    # keeps its original seed string, so its corpus is unchanged.
    prefix = "" if language == "en" else f"{language}:"
    if language == "en" and vocabulary == "basic":
        vocabulary = "general"  # the same sentences
    rng = random.Random(f"{prefix}{vocabulary}:{seed}")
    make = makers[language][vocabulary]
    return [_capitalised(make(rng)) for _ in range(n)]
