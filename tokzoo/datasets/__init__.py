"""Datasets: procedural multimodal scenes with exact ground truth."""

from .scenes import SCENE_CLASSES, Scenes, generate_scene, scene_preview, write_scene_shards

__all__ = ["SCENE_CLASSES", "Scenes", "generate_scene", "scene_preview", "write_scene_shards"]
