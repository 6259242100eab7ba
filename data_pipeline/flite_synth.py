"""One demo utterance: flite speech with its phone timings, a simulated channel and noise, features and frame labels.

flite (``flite -voice V -psdur -t TEXT -o out.wav``) writes the waveform and prints every phone with its end time in
seconds (``pau:0.184 dh:0.236 ax:0.265 ...``). Those times label the frames: frame t covers
``[t * 10 ms, t * 10 ms + 25 ms)`` and takes the label of the phone segment that holds its centre.

What flite can vary, checked on flite 2.2 (Debian 2.2-5): ``--setf duration_stretch=X`` scales the speaking rate of
all four voices; ``--setf int_f0_target_mean=HZ`` moves the pitch of kal16 (diphone), slt and awb (clustergen), but
rms ignores it (its F0 comes from a statistical model; the output is byte-identical), so rms keeps its own pitch.
An unknown ``-voice`` name silently falls back to the 8 kHz ``kal`` voice, hence the explicit check against
``flite -lv``.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phonetune.data_pipeline.features import HOP_SAMPLES, SAMPLE_RATE, WINDOW_SAMPLES, log_mel, resample
from phonetune.data_pipeline.phonemes import HW1P2_PHONEMES
from phonetune.errors import ConfigError, DataError

# Voice -> the int_f0_target_mean (Hz) the pitch factor scales; None where flite ignores the setting (rms).
VOICE_BASE_F0: dict[str, float | None] = {"kal16": 100.0, "slt": 170.0, "awb": 125.0, "rms": None}
# flite phones whose HW1P2 symbol is not just the upper-cased name.
_RENAMED_PHONES = {"pau": "[SIL]", "ax": "AH"}
_INVENTORY = frozenset(HW1P2_PHONEMES)
FLITE_TIMEOUT_S = 60  # one utterance takes well under a second; a hung flite must not hang the whole build


class FliteMissingError(ConfigError):
    """The flite binary cannot be found or run."""


class FliteVoiceError(ConfigError):
    """A requested voice is not among those the installed flite offers."""


class FliteSynthesisError(DataError):
    """flite failed on an utterance, or wrote audio or timings that cannot be used."""


class UnmappedPhoneError(DataError):
    """flite produced a phone that does not map into the 40-class HW1P2 inventory."""


def hw1p2_symbol(flite_phone: str) -> str:
    """The HW1P2 class of a flite phone: ``pau`` -> ``[SIL]``, ``ax`` -> ``AH``, others upper-cased."""
    symbol = _RENAMED_PHONES.get(flite_phone, flite_phone.upper())
    if symbol not in _INVENTORY:
        raise UnmappedPhoneError(
            f"flite phone {flite_phone!r} must map into the 40-class HW1P2 inventory, but it maps to {symbol!r}, "
            f"which is not one of {' '.join(HW1P2_PHONEMES)}; extend the mapping in {__name__}"
        )
    return symbol


def find_flite(binary: str = "flite") -> str:
    """Absolute path of the flite binary, or ``FliteMissingError`` saying how to install it."""
    path = shutil.which(binary)
    if path is None:
        raise FliteMissingError(
            f"the demo corpus is synthesized with flite, but {binary!r} was not found on PATH; "
            "install it with apt-get install flite"
        )
    return path


def available_voices(binary: str) -> list[str]:
    """Voice names compiled into ``binary`` (parsed from ``flite -lv``)."""
    result = subprocess.run([binary, "-lv"], capture_output=True, text=True, timeout=FLITE_TIMEOUT_S, check=False)
    line = result.stdout.strip()
    if result.returncode != 0 or not line.startswith("Voices available:"):
        raise FliteMissingError(
            f"{binary} -lv must list the voices, but it exited with {result.returncode} and printed {line[:200]!r}"
        )
    return line.split(":", 1)[1].split()


def check_voices(binary: str, voices: list[str]) -> None:
    offered = available_voices(binary)
    missing = [voice for voice in voices if voice not in offered]
    if missing:
        raise FliteVoiceError(
            f"demo corpus voices must be offered by {binary}, but {missing} are not; it offers {offered}"
        )


def flite_version(binary: str) -> str:
    """The version line of flite (e.g. ``flite-2.2-current Sep 2018``), recorded in the corpus manifest."""
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=FLITE_TIMEOUT_S, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        if "version:" in line:
            return line.split("version:", 1)[1].split("(")[0].strip()
    return "unknown"


@dataclass(frozen=True)
class UtterancePlan:
    """Everything random about one utterance, drawn from its own seed before synthesis."""

    text: str  # what flite says
    voice: str  # flite voice name
    duration_stretch: float  # > 1 speaks slower
    f0_mean_hz: float | None  # int_f0_target_mean; None keeps the voice's own pitch
    snr_db: float  # speech-to-noise power ratio of the added white noise
    channel_fir: tuple[float, ...]  # unit-energy FIR applied to speech + noise (spectral tilt and ripple)
    gain_db: float  # overall level change after the channel


@dataclass(frozen=True)
class SynthesizedUtterance:
    features: np.ndarray  # (T, 28) float32 log mel
    labels: list[str]  # T HW1P2 symbols
    segments: list[tuple[str, float]]  # flite phones with end times (s), as printed
    audio_seconds: float  # length of the 16 kHz waveform


def parse_segments(stdout: str, where: str) -> list[tuple[str, float]]:
    """Parse ``-psdur`` output (``pau:0.184 dh:0.236 ...``) into (phone, end seconds), checking end times rise."""
    segments = []
    for token in stdout.split():
        phone, sep, end = token.partition(":")
        try:
            end_s = float(end)
        except ValueError:
            end_s = float("nan")
        if not sep or not phone or not np.isfinite(end_s):
            raise FliteSynthesisError(f"{where}: flite timings must look like 'phone:seconds', but got {token!r}")
        segments.append((phone, end_s))
    if not segments:
        raise FliteSynthesisError(f"{where}: flite printed no phone timings (is -psdur supported by this flite?)")
    ends = np.array([end for _, end in segments])
    if np.any(np.diff(ends) < 0):
        raise FliteSynthesisError(f"{where}: flite phone end times must not decrease, but got {stdout.strip()[:200]!r}")
    return segments


def read_wav(path: Path, where: str) -> tuple[np.ndarray, int]:
    """A 16-bit mono wav as float64 in [-1, 1) and its sample rate."""
    try:
        with wave.open(str(path), "rb") as handle:
            channels, sample_width, rate = handle.getnchannels(), handle.getsampwidth(), handle.getframerate()
            raw = handle.readframes(handle.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise FliteSynthesisError(f"{where}: flite's output {path} is not a readable wav file: {exc}") from exc
    if channels != 1 or sample_width != 2:
        raise FliteSynthesisError(
            f"{where}: flite's output must be 16-bit mono, but {path} has {channels} channels of {8 * sample_width} bits"
        )
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0, rate


def run_flite(binary: str, plan: UtterancePlan, wav_path: Path, where: str) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """Synthesize ``plan.text``; return the 16 kHz waveform and the phone segments."""
    command = [binary, "-voice", plan.voice, "-psdur", "--setf", f"duration_stretch={plan.duration_stretch:.4f}"]
    if plan.f0_mean_hz is not None:
        command += ["--setf", f"int_f0_target_mean={plan.f0_mean_hz:.2f}"]
    command += ["-t", plan.text, "-o", str(wav_path)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=FLITE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FliteSynthesisError(f"{where}: flite voice {plan.voice!r} failed to run: {exc}") from exc
    if result.returncode != 0 or not wav_path.is_file():
        raise FliteSynthesisError(
            f"{where}: flite voice {plan.voice!r} must exit 0 and write {wav_path}, but it exited with "
            f"{result.returncode}: {result.stderr.strip()[:300]!r}"
        )
    waveform, rate = read_wav(wav_path, where)
    wav_path.unlink()
    return resample(waveform, rate, SAMPLE_RATE), parse_segments(result.stdout, where)


def add_noise_and_channel(waveform: np.ndarray, plan: UtterancePlan, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``plan.snr_db``, then the channel FIR over speech and noise together, then the gain."""
    speech_power = max(float(np.mean(waveform**2)), 1e-12)
    noise = rng.standard_normal(len(waveform)) * np.sqrt(speech_power / 10.0 ** (plan.snr_db / 10.0))
    coloured = np.convolve(waveform + noise, np.asarray(plan.channel_fir), mode="full")[: len(waveform)]
    return coloured * 10.0 ** (plan.gain_db / 20.0)


def frame_labels(segments: list[tuple[str, float]], num_frames: int) -> list[str]:
    """HW1P2 symbol of each frame: the segment holding the frame centre ``t * hop + window / 2``.

    Segment i spans ``[end[i-1], end[i])``; a centre past the last end (flite's timings can end a little after or
    before the audio) takes the last segment, which is flite's closing pause.
    """
    symbols = [hw1p2_symbol(phone) for phone, _ in segments]
    ends = np.array([end for _, end in segments])
    centres = (np.arange(num_frames) * HOP_SAMPLES + WINDOW_SAMPLES / 2) / SAMPLE_RATE
    which = np.minimum(np.searchsorted(ends, centres, side="right"), len(segments) - 1)
    return [symbols[index] for index in which]


def synthesize_utterance(
    binary: str, plan: UtterancePlan, rng: np.random.Generator, wav_path: Path, where: str
) -> SynthesizedUtterance:
    """Run one plan end to end: flite, noise and channel, log-mel features and per-frame labels."""
    clean, segments = run_flite(binary, plan, wav_path, where)
    degraded = add_noise_and_channel(clean, plan, rng)
    features = log_mel(degraded, SAMPLE_RATE)
    if len(features) == 0:
        raise FliteSynthesisError(f"{where}: flite wrote {len(clean)} samples, too short for one 25 ms frame")
    return SynthesizedUtterance(
        features=features,
        labels=frame_labels(segments, len(features)),
        segments=segments,
        audio_seconds=len(clean) / SAMPLE_RATE,
    )
