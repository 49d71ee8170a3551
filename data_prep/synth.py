"""Synthetic speech with exact word times: espeak-ng through ``libespeak-ng.so.1`` (ctypes).

Ground truth for tests and the demo: :func:`synthesize` speaks a sentence and returns 16 kHz audio
with the start and end of every written token, taken from the synthesizer's own word and phoneme
events rather than from an aligner. :func:`sentence_corpus` makes simple sentences to speak.

How the times are found (all at espeak's native rate, then converted to seconds):

* a WORD event gives the sample where a word begins and its character offset in the input, which
  maps it to a whitespace-separated token; events inside one token ("42" is spoken as "forty
  two") are merged;
* PHONEME events give the start of every phoneme; pause phonemes start with ``_``. A token starts
  at its first sounding phoneme and ends where the phoneme after its last sounding phoneme begins
  (a pause), or where the next token begins;
* tokens that espeak speaks as one dictionary word ("for a", "of a") share that word's phonemes
  by letter count; :attr:`SynthUtterance.approximate` lists them.

NOTE: each synthesis runs in its own short-lived process (see :func:`_espeak_worker`): espeak-ng
keeps static state between syntheses, which makes repeated calls in one process differ.
"""

from __future__ import annotations

import functools
import inspect
import logging
import marshal
import random
import re
import subprocess
import sys
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from vrt_finetune.constants import SAMPLE_RATE, seconds_to_samples

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthWord:
    """One written token and the time it is spoken."""

    word: str
    """The token as written, punctuation kept (``"heart,"``)."""
    start: float
    """Seconds from the start of the returned audio to the word's first sounding phoneme."""
    end: float
    """Seconds from the start of the returned audio to the end of the word's last phoneme."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays with == is not a bool
class SynthUtterance:
    """A synthesized sentence with the time of each of its tokens."""

    text: str
    """The text as given to :func:`synthesize`."""
    audio: np.ndarray
    """(n_samples,) float32 mono waveform at :data:`SAMPLE_RATE`, read-only."""
    words: tuple[SynthWord, ...]
    """One entry per whitespace-separated token of ``text``, in order."""
    voice: str
    """espeak-ng voice name."""
    rate_wpm: int
    """Speaking rate in words per minute."""
    approximate: tuple[int, ...] = ()
    """Indices into :attr:`words` whose times are estimated, not measured: espeak-ng spoke these
    tokens as one word ("for a"), and their span was shared out by letter count."""

    @property
    def duration(self) -> float:
        """Length of :attr:`audio` in seconds."""
        return len(self.audio) / SAMPLE_RATE


# --- espeak-ng, one fresh process per sentence --------------------------------------------------
#
# NOTE: espeak-ng keeps static state from one synthesis to the next (the phase of its pitch
# "flutter", the gain control), so in a long-lived process the same sentence comes out a few
# samples longer or shorter every time. Each call therefore runs in a fresh interpreter that
# initialises the library, synthesizes once and exits: deterministic output, no C state shared
# between threads (so no lock is needed and threads synthesize in parallel), ~25 ms of start-up.

_MIN_RATE_WPM, _MAX_RATE_WPM = 80, 450  # espeak-ng clamps to this range; we refuse instead
_WORKER_TIMEOUT_S = 120


def _espeak_worker() -> None:
    """Read one request on stdin, synthesize it, write the samples and events on stdout.

    Runs in a fresh ``python -I -S`` (standard library only: no package of this project is
    importable there), so everything it needs is defined inside. Both ends speak ``marshal``
    (built in, no import time; the same interpreter on both ends). Struct layout and constants
    are those of ``espeak-ng/speak_lib.h`` (1.51).
    """
    import ctypes
    import marshal
    import sys

    audio_output_synchronous, pos_character, chars_utf8 = 2, 1, 1
    initialize_phoneme_events, initialize_dont_exit = 0x0001, 0x8000  # no exit() on errors
    param_rate, param_pitch = 1, 3
    event_list_terminated, event_word, event_phoneme = 0, 1, 7

    class EventId(ctypes.Union):
        _fields_ = (
            ("number", ctypes.c_int),
            ("name", ctypes.c_char_p),
            ("string", ctypes.c_char * 8),  # phoneme mnemonic of PHONEME events
        )

    class Event(ctypes.Structure):
        _fields_ = (
            ("type", ctypes.c_int),
            ("unique_identifier", ctypes.c_uint),
            ("text_position", ctypes.c_int),  # 1-based, in characters (not bytes) of the input
            ("length", ctypes.c_int),  # characters of the word, for WORD events
            ("audio_position", ctypes.c_int),  # milliseconds; `sample` is the exact figure
            ("sample", ctypes.c_int),  # samples since the start of this synthesis
            ("user_data", ctypes.c_void_p),
            ("id", EventId),
        )

    class Voice(ctypes.Structure):  # espeak_VOICE
        _fields_ = (
            ("name", ctypes.c_char_p),
            ("languages", ctypes.c_char_p),
            ("identifier", ctypes.c_char_p),
            ("gender", ctypes.c_ubyte),
            ("age", ctypes.c_ubyte),
            ("variant", ctypes.c_ubyte),
            ("xx1", ctypes.c_ubyte),
            ("score", ctypes.c_int),
            ("spare", ctypes.c_void_p),
        )

    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event)
    )
    out = sys.stdout.buffer

    def reply(message: dict) -> None:
        out.write(marshal.dumps(message))
        out.flush()

    request = marshal.loads(sys.stdin.buffer.read())
    try:
        lib = ctypes.CDLL("libespeak-ng.so.1")
    except OSError:
        # find_library runs ldconfig (tens of ms): only when the usual soname is missing.
        import ctypes.util

        name = ctypes.util.find_library("espeak-ng")
        try:
            lib = ctypes.CDLL(name)
        except (OSError, TypeError) as e:
            reply({"error": f"cannot load libespeak-ng ({e}): install libespeak-ng1", "kind": "os"})
            return
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [callback_type]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(Voice)]
    lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(Voice)
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,  # text
        ctypes.c_size_t,  # size, bytes
        ctypes.c_uint,  # position
        ctypes.c_int,  # position type
        ctypes.c_uint,  # end position
        ctypes.c_uint,  # flags
        ctypes.POINTER(ctypes.c_uint),  # unique identifier
        ctypes.c_void_p,  # user data
    ]
    sample_rate = lib.espeak_Initialize(
        audio_output_synchronous, 0, None, initialize_phoneme_events | initialize_dont_exit
    )
    if sample_rate <= 0:
        reply({"error": "espeak_Initialize failed (is espeak-ng-data installed?)", "kind": "os"})
        return
    if "text" not in request:  # an availability probe
        reply({"sample_rate": sample_rate})
        return

    chunks: list[bytes] = []
    words: list[tuple[int, int, int]] = []  # (sample, 0-based char offset, char length)
    phonemes: list[tuple[int, str]] = []  # (sample, mnemonic)

    def on_synth(wav: ctypes._Pointer, n_samples: int, events: ctypes._Pointer) -> int:
        # Called inside espeak_Synth (synchronous mode) with each buffer; 0 means go on.
        if n_samples > 0:
            chunks.append(ctypes.string_at(wav, 2 * n_samples))
        i = 0
        while (ev := events[i]).type != event_list_terminated:
            # Zero-length word events are kept: a word in curly quotes comes with length 0. The
            # spurious ones (at some clause ends) point at whitespace or position 0.
            if ev.type == event_word:
                words.append((ev.sample, ev.text_position - 1, ev.length))
            elif ev.type == event_phoneme:
                phonemes.append((ev.sample, ev.id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    callback = callback_type(on_synth)  # a local: lives until this function returns
    lib.espeak_SetSynthCallback(callback)
    # By file or voice name ("en-us", "en-us+f3", "gmw/en"), else by language ("en-gb"); the
    # language match must be exact: espeak otherwise takes "no-such-voice" for Norwegian.
    voice = request["voice"].encode()
    found = lib.espeak_SetVoiceByName(voice) == 0
    if not found:
        by_language = Voice(name=None, languages=voice, identifier=None)
        if lib.espeak_SetVoiceByProperties(ctypes.byref(by_language)) == 0:
            # `languages` is a priority byte, then the first language of the chosen voice.
            first = lib.espeak_GetCurrentVoice().contents.languages or b""
            found = first[1:].lower() == voice.lower()
    if not found:
        reply({"error": f"espeak-ng has no voice {request['voice']!r}", "kind": "voice"})
        return
    # After the voice: selecting a voice resets rate and pitch.
    lib.espeak_SetParameter(param_rate, request["rate_wpm"], 0)
    lib.espeak_SetParameter(param_pitch, request["pitch"], 0)
    data = request["text"].encode("utf-8")
    buf = ctypes.create_string_buffer(data)  # NUL-terminated
    err = lib.espeak_Synth(buf, len(data) + 1, 0, pos_character, 0, chars_utf8, None, None)
    lib.espeak_Synchronize()
    if err != 0:
        reply({"error": f"espeak_Synth failed with code {err}", "kind": "os"})
        return
    audio = b"".join(chunks)
    reply({"sample_rate": sample_rate, "words": words, "phonemes": phonemes, "audio": audio})


@dataclass
class _RawSynthesis:
    """What espeak-ng produced for one text, at its native rate."""

    sample_rate: int
    samples: np.ndarray  # (n,) int16
    words: list[tuple[int, int, int]]  # WORD events: (sample, 0-based char offset, char length)
    phonemes: list[tuple[int, str]]  # PHONEME events: (sample, mnemonic)


@functools.cache
def _worker_command() -> tuple[str, ...]:
    source = inspect.getsource(_espeak_worker) + "\n_espeak_worker()\n"
    # -I -S: no user site, no environment, no site-packages: a ~10 ms start.
    return (sys.executable, "-I", "-S", "-c", source)


def _run_worker(request: dict) -> dict:
    proc = subprocess.run(
        _worker_command(),
        input=marshal.dumps(request),
        capture_output=True,
        timeout=_WORKER_TIMEOUT_S,
        check=False,
    )
    try:
        reply = marshal.loads(proc.stdout)
    except (EOFError, ValueError, TypeError):
        reply = None
    if proc.returncode != 0 or not isinstance(reply, dict):
        stderr = proc.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"espeak-ng worker failed (exit {proc.returncode}): {stderr}")
    if "error" in reply:
        raise (ValueError if reply["kind"] == "voice" else OSError)(reply["error"])
    return reply


def _espeak(text: str, voice: str, rate_wpm: int, pitch: int) -> _RawSynthesis:
    """Synthesize ``text`` in a fresh process; return its samples and events."""
    reply = _run_worker({"text": text, "voice": voice, "rate_wpm": rate_wpm, "pitch": pitch})
    return _RawSynthesis(
        sample_rate=reply["sample_rate"],
        samples=np.frombuffer(reply["audio"], dtype=np.int16),  # native byte order, same machine
        words=reply["words"],
        phonemes=reply["phonemes"],
    )


@functools.cache
def espeak_available() -> bool:
    """Whether ``libespeak-ng`` loads and initialises (checked once per process)."""
    try:
        _run_worker({})
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return False
    return True


# --- word times from events (pure functions) ----------------------------------------------------


def _token_spans(text: str) -> list[tuple[int, int]]:
    """Character ``[start, end)`` of each whitespace-separated token of ``text``."""
    return [m.span() for m in re.finditer(r"\S+", text)]


def _is_pause(phoneme: str) -> bool:
    return phoneme.startswith("_")


def _word_spans(
    spans: Sequence[tuple[int, int]],
    words: Sequence[tuple[int, int, int]],
    phonemes: Sequence[tuple[int, str]],
    n_samples: int,
    texts: Sequence[str],
) -> tuple[list[tuple[int, int]], list[int]]:
    """Sample ``[start, end)`` of each token, from espeak's word and phoneme events.

    Each WORD event goes to the token holding its first character; several events in one token
    ("42" → "forty", "two") merge. A token left without an event was spoken together with the
    token before it (espeak-ng's dictionary has entries such as "for a", "of a"): that group's
    sounding phonemes are then shared out in proportion to letters, cutting at phoneme starts
    and preferring cuts where espeak did report a word.

    Args:
        spans: character ``[start, end)`` of each token in the input text.
        words: WORD events as ``(sample, 0-based char offset, char length)``, in time order.
        phonemes: PHONEME events as ``(sample, mnemonic)``, in time order.
        n_samples: length of the synthesized audio.
        texts: the tokens themselves (for their letter counts).

    Returns:
        ``(times, approximate)``: one ``(start, end)`` per token, ``start < end``, in order and
        not overlapping; and the indices of tokens whose times were shared out, not reported.

    Raises:
        ValueError: no word was spoken, a group has fewer sounding phonemes than tokens, or a
            token made only of punctuation ("--") lost its word. espeak-ng does not speak such a
            token and gives the next word its position, so its time would be made up.
    """
    # Token order never goes back: after some expansions espeak reports a later word with the
    # offset of an earlier character ("for a while": "while" at the "o" of "for").
    events_of: list[list[int]] = [[] for _ in spans]
    token = 0
    for sample, offset, length in words:
        end = offset + max(length, 1)
        hit = next((k for k, (a, b) in enumerate(spans) if offset < b and a < end), None)
        if hit is not None:
            token = max(token, hit)
            events_of[token].append(sample)
    if not any(events_of):
        raise ValueError("espeak-ng reported no word")

    # Groups: a token with events and the event-less tokens after it (leading ones join the first).
    groups: list[list[int]] = []
    pending: list[int] = []
    for k in range(len(spans)):
        if events_of[k]:
            groups.append([*pending, k])
            pending = []
        elif groups:
            groups[-1].append(k)
        else:
            pending.append(k)

    los = [min(s for k in g for s in events_of[k]) for g in groups] + [n_samples]
    phoneme_samples = [s for s, _ in phonemes]  # non-decreasing: events come in time order
    times: list[tuple[int, int]] = []
    approximate: list[int] = []
    for g, group in enumerate(groups):
        lo, hi = los[g], los[g + 1]
        inside = range(bisect_left(phoneme_samples, lo), bisect_left(phoneme_samples, hi))
        sounding = [i for i in inside if not _is_pause(phonemes[i][1])]
        if len(sounding) < len(group):
            raise ValueError(f"espeak-ng spoke too few phonemes for token(s) {group}")
        if len(group) > 1:
            if any(not any(ch.isalnum() for ch in texts[k]) for k in group):
                raise ValueError(f"espeak-ng lost the word of token(s) {group[1:]}")
            approximate.extend(group)
        starts = _share_out(
            n=len(sounding),
            weights=[max(1, sum(ch.isalnum() for ch in texts[k])) for k in group],
            preferred=[
                next((j for j, i in enumerate(sounding) if phonemes[i][0] >= s), len(sounding))
                for k in group
                for s in events_of[k]
            ],
        )
        for part, first in enumerate(starts):
            last = sounding[(starts[part + 1] if part + 1 < len(starts) else len(sounding)) - 1]
            # The last phoneme lasts until the next phoneme event (a pause or the next word's
            # first phoneme) or, failing one, until the next group begins.
            last_at = phonemes[last][0]
            end = next((s for s, _ in phonemes[last + 1 :] if s > last_at), hi)
            times.append((phonemes[sounding[first]][0], min(end, hi)))
    return times, approximate


def _share_out(n: int, weights: Sequence[int], preferred: Sequence[int]) -> list[int]:
    """First index of each of ``len(weights)`` consecutive non-empty parts of ``range(n)``.

    Cuts fall near the weights' proportions; a cut snaps to a ``preferred`` index (a reported
    word start) within 1.5 of it.
    """
    total = sum(weights)
    starts = [0]
    for k in range(1, len(weights)):
        target = n * sum(weights[:k]) / total
        near = [p for p in preferred if 0 < p < n and abs(p - target) <= 1.5]
        cut = min(near, key=lambda p: abs(p - target)) if near else round(target)
        # Every part keeps at least one phoneme.
        starts.append(min(max(cut, starts[-1] + 1), n - (len(weights) - k)))
    return starts


# --- public API ---------------------------------------------------------------------------------


@functools.cache
def _resampler(native_rate: int) -> torch.nn.Module:
    # Imported here so that corpus-only users do not pay for importing torch. The transform keeps
    # its sinc kernel, which takes far longer to build than to apply.
    import torch
    import torchaudio.transforms

    return torchaudio.transforms.Resample(native_rate, SAMPLE_RATE, dtype=torch.float64)


def _resample(native: np.ndarray, native_rate: int) -> np.ndarray:
    """(n,) int16 samples at ``native_rate`` → (m,) float32 in [-1, 1] at :data:`SAMPLE_RATE`."""
    import torch

    with torch.no_grad():
        out = _resampler(native_rate)(torch.from_numpy(native / 32768.0)).numpy()
    # The sinc filter can overshoot a full-scale input slightly.
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def synthesize(
    text: str,
    voice: str = "en-us",
    rate_wpm: int = 160,
    pitch: int = 50,
    lead_silence_s: float = 0.0,
) -> SynthUtterance:
    """Speak ``text`` with espeak-ng and time each of its whitespace-separated tokens.

    Deterministic: the same arguments give identical samples. Thread-safe.

    Args:
        text: plain text (not SSML). Tokens made only of punctuation ("--") are not supported.
        voice: espeak-ng voice or language name, e.g. ``"en-us"``, ``"en-gb"``, ``"en-us+f3"``
            (``espeak-ng --voices`` lists them).
        rate_wpm: speaking rate in words per minute, 80 to 450.
        pitch: base pitch, 0 to 100 (50 is the voice's normal).
        lead_silence_s: seconds of digital silence put before the speech (word times include it).

    Returns:
        The utterance: ``audio`` (n_samples,) float32 at :data:`SAMPLE_RATE`, and one
        :class:`SynthWord` per token with ``start < end``, in order, within the audio.

    Raises:
        ValueError: empty text, an argument out of range, an unknown voice, or a token made only
            of punctuation that espeak-ng does not speak ("--").
        OSError: ``libespeak-ng`` cannot be loaded.
        RuntimeError: the synthesis process failed.
    """
    spans = _token_spans(text)
    if not spans:
        raise ValueError("nothing to synthesize: text has no words")
    if not _MIN_RATE_WPM <= rate_wpm <= _MAX_RATE_WPM:
        raise ValueError(f"rate_wpm must be in [{_MIN_RATE_WPM}, {_MAX_RATE_WPM}], got {rate_wpm}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch must be in [0, 100], got {pitch}")
    if lead_silence_s < 0:
        raise ValueError(f"lead_silence_s must be >= 0, got {lead_silence_s}")

    raw = _espeak(text, voice, rate_wpm, pitch)
    tokens = [text[a:b] for a, b in spans]
    try:
        times, approximate = _word_spans(spans, raw.words, raw.phonemes, len(raw.samples), tokens)
    except ValueError as e:
        raise ValueError(f"{e}; tokens: {tokens}; text: {text!r}") from None
    if approximate:
        log.warning(
            "espeak-ng did not time %s one by one: their times are shared out, not measured",
            [tokens[k] for k in approximate],
        )

    n_lead = seconds_to_samples(lead_silence_s)
    audio = np.concatenate([np.zeros(n_lead, np.float32), _resample(raw.samples, raw.sample_rate)])
    audio.flags.writeable = False
    offset = n_lead / SAMPLE_RATE
    duration = len(audio) / SAMPLE_RATE
    words = tuple(
        SynthWord(
            word=tokens[k],
            start=offset + s / raw.sample_rate,
            end=min(offset + e / raw.sample_rate, duration),  # resampling may round the length down
        )
        for k, (s, e) in enumerate(times)
    )
    return SynthUtterance(
        text=text,
        audio=audio,
        words=words,
        voice=voice,
        rate_wpm=rate_wpm,
        approximate=tuple(approximate),
    )


# --- sentence corpus ----------------------------------------------------------------------------

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
