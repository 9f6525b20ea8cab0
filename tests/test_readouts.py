"""The words on the page and in the CLI report, built from hand-made Comparisons with known timings:
the speedup's number, verdict and direction (full → pruned) in the headline, the per-model stats,
the compare-all table and the CLI report; random weights lead with the exact reduction; a suspect
speedup is flagged, never celebrated; the time to the first token says when pruning does not pay off;
the wording follows the model family."""

import re

import pytest
from apphelpers import FakeModel, made_comparison

from segprune import words

LLM, RANDOM = FakeModel(), FakeModel(random_weights=True)


def first_line(text: str) -> str:
    return text.split("\n")[0]


def test_four_times_faster_reads_as_such_everywhere():
    c = made_comparison(full_ms=40.0, pruned_ms=10.0)
    s = c.speedup(c.pruned[0])
    assert (s.verdict, round(s.ratio, 2), s.suspect) == ("faster", 4.0, False)
    head = words.headline(c, LLM)
    assert first_line(head) == "## LLM prefill 4.00× faster (×3.96 to ×4.04): 40.0 ms → 10.0 ms (full → pruned)"
    assert "Prompt 298 → 100 tokens: the language model prefills 52 of 250 audio tokens" in head
    assert (
        "**K = 52** of **N = 250**" in head
        and "the prompt tokens allow ×2.98 where the LLM prefill's linear layers dominate, up to ×8.88" in head
    )
    assert "**40.0 ms**" in words.run_stats(c, LLM) and "**10.0 ms**" in words.run_stats(c, LLM, 0)
    assert words.run_stats(c, LLM, 0).endswith("· 4.00× faster")
    row = words.table_rows(c)[1]
    assert row[5] == "10.0 ms · 4.00× faster" and words.table_rows(c)[0][5] == "40.0 ms"
    report = words.report(c, LLM)
    assert "LLM prefill 4.00× faster (×3.96 to ×4.04): 40.0 ms → 10.0 ms (full → pruned)" in report


def test_four_times_slower_reads_as_such_everywhere():
    c = made_comparison(full_ms=10.0, pruned_ms=40.0)
    head = words.headline(c, LLM)
    assert first_line(head) == "## LLM prefill 4.00× slower (×3.96 to ×4.04 slower): 10.0 ms → 40.0 ms (full → pruned)"
    assert "faster" not in head
    assert words.run_stats(c, LLM, 0).endswith("· 4.00× slower")
    assert words.table_rows(c)[1][5] == "40.0 ms · 4.00× slower"
    assert "4.00× slower" in words.report(c, LLM)


def test_random_weights_lead_with_the_exact_reduction():
    c = made_comparison(full_ms=40.0, pruned_ms=10.0, random_weights=True)
    head = words.headline(c, RANDOM)
    lines = head.split("\n")
    assert lines[0] == "## Prompt 298 → 100 tokens: the language model prefills 52 of 250 audio tokens"
    timing = next(line for line in lines if "LLM prefill 4.00× faster" in line)
    assert "40.0 ms → 10.0 ms (full → pruned)" in timing
    assert lines.index(timing) > 1  # the measured time second
    report = words.report(c, RANDOM).split("\n")
    cut = next(i for i, line in enumerate(report) if line.startswith("prompt 298 → 100 tokens"))
    assert "4.00× faster" in report[cut + 1]


def test_a_suspect_speedup_is_flagged_not_celebrated():
    c = made_comparison(full_ms=40.0, pruned_ms=2.0)  # ×20 against a token-count bound of ×2.98
    assert c.speedup(c.pruned[0]).suspect
    head = words.headline(c, LLM)
    assert first_line(head).startswith("## Prompt 298 → 100 tokens") and "faster" not in first_line(head)
    assert (
        "⚠️ LLM prefill 20.00× faster" in head
        and "suspect: above ×8.88, the square of the token-count bound ×2.98" in head
    )
    assert words.table_rows(c)[1][5].endswith("· suspect")


def test_noise_and_no_pruning():
    noisy = made_comparison(full_ms=40.0, pruned_ms=38.0, spread=0.2, scoring_ms=0.5)
    head = words.headline(noisy, LLM)
    assert first_line(head).startswith("## Prompt 298 → 100 tokens") and "LLM prefill within noise (×1.05" in head
    assert "within the prefill's timing noise" in head
    same = made_comparison(full_ms=40.0, pruned_ms=39.0, k=250)
    assert same.speedup(same.pruned[0]).verdict == "no pruning"
    head = words.headline(same, LLM)
    assert first_line(head) == "## No pruning: all 250 audio tokens kept, prompt 298 tokens either way"
    assert "faster" not in head and "scoring hook (12.0 ms) is the only difference" in head


def test_time_to_the_first_token_says_when_pruning_does_not_pay_off():
    # a short clip: encoder 900 ms + hook 50 ms dwarf a prefill saving of 30 ms
    c = made_comparison(full_ms=40.0, pruned_ms=10.0, encoder_ms=900.0, scoring_ms=50.0)
    assert c.end_to_end_ms(c.pruned[0]) > c.full_end_to_end_ms()
    head = words.headline(c, LLM)
    assert "940.0 ms full → 960.0 ms pruned" in head and "**Pruning does not pay off end to end on this clip.**" in head
    paid = made_comparison(full_ms=400.0, pruned_ms=100.0, encoder_ms=100.0, scoring_ms=5.0)
    assert "pruning saves 294.9 ms (59 %)" in words.headline(paid, LLM)


def test_whisper_is_worded_as_frames_cross_attention_and_decoder_prefill():
    whisper = FakeModel(encoder_decoder=True)
    c = made_comparison(n=1500, k=375, text_tokens=4)
    head = words.headline(c, whisper)
    assert first_line(head).startswith("## Decoder prefill 4.00× faster")
    assert "The decoder cross-attends to 375 of 1500 encoder frames: its prefill reads 1504 → 379 positions" in head
    assert "LLM" not in head and "language model" not in head
    assert "encoder frames" in words.intro(whisper) and "cross-attends" in words.intro(whisper)
    assert "audio tokens" in words.intro(LLM)


def test_random_weight_text_is_labelled_and_readable():
    c = made_comparison(random_weights=True, full_text="g\ufffds\ufffd\ufffd\x05f Z", pruned_text="")
    assert words.answer(c.full, True) == "(random weights) 5 tokens: g·s···f Z"
    assert words.answer(c.pruned[0].run, True) == "(random weights) 5 tokens: (nothing printable)"
    assert words.answer(c.full, False) == c.full.text
    rows = words.table_rows(c)
    assert rows[1][6].startswith("(random weights)") and rows[1][7].endswith("(random weights)")


def test_compare_all_columns():
    c = made_comparison()
    headers, rows = words.TABLE_HEADERS, words.table_rows(c)
    assert len(headers) == len(words.TABLE_WIDTHS) == len(rows[0]) == 8
    assert rows[0][:4] == ["Full model (no pruning)", 250, "10 of 10 s (100 %)", "—"]
    # Top-K kept the last 52 tokens (7.92 s to 10 s): three of the ten seconds
    assert rows[1][:3] == ["Top-K", 52, "3 of 10 s (30 %)"] and rows[1][3] == "—"  # no Segmentwise row to overlap
    wer = float(re.match(r"(\d+) %", rows[1][7]).group(1))
    assert wer == pytest.approx(100 * 2 / 8, abs=0.5)  # "twice" dropped and "by" added: 2 edits of 8 words


def test_slow_selection_warning():
    assert words.slow_selection_warning("divprune", 3000) is None  # 2 minutes of audio: about 0.4 s
    assert "N = 45,000 tokens" in words.slow_selection_warning("divprune", 45_000)  # 30 minutes: seconds
    assert words.slow_selection_warning("segmentwise", 45_000) is None
