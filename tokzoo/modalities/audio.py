"""Mono audio as a log-mel spectrogram over a fixed-length window, tokenized like an image."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, InvalidValueError, ShapeError
from ..viz import colorize
from .base import FSQ_LEVELS, Modality, register_modality
from .lazy_torch import F, torch

OVERSHOOT = 1e-3  # samples up to 1 + OVERSHOOT in magnitude (resampling ripple) are clipped, larger ones refused


def _frames(normalization: dict) -> int:
    return round(normalization["duration"] * normalization["sample_rate"] / normalization["hop_length"])


def log_mel(
    waveform: np.ndarray,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    duration: float,
    db_min: float,
    db_max: float,
) -> np.ndarray:
    """float (B, n) in [-1, 1] -> float32 (B, n_mels, frames) power mel spectrogram in dB, clipped to [db_min, db_max].

    The waveform is cut or zero-padded to ``frames * hop_length`` samples (frames = duration * sample_rate
    / hop_length); frame t is centred on sample t * hop_length.
    """
    import librosa

    frames = round(duration * sample_rate / hop_length)
    length = frames * hop_length
    waveform = np.pad(waveform[:, :length], ((0, 0), (0, max(0, length - waveform.shape[1]))))
    mel = librosa.feature.melspectrogram(y=waveform, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)[
        ..., :frames
    ]
    db = librosa.power_to_db(mel, ref=1.0, amin=10 ** (db_min / 10), top_db=None)
    return np.clip(db, db_min, db_max).astype(np.float32)


def mel_to_audio(
    log_mel_db: np.ndarray,
    sample_rate: int = 16_000,
    n_fft: int = 400,
    hop_length: int = 160,
    n_iter: int = 32,
    **_unused,
) -> np.ndarray:
    """Decoded log-mel (..., n_mels, frames) in dB -> float32 waveform (..., n) by Griffin-Lim (librosa).

    Phase is estimated, so the result sounds like the input but is not sample-exact. Pass the tokenizer's
    ``config["normalization"]`` as keyword arguments.
    """
    import librosa

    power = librosa.db_to_power(np.asarray(log_mel_db, dtype=np.float32))
    waveform = librosa.feature.inverse.mel_to_audio(
        power, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_iter=n_iter
    )
    return np.clip(waveform, -1, 1).astype(np.float32)


@register_modality
class Audio(Modality):
    """Log-mel in dB mapped linearly from [db_min, db_max] to [-1, 1]; one channel, (n_mels, frames) pixels."""

    name = "audio"
    file_format = "audio"
    extensions = (".wav", ".flac", ".mp3", ".ogg")
    written_as = ".wav"
    crop_rule = "unchanged"
    contract = (
        "float32/float64 array (n_samples,) or batch (B, n_samples): mono waveform in [-1, 1] at "
        "normalization.sample_rate (default 16 kHz; resample first, tokzoo.io reads files at it). Finite "
        "values only. The first `duration` seconds (default 2.56 s) are used; shorter clips are padded "
        "with silence. Encoded as a log-mel spectrogram (n_mels 64, 25 ms window, 10 ms hop -> 256 "
        "frames) in dB clipped to [-80, 30], mapped to [-1, 1]. decode returns float32 (B, n_mels, "
        "frames) log-mel in dB, not a waveform: tokzoo.modalities.audio.mel_to_audio(log_mel, "
        "**normalization) estimates one by Griffin-Lim."
    )
    in_channels = out_channels = 1
    sample_ndim = 1
    zoo_names = ("audio",)

    @classmethod
    def default_normalization(cls) -> dict:
        return {
            "sample_rate": 16_000,
            "n_fft": 400,
            "hop_length": 160,
            "n_mels": 64,
            "duration": 2.56,
            "db_min": -80.0,
            "db_max": 30.0,
        }

    def __init__(self, **normalization):
        super().__init__(**normalization)
        if not self.normalization["db_max"] > self.normalization["db_min"]:
            raise ConfigError("audio normalization: db_max must be above db_min")

    @classmethod
    def default_tokenizer(cls, name: str) -> dict:
        normalization = cls.default_normalization()
        # conv-small downsamples 16: (64 mels, 256 frames) -> 4 x 16 = 64 tokens per 2.56 s.
        return {
            "model": {"preset": "conv-small"},
            "latent_dim": 32,
            "quantizer": {"type": "fsq", "levels": FSQ_LEVELS[2**12]},
            "input_size": [normalization["n_mels"], _frames(normalization)],
            "normalization": normalization,
            "loss": "mse",
        }

    def to_model(self, x) -> torch.Tensor:
        wave = self.as_batch(
            x, (np.float32, np.float64, torch.float32, torch.float64), "float (n_samples,) mono waveform"
        )
        wave = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else wave
        if wave.shape[1] == 0:
            raise ShapeError(f"{self.name} input", "the waveform has no samples")
        if not np.isfinite(wave).all():
            raise InvalidValueError(f"{self.name} input", "waveform contains NaN or inf")
        peak = float(np.abs(wave).max())
        if peak > 1 + OVERSHOOT:
            raise InvalidValueError(
                f"{self.name} input",
                f"samples must be in [-1, 1], got peak {peak:.4g} (integer PCM? divide int16 by 32768)",
            )
        db = log_mel(np.clip(wave, -1, 1).astype(np.float32), **self.normalization)
        low, high = self.normalization["db_min"], self.normalization["db_max"]
        return torch.from_numpy(2 * (db - low) / (high - low) - 1)[:, None]

    def from_model(self, y: torch.Tensor) -> np.ndarray:
        low, high = self.normalization["db_min"], self.normalization["db_max"]
        return ((y[:, 0].float().clamp(-1, 1) + 1) / 2 * (high - low) + low).cpu().numpy()

    def loss(self, prediction, target):
        return F.mse_loss(prediction, target)

    def visualize(self, value) -> np.ndarray:
        """A log-mel (n_mels, frames) in dB, low frequencies at the bottom; a waveform is transformed first."""
        value = np.asarray(value, dtype=np.float32)
        if value.ndim == 1:
            value = log_mel(value[None], **self.normalization)[0]
        return colorize(value[::-1], self.normalization["db_min"], self.normalization["db_max"])
