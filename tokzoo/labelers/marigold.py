"""Surface normals from Marigold (diffusers ``MarigoldNormalsPipeline``), in tokzoo's camera frame.

Install with ``pip install 'tokzoo[labelers]'``. ``create_labeler("marigold_normals")`` loads the hub id
``prs-eth/marigold-normals-v1-1`` (downloaded once into the Hugging Face cache), ``marigold_normals:DIR`` a folder
written by the pipeline's ``save_pretrained``; only safetensors weights are read and nothing is fetched at label time.

Axes: Marigold predicts unit normals with x right, y up and z towards the viewer (the frame diffusers'
``MarigoldImageProcessor.visualize_normals`` documents; a checkpoint with ``use_full_z_range=False`` keeps z >= 0).
tokzoo's normals use OpenCV camera axes (x right, y down, z forward), so :func:`marigold_to_opencv` negates y and z:
a wall seen head-on is (0, 0, 1) for Marigold and (0, 0, -1) for tokzoo.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from tokzoo.errors import CheckpointError, ConfigError, DtypeError, ShapeError, TokzooError

from .base import Labeler, register_labeler

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
REDUCTIONS = ("closest", "mean")
MARIGOLD_TO_OPENCV = np.array([1.0, -1.0, -1.0], np.float32)


def marigold_to_opencv(normals: np.ndarray) -> np.ndarray:
    """Normals (..., 3) in Marigold's frame (x right, y up, z to the viewer) -> float32 (..., 3) in OpenCV camera
    axes (x right, y down, z forward): ``(x, -y, -z)``, a rotation by 180 degrees about x (lengths unchanged)."""
    return np.asarray(normals, np.float32) * MARIGOLD_TO_OPENCV


def diffusers():
    """The ``diffusers`` module, or a one-line TokzooError saying how to install it."""
    try:
        import diffusers as module
    except ImportError:
        raise TokzooError("marigold_normals needs diffusers: pip install 'tokzoo[labelers]'") from None
    return module


@contextmanager
def _quiet_loading(module):
    """Loading bars and log lines of diffusers and transformers off while loading (a failure is re-raised as a
    CheckpointError anyway), their settings restored after."""
    import transformers

    logs = (module.utils.logging, transformers.utils.logging)
    saved = [(log.get_verbosity(), log.is_progress_bar_enabled()) for log in logs]
    for log in logs:
        log.set_verbosity(50)  # CRITICAL: no "accelerate not found" warnings, no errors about to be re-raised
        log.disable_progress_bar()
    try:
        yield
    finally:
        for log, (verbosity, bars) in zip(logs, saved):
            log.set_verbosity(verbosity)
            if bars:
                log.enable_progress_bar()


@register_labeler
class MarigoldNormals(Labeler):
    """rgb uint8 (H, W, 3) -> normals float32 (H, W, 3) at the input's size: unit vectors in OpenCV camera axes.

    Each image is resized so its longer side is ``processing_resolution`` px (0: native size; None: the checkpoint's
    ``default_processing_resolution``, 768 for v1-1), denoised for ``steps`` steps (None: the checkpoint's
    ``default_denoising_steps``) ``ensemble_size`` times, the members merged per pixel (``reduction``: "closest" to
    their mean direction, or the renormalised "mean"), resized back bilinearly and renormalised. Same-size images
    of a chunk run as one batch of ``batch_size x ensemble_size`` latents. The starting noise of image n, member e
    comes from a CPU ``torch.Generator`` seeded from ``(seed, e)`` alone, so a result does not depend on the other
    images of the batch and the same input, seed and batch give the same bytes on one machine.
    Invalid pixels: none in practice (Marigold predicts every pixel); a pixel whose vector vanished (opposite
    neighbours cancelling in the resize: norm < 0.5 after the pipeline's renormalisation) or is non-finite is NaN.
    """

    name = "marigold_normals"
    modality = "normals"
    model_backed = True
    default_checkpoint = "prs-eth/marigold-normals-v1-1"

    def __init__(
        self,
        pipeline,
        device: str = "cpu",
        batch_size: int = 8,
        reference: str = "",
        steps: int | None = None,
        ensemble_size: int = 1,
        processing_resolution: int | None = None,
        seed: int = 0,
        reduction: str = "closest",
    ):
        super().__init__(device=device, batch_size=batch_size)
        steps = pipeline.default_denoising_steps if steps is None else steps
        resolution = pipeline.default_processing_resolution if processing_resolution is None else processing_resolution
        scale = pipeline.vae_scale_factor
        problems = [
            (steps is None, "the checkpoint names no default_denoising_steps; pass steps"),
            (steps is not None and int(steps) < 1, f"steps must be >= 1, got {steps}"),
            (int(ensemble_size) < 1, f"ensemble_size must be >= 1, got {ensemble_size}"),
            (resolution is None, "the checkpoint names no default_processing_resolution; pass processing_resolution"),
            (
                resolution is not None and (int(resolution) < 0 or int(resolution) % scale),
                f"processing_resolution must be 0 (native) or a positive multiple of {scale}, got {resolution}",
            ),
            (reduction not in REDUCTIONS, f"reduction must be one of {REDUCTIONS}, got {reduction!r}"),
            (not 0 <= int(seed) < 2**63, f"seed must be in [0, 2**63), got {seed}"),
        ]
        for bad, reason in problems:
            if bad:
                raise ConfigError(f"{self.name}: {reason}")
        self.pipeline = pipeline.to(self.device)
        self.pipeline.set_progress_bar_config(disable=True)
        self.reference = reference
        self.steps, self.ensemble_size, self.processing_resolution = int(steps), int(ensemble_size), int(resolution)
        self.seed, self.reduction = int(seed), reduction

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | Path,
        device: str = "cpu",
        batch_size: int = 8,
        dtype: str = "float32",
        variant: str | None = None,
        **options,
    ):
        """Load from a ``save_pretrained`` folder or a hub id; CheckpointError (one line) when that fails.

        ``dtype``: "float32", "float16" or "bfloat16" weights (half precision for GPUs; outputs stay float32);
        ``variant``: the hub's weight variant to fetch (e.g. "fp16"); ``options``: the labeler's keyword arguments.
        """
        if dtype not in DTYPES:
            raise ConfigError(f"{cls.name}: dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
        module = diffusers()
        where = str(path_or_hub_id)
        local = Path(where).expanduser().is_dir()
        if not local and (Path(where).exists() or where.startswith(("/", ".", "~"))):  # a path, not a hub id
            reason = "is a file" if Path(where).exists() else "no such folder"
            raise CheckpointError(f"{where}: {reason}; {cls.name} loads a save_pretrained folder or a hub id")
        dtype_key = "dtype" if hasattr(module.pipelines.pipeline_utils, "_resolve_dtype") else "torch_dtype"  # renamed
        try:
            with _quiet_loading(module):
                pipeline = module.MarigoldNormalsPipeline.from_pretrained(
                    Path(where).expanduser() if local else where,
                    variant=variant,
                    use_safetensors=True,
                    local_files_only=local,
                    **{dtype_key: DTYPES[dtype]},
                )
            kind = pipeline.config.get("prediction_type")
            if kind != "normals" or not isinstance(pipeline, module.MarigoldNormalsPipeline):
                raise ValueError(f"it holds a {kind!r} model, not a Marigold normals one")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            first = first.split(" Please check out the root cause")[0]  # diffusers points at a traceback we drop
            raise CheckpointError(f"{where}: cannot load a MarigoldNormalsPipeline ({first})") from None
        return cls(pipeline, device=device, batch_size=batch_size, reference=where, **options)

    def _label(self, chunk):
        images, out = chunk["rgb"], [None] * len(chunk["rgb"])
        groups: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            image = np.asarray(image)
            if image.dtype != np.uint8:
                raise DtypeError(self.name, f"rgb must be uint8, got {image.dtype}")
            if image.ndim != 3 or image.shape[2] != 3:
                raise ShapeError(self.name, f"rgb must be (H, W, 3), got shape {image.shape}")
            groups.setdefault(image.shape, []).append(i)
        for indices in groups.values():
            for i, value in zip(indices, self._predict([np.asarray(images[i]) for i in indices])):
                out[i] = value
        return out

    def generators(self, count: int) -> list[torch.Generator]:
        """CPU generators for ``count`` images, image-major (image n, member e at ``n * ensemble_size + e``)."""
        seeds = [
            int(np.random.SeedSequence([self.seed, e]).generate_state(1, np.uint64)[0] >> 1)
            for e in range(self.ensemble_size)
        ]
        return [torch.Generator("cpu").manual_seed(s) for _ in range(count) for s in seeds]

    def _predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Same-size rgb uint8 (H, W, 3) images -> normals float32 (H, W, 3) each."""
        pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(self.device)  # uint8 (N, 3, H, W)
        with torch.inference_mode():
            prediction = self.pipeline(
                pixels,
                num_inference_steps=self.steps,
                ensemble_size=self.ensemble_size,
                processing_resolution=self.processing_resolution,
                match_input_resolution=True,
                batch_size=len(images) * self.ensemble_size,  # one denoising batch: member i draws from generator i
                ensembling_kwargs={"reduction": self.reduction},
                generator=self.generators(len(images)),
                output_type="pt",
            ).prediction  # (N, 3, H, W) unit vectors, Marigold's frame
        normals = marigold_to_opencv(prediction.float().permute(0, 2, 3, 1).cpu().numpy())
        norm = np.linalg.norm(normals, axis=-1, keepdims=True)  # 1 up to half-precision rounding, or < 1 if vanished
        with np.errstate(invalid="ignore", divide="ignore"):
            normals = np.where(norm > 0.5, normals / norm, np.nan).astype(np.float32)  # renormalised in float32
        return list(normals)

    def describe(self) -> str:
        return (
            f"{super().describe()} [MarigoldNormalsPipeline {self.reference}, {self.steps} steps, ensemble "
            f"{self.ensemble_size}, {self.processing_resolution or 'native'} px, seed {self.seed}]"
        )
