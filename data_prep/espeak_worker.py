"""espeak-ng in a fresh process: the worker that drives ``libespeak-ng.so.1`` and its launcher.

:func:`espeak` sends one text to a short-lived ``python -I -S`` process running
:func:`_espeak_worker` (ctypes over the library) and returns the samples and the WORD and PHONEME
events at espeak's native rate; :func:`espeak_available` probes the library once. Kept apart
from :mod:`data_prep.synth`, which turns those events into word times: this module is the
process and C boundary, the other is pure arithmetic on what comes back.
"""

from __future__ import annotations

import functools
import inspect
import marshal
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

# --- espeak-ng, one fresh process per sentence --------------------------------------------------
#
# NOTE: espeak-ng keeps static state from one synthesis to the next (the phase of its pitch
# "flutter", the gain control), so in a long-lived process the same sentence comes out a few
# samples longer or shorter every time. Each call therefore runs in a fresh interpreter that
# initialises the library, synthesizes once and exits: deterministic output, no C state shared
# between threads (so no lock is needed and threads synthesize in parallel), ~25 ms of start-up.

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
    if "text" not in request:  # an availability probe; it lists the voice variants too
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(Voice))
        listed = lib.espeak_ListVoices(ctypes.byref(Voice(languages=b"variant")))
        variants, i = [], 0
        while listed[i]:  # NULL-terminated; identifiers are "!v/f3"
            variants.append((listed[i].contents.identifier or b"").decode().rpartition("/")[2])
            i += 1
        reply({"sample_rate": sample_rate, "variants": variants})
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
    # language match must be exact: espeak otherwise takes "no-such-voice" for Norwegian. A
    # variant after a language ("en-gb+m3") goes on the file of the voice found for it.
    voice = request["voice"].encode()
    language, _, variant = voice.partition(b"+")
    found = lib.espeak_SetVoiceByName(voice) == 0
    if not found:
        by_language = Voice(name=None, languages=language, identifier=None)
        if lib.espeak_SetVoiceByProperties(ctypes.byref(by_language)) == 0:
            # `languages` is a priority byte, then the first language of the chosen voice.
            current = lib.espeak_GetCurrentVoice().contents
            found = (current.languages or b"")[1:].lower() == language.lower()
            if found and variant:
                with_variant = (current.identifier or b"") + b"+" + variant
                found = lib.espeak_SetVoiceByName(with_variant) == 0
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
class RawSynthesis:
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


def espeak(text: str, voice: str, rate_wpm: int, pitch: int) -> RawSynthesis:
    """Synthesize ``text`` in a fresh process; return its samples and events.

    Raises:
        ValueError: an unknown voice or variant (espeak-ng itself ignores an unknown variant).
    """
    variant = voice.partition("+")[2]
    if variant and variant not in espeak_variants():
        raise ValueError(
            f"espeak-ng has no voice variant {variant!r} (in {voice!r}): "
            "`espeak-ng --voices=variant` lists them"
        )
    reply = _run_worker({"text": text, "voice": voice, "rate_wpm": rate_wpm, "pitch": pitch})
    return RawSynthesis(
        sample_rate=reply["sample_rate"],
        samples=np.frombuffer(reply["audio"], dtype=np.int16),  # native byte order, same machine
        words=reply["words"],
        phonemes=reply["phonemes"],
    )


@functools.cache
def espeak_variants() -> frozenset[str]:
    """Names of espeak-ng's voice variants (``f3``, ``m3``, ``klatt`` …), read once per process.

    Raises:
        OSError, RuntimeError: ``libespeak-ng`` cannot be loaded or initialised.
    """
    return frozenset(_run_worker({})["variants"])


@functools.cache
def espeak_available() -> bool:
    """Whether ``libespeak-ng`` loads and initialises (checked once per process)."""
    try:
        _run_worker({})
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return False
    return True
