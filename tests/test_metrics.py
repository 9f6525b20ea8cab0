"""Evaluation metrics against their references: aac-metrics' CIDEr-D, MMAU's rule, exact match."""

import pytest
import torch

from segprune.eval import metrics
from segprune.eval.metrics import (
    caption_scores,
    caption_tokens,
    exact_match,
    java_status,
    mmau_correct,
    mmau_string_match,
    normalize_answer,
    sbert_choice,
)

CANDIDATES = ["A dog is barking, loudly!", "Rain falls on the ROOF.", "a man speaks"]
REFERENCES = [
    ["A dog barks.", "Dogs are barking in a yard", "a dog barking loudly"],
    ["Heavy rain falls on a tin roof", "Rain on a roof."],
    ["Birds chirp in the trees", "a woman sings softly"],
]
# The same captions lower-cased without punctuation, written out by hand (not by our code).
CANDIDATES_PLAIN = ["a dog is barking loudly", "rain falls on the roof", "a man speaks"]
REFERENCES_PLAIN = [
    ["a dog barks", "dogs are barking in a yard", "a dog barking loudly"],
    ["heavy rain falls on a tin roof", "rain on a roof"],
    ["birds chirp in the trees", "a woman sings softly"],
]


def no_java(monkeypatch):
    """The metrics as on a machine without Java 8-13, whatever this one has."""
    reason = "needs Java 8-13 (the test hides it)"
    monkeypatch.setattr(metrics, "java_status", lambda: reason)
    return reason


def java_or_skip():
    """Skip, saying why, where aac-metrics' Java tools cannot run here."""
    reason = java_status()
    assert reason is None or "Java 8-13" in reason  # one phrase for a person, not an exception
    if reason is not None:
        pytest.skip(f"the Java-based tools (PTB tokeniser, METEOR, SPICE) cannot run here: {reason}")


def check_cider_d(expected_in, how):
    from aac_metrics.functional import cider_d

    corpus, sentences = cider_d(*expected_in)
    scores = caption_scores(CANDIDATES, REFERENCES)
    assert scores.values["cider_d"] == pytest.approx(float(corpus["cider_d"]), abs=1e-12)
    assert scores.notes == [f"captions preprocessed: {how}"]
    per_sentence = sentences["cider_d"]
    assert per_sentence[0] > per_sentence[2] and per_sentence[1] > per_sentence[2]  # the unrelated caption is worst
    assert float(corpus["cider_d"]) == pytest.approx(float(torch.mean(per_sentence)))


def test_cider_d_without_java_equals_aac_metrics_called_directly(monkeypatch):
    no_java(monkeypatch)
    assert caption_tokens(CANDIDATES, REFERENCES) == (CANDIDATES_PLAIN, REFERENCES_PLAIN, "lower-nopunct")
    check_cider_d((CANDIDATES_PLAIN, REFERENCES_PLAIN), "lower-nopunct")


def test_cider_d_with_java_equals_aac_metrics_called_directly():
    java_or_skip()
    from aac_metrics.utils.tokenization import preprocess_mono_sents, preprocess_mult_sents

    cands, refs, how = caption_tokens(CANDIDATES, REFERENCES)
    if how != "ptb":
        pytest.skip("Java 8-13 is here but aac-metrics' PTB tokeniser did not run: `aac-metrics-download` first")
    expected_in = preprocess_mono_sents(CANDIDATES), preprocess_mult_sents(REFERENCES)
    assert (cands, refs) == expected_in
    check_cider_d(expected_in, "ptb")


JAVA_METRICS = {"spider", "meteor", "spice"}


def test_caption_metrics_that_need_java_are_skipped_with_the_reason(monkeypatch):
    reason = no_java(monkeypatch)
    scores = caption_scores(CANDIDATES, REFERENCES, wanted=("cider_d", *JAVA_METRICS))
    assert set(scores.values) == {"cider_d"} and scores.skipped == dict.fromkeys(JAVA_METRICS, reason)
    with pytest.raises(ValueError, match="reference"):
        caption_scores(["a caption"], [[]])
    one = caption_scores(["a caption"], [["a reference"]], wanted=("cider_d",))
    assert one.values == {} and one.skipped == {"cider_d": "needs at least 2 items"}  # a corpus metric


def test_caption_metrics_that_need_java_run_where_it_is():
    java_or_skip()
    scores = caption_scores(CANDIDATES, REFERENCES, wanted=("cider_d", *JAVA_METRICS))
    assert set(scores.values) | set(scores.skipped) == {"cider_d", *JAVA_METRICS}
    assert not any("Java 8-13" in why for why in scores.skipped.values())  # never skipped for want of Java


CHOICES = ["Man", "Woman", "Child", "Robot"]


@pytest.mark.parametrize(
    "prediction,answer,choices,right",
    [
        ("The answer is a man.", "Man", CHOICES, True),  # right
        ("Woman", "Man", CHOICES, False),  # wrong
        ("A man or a woman", "Man", CHOICES, False),  # the answer plus a distractor's word
        ("", "Man", CHOICES, False),
        ("(A) A child", "A child", ["A child", "A woman", "An adult man", "A teenager"], True),  # shared words allowed
        ("An adult", "An adult man", ["A child", "A woman", "An adult man", "A teenager"], False),  # answer incomplete
    ],
)
def test_mmau_official_rule(prediction, answer, choices, right):
    assert mmau_string_match(answer, prediction, choices) is right
    assert mmau_correct(prediction, answer, choices) is right


@pytest.mark.parametrize(
    "prediction,right",
    [("B", True), ("(B)", True), ("b.", True), (" (b) ", True), ("C", False), ("(A)", False), ("E", False)],
)
def test_mmau_letter_only_answers_name_their_option(prediction, right):
    assert mmau_correct(prediction, "Woman", CHOICES) is right
    assert mmau_string_match("Woman", prediction, CHOICES) is False  # the official rule alone never accepts a letter


@pytest.mark.parametrize(
    "prediction,answer,same",
    [
        ("Yes.", "yes", True),
        ("  DOG! ", "dog", True),
        ("two  dogs", "Two dogs.", True),
        ("dogs", "dog", False),
        ("yes, it is", "yes", False),
        ("", "yes", False),
    ],
)
def test_exact_match_ignores_case_punctuation_and_spacing_only(prediction, answer, same):
    assert exact_match(prediction, answer) is same


def test_normalize_answer():
    assert normalize_answer(" It's RAIN-fall! ") == "it s rain fall"


EMBEDDINGS = {"a barking dog": [1, 0], "dog": [0.9, 0.1], "cat": [0.1, 0.9], "purring": [0, 1]}


class StubEncoder:
    """Sentence embeddings from a fixed table (unit vectors), like SentenceTransformer.encode."""

    def encode(self, texts, convert_to_tensor, normalize_embeddings):
        e = torch.tensor([EMBEDDINGS[t] for t in texts], dtype=torch.float32)
        return torch.nn.functional.normalize(e, dim=-1)


def test_sbert_choice_picks_the_most_similar_option(monkeypatch):
    monkeypatch.setattr(metrics, "_sentence_model", lambda name: StubEncoder())
    assert sbert_choice(["a barking dog", "purring"], [["cat", "dog"], ["dog", "cat"]]) == [1, 1]


def test_an_unavailable_optional_metric_is_tried_once(monkeypatch):
    monkeypatch.setattr(metrics, "_UNAVAILABLE", {})
    calls = []

    def download():
        calls.append(1)
        raise OSError("We couldn't connect to the hub\nmore")

    assert metrics.optional("fense", download) == (None, "OSError: We couldn't connect to the hub")
    assert metrics.optional("fense", download) == (None, "OSError: We couldn't connect to the hub")
    assert len(calls) == 1 and metrics.optional("other", lambda: 2.5) == (2.5, None)
