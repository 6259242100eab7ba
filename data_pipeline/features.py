"""Waveform to HW1P2-style frame features: 25 ms Hamming windows every 10 ms, 28 log mel-band energies.

Everything is vectorized: the waveform is viewed as a (frames, window) matrix with stride tricks (no copy), then
windowed and transformed with one ``rfft`` call on the whole matrix, and projected onto the mel filterbank with one
matrix product.

Example::

    >>> import numpy as np
    >>> tone = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    >>> log_mel(tone).shape
    (98, 28)
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000  # Hz; HW1P2 features come from 16 kHz LibriSpeech audio
WINDOW_SAMPLES = 400  # 25 ms at 16 kHz
HOP_SAMPLES = 160  # 10 ms at 16 kHz
FFT_SIZE = 512  # next power of two above the window
NUM_BANDS = 28  # HW1P2 feature width
# Power floor before the log: about -100 dB below a full-scale sine, so silent (all-zero) frames stay finite.
POWER_FLOOR = 1e-10


def frame_count(num_samples: int, window_samples: int = WINDOW_SAMPLES, hop_samples: int = HOP_SAMPLES) -> int:
    """Number of whole windows that fit in ``num_samples`` (0 when the signal is shorter than one window)."""
    if num_samples < window_samples:
        return 0
    return 1 + (num_samples - window_samples) // hop_samples


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 * log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    num_bands: int = NUM_BANDS,
    fft_size: int = FFT_SIZE,
    sample_rate: int = SAMPLE_RATE,
    low_hz: float = 0.0,
    high_hz: float | None = None,
) -> np.ndarray:
    """Triangular filters evenly spaced on the mel scale, as a (fft_size // 2 + 1, num_bands) matrix.

    Band ``b`` rises from edge ``b`` to its peak at edge ``b + 1`` and falls to zero at edge ``b + 2``; the edges
    are ``num_bands + 2`` points evenly spaced in mel between ``low_hz`` and ``high_hz`` (default Nyquist).
    """
    high_hz = sample_rate / 2.0 if high_hz is None else high_hz
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), num_bands + 2))
    bin_hz = np.arange(fft_size // 2 + 1) * sample_rate / fft_size
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bin_hz[:, None] - lower) / (centre - lower)  # (bins, bands)
    falling = (upper - bin_hz[:, None]) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


def frame_signal(waveform: np.ndarray, window_samples: int = WINDOW_SAMPLES, hop_samples: int = HOP_SAMPLES) -> np.ndarray:
    """A read-only (frames, window_samples) view of ``waveform``; trailing samples that fill no window are dropped."""
    num_frames = frame_count(len(waveform), window_samples, hop_samples)
    if num_frames == 0:
        return np.zeros((0, window_samples), dtype=waveform.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(waveform, window_samples)  # (samples - window + 1, window)
    return windows[: (num_frames - 1) * hop_samples + 1 : hop_samples]


def log_mel(
    waveform: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    num_bands: int = NUM_BANDS,
    *,
    window_samples: int = WINDOW_SAMPLES,
    hop_samples: int = HOP_SAMPLES,
    fft_size: int = FFT_SIZE,
) -> np.ndarray:
    """Log mel-band power of a mono waveform: a (T, num_bands) float32 array, T = ``frame_count(len(waveform))``.

    Frame t covers samples ``[t * hop, t * hop + window)``. Each frame is Hamming-windowed, its power spectrum
    (``fft_size`` points) is projected on ``num_bands`` triangular mel filters up to Nyquist, and the natural log is
    taken after flooring at ``POWER_FLOOR``. The waveform's scale is kept (no per-utterance normalization), so a
    louder or differently coloured channel shifts the features; normalization belongs to the data pipeline.
    """
    waveform = np.asarray(waveform, dtype=np.float64)
    if waveform.ndim != 1:
        raise ValueError(f"log_mel expects a mono (samples,) waveform, but got shape {waveform.shape}")
    frames = frame_signal(waveform, window_samples, hop_samples)  # (T, window)
    spectrum = np.fft.rfft(frames * np.hamming(window_samples), n=fft_size, axis=1)  # (T, fft_size // 2 + 1)
    power = spectrum.real**2 + spectrum.imag**2
    band_power = _apply_filterbank(power, mel_filterbank(num_bands, fft_size, sample_rate))  # (T, num_bands)
    return np.log(np.maximum(band_power, POWER_FLOOR)).astype(np.float32)


def _apply_filterbank(power: np.ndarray, filterbank: np.ndarray) -> np.ndarray:
    """``power @ filterbank`` computed from the filterbank's nonzero weights only, without BLAS.

    Each band touches a few dozen bins, so gathering them and summing each band's run with ``add.reduceat`` costs
    about as much as a single-threaded matmul. It avoids two problems of a BLAS matmul here: multi-threaded BLAS
    slows down by an order of magnitude when the CPUs are busy (as they are while flite runs), and its summation
    order may depend on the thread count, which would make the corpus bytes depend on the machine.
    """
    band_of_weight, bin_of_weight = np.nonzero(filterbank.T)  # sorted by band, then bin
    band_starts = np.searchsorted(band_of_weight, np.arange(filterbank.shape[1]))
    if len(np.unique(band_of_weight)) != filterbank.shape[1]:
        raise ValueError("every mel band must cover at least one FFT bin; use fewer bands or a larger FFT")
    weighted = power[:, bin_of_weight] * filterbank[bin_of_weight, band_of_weight]  # (T, nonzero weights)
    return np.add.reduceat(weighted, band_starts, axis=1)


def resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling by zero-padding or truncating the spectrum (one FFT each way).

    Used only when a flite voice writes a rate other than 16 kHz (the four default voices all write 16 kHz). The
    output has ``round(len * to_rate / from_rate)`` samples; content above the lower Nyquist is removed.
    """
    if from_rate == to_rate:
        return np.asarray(waveform, dtype=np.float64)
    num_in = len(waveform)
    num_out = int(round(num_in * to_rate / from_rate))
    spectrum = np.fft.rfft(np.asarray(waveform, dtype=np.float64))
    kept_bins = min(len(spectrum), num_out // 2 + 1)
    resized = np.zeros(num_out // 2 + 1, dtype=np.complex128)
    resized[:kept_bins] = spectrum[:kept_bins]
    return np.fft.irfft(resized, n=num_out) * (num_out / max(num_in, 1))
