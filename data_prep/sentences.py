"""Sentences to speak: a small fixed vocabulary of everyday and clinical words.

:func:`sentence_corpus` makes the short English sentences that :func:`data_prep.synth.synthesize`
speaks for tests, benchmarks and the demo; :data:`MEDICAL_TERMS` lists the clinical words the
medical sentences carry. Kept apart from the synthesizer: the corpus is plain text, needs neither
espeak-ng nor numpy, and changes for different reasons (vocabulary, not timing).
"""

from __future__ import annotations

import random
from typing import Literal

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


def sentence_corpus(
    n: int, seed: int, vocabulary: Literal["general", "medical"] = "general"
) -> list[str]:
    """Make ``n`` short English sentences (4 to 10 words) from a small fixed vocabulary.

    Args:
        n: number of sentences.
        seed: the same seed gives the same list.
        vocabulary: ``"general"`` everyday words (under 100), or ``"medical"`` clinical sentences
            each carrying at least one of :data:`MEDICAL_TERMS`.

    Returns:
        ``n`` sentences, capitalised, ending in ``.`` or ``?``; duplicates are possible.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    makers = {"general": _general_sentence, "medical": _medical_sentence}
    if vocabulary not in makers:
        raise ValueError(f"vocabulary must be 'general' or 'medical', got {vocabulary!r}")
    # A private generator: the global `random` state is neither used nor disturbed.
    rng = random.Random(f"{vocabulary}:{seed}")
    make = makers[vocabulary]
    out = []
    for _ in range(n):
        sentence = make(rng)
        out.append(sentence[0].upper() + sentence[1:])
    return out
