"""Audio files (wav, flac, mp3, ogg) <-> float32 mono (n_samples,) in [-1, 1] at a requested rate."""

from __future__ import annotations

import io

import numpy as np

from tokzoo.errors import CorruptFileError, DtypeError, InvalidValueError, ShapeError, UnsupportedFormatError
from tokzoo.io.safety import check_not_empty

SAMPLE_RATE = 16_000
"""Default rate (Hz) audio is resampled to."""

WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}

MIN_RATE, MAX_RATE = 1000, 768_000
"""Sample rates a file may declare (Hz); a 1 Hz header would make resampling expand it 16,000-fold."""
MAX_SAMPLES = 1 << 27
"""Most samples decoded or resampled from one file (134 M: over two hours of 16 kHz audio)."""


def read_audio(data: bytes, source: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode with soundfile (libsndfile), average channels to mono, resample with librosa to ``sample_rate``.

    Returns float32 (n_samples,) clipped to [-1, 1] (resampling can overshoot slightly).
    """
    import librosa
    import soundfile

    check_not_empty(data, source)
    try:
        info = soundfile.info(io.BytesIO(data))
        if not MIN_RATE <= info.samplerate <= MAX_RATE:
            raise CorruptFileError(source, f"sample rate {info.samplerate} Hz outside [{MIN_RATE}, {MAX_RATE}]")
        if info.frames * info.channels > MAX_SAMPLES or info.frames / info.samplerate * sample_rate > MAX_SAMPLES:
            raise CorruptFileError(
                source,
                f"{info.frames} frames x {info.channels} channels at {info.samplerate} Hz: "
                f"over the limit of {MAX_SAMPLES} samples",
            )
        wave, native_rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError) as exc:
        raise CorruptFileError(source, f"audio does not decode ({exc})") from None
    if wave.shape[0] == 0:
        raise ShapeError(source, "audio has no samples")
    mono = wave.mean(axis=1)
    if native_rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=native_rate, target_sr=sample_rate)
    return check_audio(mono, source)


def check_audio(value: object, source: str) -> np.ndarray:
    """float (n,) -> float32 (n,) clipped to [-1, 1]; non-finite samples are refused."""
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise DtypeError(source, f"audio must be float, got {arr.dtype}")
    if arr.ndim != 1 or arr.size == 0:
        raise ShapeError(source, f"audio must be mono (n_samples,), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InvalidValueError(source, "audio has NaN or inf samples")
    return np.clip(arr.astype(np.float32), -1.0, 1.0)


def write_audio(value: np.ndarray, ext: str, sample_rate: int = SAMPLE_RATE, source: str = "<audio>") -> bytes:
    """float32 (n,) -> 16-bit PCM WAV or FLAC bytes at ``sample_rate``."""
    import soundfile

    fmt = WRITE_FORMATS.get(ext)
    if fmt is None:
        raise UnsupportedFormatError(source, f"cannot write audio as {ext!r}; use one of {sorted(WRITE_FORMATS)}")
    buf = io.BytesIO()
    soundfile.write(buf, check_audio(value, source), sample_rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()
