"""rgb -> captions in ``tokzoo fm eval``: class-word accuracy and F1 against the true caption, and the text-only
prior (the constant caption with the best accuracy)."""

import itertools
import math

from tokzoo.datasets.scene_text import THING_WORDS, named_things
from tokzoo.fm.caption_words import class_word_accuracy, class_word_f1, text_prior
from tokzoo.fm.evaluate import METRICS, score, training_prior

TRUTHS = ["a red box and a person.", "a person, a blue sphere and a box.", "a green cylinder."]


def test_named_things_reads_whole_words_singular_or_plural():
    assert named_things("A red Box, two people and three trees.") == {"box", "person", "tree"}
    assert named_things("boxer shorts, a spherical thing, personal cylinders") == {"cylinder"}
    assert named_things("an empty room.") == frozenset()
    assert set(THING_WORDS) == {"sphere", "box", "cylinder", "person", "building", "tree"}


def test_accuracy_and_f1_count_each_word_decision():
    words = len(THING_WORDS)
    assert class_word_accuracy(TRUTHS, TRUTHS) == 1.0 and class_word_f1(TRUTHS, TRUTHS) == 1.0
    # one word missed (person in the first), one word wrong (tree in the third): 2 of 3 x 6 decisions disagree
    guesses = ["a red box.", "a person, a blue sphere and a box.", "a green cylinder and a tree."]
    assert math.isclose(class_word_accuracy(TRUTHS, guesses), 1 - 2 / (3 * words))
    hits, predicted, true = 1 + 3 + 1, 1 + 3 + 2, 2 + 3 + 1
    assert math.isclose(class_word_f1(TRUTHS, guesses), 2 * hits / (predicted + true))
    assert class_word_f1(TRUTHS, ["an empty room."] * 3) == 0.0
    assert class_word_f1(["an empty room."], ["an empty room."]) == 1.0
    assert math.isnan(class_word_accuracy([], []))


def test_the_text_only_prior_is_the_best_constant_caption():
    training = ["a box and a person.", "a box.", "a person and a sphere.", "a box and a sphere and a person."]
    prior = text_prior(training)
    assert named_things(prior) == {"box", "person"}  # each in 3 of 4 captions; sphere in 2 of 4 is no majority
    best = max(
        class_word_accuracy(training, [" ".join(subset)] * len(training))
        for k in range(len(THING_WORDS) + 1)
        for subset in itertools.combinations(THING_WORDS, k)
    )
    assert class_word_accuracy(training, [prior] * len(training)) == best
    assert text_prior(["an empty room."] * 3) == ""


def test_fm_eval_scores_captions_with_these():
    assert METRICS["captions"] == ("class_word_accuracy", "higher")
    assert training_prior("captions", TRUTHS) == text_prior(TRUTHS)
    assert score("captions", TRUTHS, TRUTHS[::-1]) == class_word_accuracy(TRUTHS, TRUTHS[::-1])
