"""Mask2Former semseg, BLIP captions and ViTPose pose labelers on tiny randomly initialised models of the real
architectures, saved to disk and loaded back through ``create_labeler("name:DIR")``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf  # noqa: E402  (dev extra: tokzoo[labelers])

from tokzoo.datasets import generate_scene
from tokzoo.errors import ConfigError
from tokzoo.io.formats import from_value
from tokzoo.labelers import create_labeler
from tokzoo.labelers.vitpose import person_boxes

rng = np.random.default_rng(0)
IMAGES = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)] + [
    rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)
]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "room", "with", "person", "ball"]


def save(path, model, processor):
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_mask2former_semseg_gives_uint8_class_maps(tmp_path):
    torch.manual_seed(0)
    swin = tf.SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=4,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    model = tf.Mask2FormerForUniversalSegmentation(
        tf.Mask2FormerConfig(
            backbone_config=swin,
            num_labels=5,
            hidden_dim=32,
            num_queries=8,
            encoder_feedforward_dim=64,
            dim_feedforward=64,
            decoder_layers=2,
            encoder_layers=1,
            num_attention_heads=2,
            feature_size=32,
            mask_feature_size=32,
            use_pretrained_backbone=False,
        )
    )
    path = save(tmp_path / "m2f", model, tf.Mask2FormerImageProcessor(size={"height": 64, "width": 64}))
    out = create_labeler(f"mask2former_semseg:{path}", batch_size=2).label({"rgb": IMAGES})
    assert [x.shape for x in out] == [(40, 60)] * 3 + [(50, 30)]
    assert all(x.dtype == np.uint8 and x.max() < 5 for x in out)
    assert np.array_equal(from_value("semseg", out[0], "test"), out[0])
    again = create_labeler(f"mask2former_semseg:{path}", batch_size=4).label({"rgb": IMAGES})
    assert all(np.array_equal(a, b) for a, b in zip(out, again))


def test_blip_captions_are_strings_with_a_length_cap(tmp_path):
    torch.manual_seed(0)
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    config = tf.BlipConfig(
        text_config=dict(
            vocab_size=len(WORDS),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            encoder_hidden_size=32,
            bos_token_id=2,
            sep_token_id=3,
            pad_token_id=0,
            max_position_embeddings=32,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=32,
    )
    model = tf.BlipForConditionalGeneration(config)
    with torch.no_grad():  # random weights that do not stop at once: favour the word "room"
        model.text_decoder.cls.predictions.bias[WORDS.index("room")] = 20.0
    processor = tf.BlipProcessor(
        image_processor=tf.BlipImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tf.BertTokenizer(str(tmp_path / "vocab.txt")),
    )
    path = save(tmp_path / "blip", model, processor)
    labeler = create_labeler(f"blip_captions:{path}", batch_size=3)
    captions = labeler.label({"rgb": IMAGES})
    assert len(captions) == 4 and all(isinstance(c, str) and c for c in captions)
    assert all(len(c.split()) <= labeler.max_new_tokens for c in captions)
    assert set(" ".join(captions).split()) <= set(WORDS[5:])
    labeler.max_new_tokens = 3
    assert all(len(c.split()) <= 3 for c in labeler.label({"rgb": IMAGES[:2]}))

    # tokzoo pseudo-label writes them as <key>.captions.txt, which tokzoo.io reads back as the same str
    from PIL import Image

    from tokzoo.io import open_reader
    from tokzoo.pipeline.pseudo_label import LabelJob, pseudo_label

    (tmp_path / "photos").mkdir()
    for i, image in enumerate(IMAGES):
        Image.fromarray(image).save(tmp_path / "photos" / f"p{i}.png")
    summary = pseudo_label(
        LabelJob(
            ["captions"],
            str(tmp_path / "photos"),
            tmp_path / "out",
            {"captions": f"blip_captions:{path}"},
            batch_size=3,
            progress=False,
        )
    )
    assert summary.ok == 4
    written = {s.key: s.values["captions"] for s in open_reader(tmp_path / "out", ["captions"])}
    assert written == dict(
        zip(["p0", "p1", "p2", "p3"], create_labeler(f"blip_captions:{path}").label({"rgb": IMAGES}))
    )


@pytest.fixture(scope="module")
def vitpose(tmp_path_factory):
    torch.manual_seed(0)
    model = tf.VitPoseForPoseEstimation(
        tf.VitPoseConfig(
            backbone_config=tf.VitPoseBackboneConfig(
                image_size=[64, 48],
                patch_size=[16, 16],
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                out_indices=[2],
            ),
            num_labels=17,
        )
    )
    return save(
        tmp_path_factory.mktemp("vitpose") / "vp", model, tf.VitPoseImageProcessor(size={"height": 64, "width": 48})
    )


def test_person_boxes_from_semseg_and_instances():
    semseg = np.zeros((20, 30), np.uint8)
    semseg[2:6, 3:8] = 6
    semseg[10:18, 20:25] = 6
    assert person_boxes((20, 30)) == [[0.0, 0.0, 30.0, 20.0]]
    assert person_boxes((20, 30), semseg, person_class=6) == [[3.0, 2.0, 5.0, 4.0], [20.0, 10.0, 5.0, 8.0]]
    assert person_boxes((20, 30), semseg, person_class=6, min_area=0.05) == [[20.0, 10.0, 5.0, 8.0]]  # 20 px < 30
    assert person_boxes((20, 30), semseg, person_class=3) == []  # no person pixels: no humans
    instances = np.zeros((20, 30), np.uint16)
    instances[10:18, 20:25] = 4
    instances[2:6, 3:8] = 7
    instances[0, 0:2] = 9  # not a person
    assert person_boxes((20, 30), semseg, instances, person_class=6) == [[20.0, 10.0, 5.0, 8.0], [3.0, 2.0, 5.0, 4.0]]


def test_vitpose_refuses_a_non_coco17_model(tmp_path):
    model = tf.VitPoseForPoseEstimation(
        tf.VitPoseConfig(
            backbone_config=tf.VitPoseBackboneConfig(
                image_size=[32, 32],
                patch_size=[16, 16],
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=32,
                out_indices=[1],
            ),
            num_labels=2,
        )
    )
    path = save(tmp_path / "vp2", model, tf.VitPoseImageProcessor(size={"height": 32, "width": 32}))
    with pytest.raises(ConfigError, match="2 keypoints, not COCO's 17"):
        create_labeler(f"vitpose:{path}")


def test_vitpose_gives_coco17_pose_dicts(vitpose):
    labeler = create_labeler(f"vitpose:{vitpose}", batch_size=2)
    poses = labeler.label({"rgb": IMAGES})
    for pose, image in zip(poses, IMAGES):
        assert pose["skeleton"] == "coco17" and len(pose["humans"]) == 1  # no semseg: the whole image
        (human,) = pose["humans"]
        assert len(human["keypoints_2d"]) == 17 and human["box"] == [0.0, 0.0, image.shape[1], image.shape[0]]
        for x, y, v in human["keypoints_2d"]:
            inside = 0 <= x < image.shape[1] and 0 <= y < image.shape[0]
            assert v == 0 if not inside else v in (1, 2)
        assert from_value("pose", pose, "test")["humans"][0]["keypoints_2d"] == human["keypoints_2d"]


def test_vitpose_one_human_per_person_region_of_a_scene(vitpose):
    scenes = [generate_scene(i, seed=0, size=64) for i in range(6)]
    labeler = create_labeler(f"vitpose:{vitpose}", person_class=6)
    poses = labeler.label(
        {
            "rgb": [s["rgb"] for s in scenes],
            "semseg": [s["semseg"] for s in scenes],
            "sam_instances": [s["sam_instances"] for s in scenes],
        }
    )
    counts = [len(p["humans"]) for p in poses]
    expected = [len(person_boxes((64, 64), s["semseg"], s["sam_instances"], 6)) for s in scenes]
    assert counts == expected and sum(counts) > 0
    assert all(len(h["keypoints_2d"]) == 17 for p in poses for h in p["humans"])
