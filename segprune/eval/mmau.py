"""MMAU (Sakshi et al., ICLR 2025): multiple-choice audio understanding and reasoning, accuracy.

The paper's numbers are on test-mini (1,000 questions with public answers over sound, music and
speech; the 9,000 test answers are withheld). Scored with MMAU's official string-matching rule
(github.com/Sakshi113/MMAU, evaluation.py) after a bare option letter is mapped to its option,
and, when `sentence-transformers` and its model are at hand, also with the paper's Sentence-BERT
option matching (`accuracy_sbert`). Prompt: the multiple-choice form of Audio Flamingo 3's model
card ("... Choose the correct option among the options below: (A) ... (B) ..."), used for both
families.
"""

from .task import QATask

TASK = QATask(
    name="mmau",
    title="MMAU",
    hub_id="gamma-lab-umd/MMAU-test-mini",
    hub_config=None,
    hub_split="test",
    split_note="MMAU test-mini (1,000 questions with answers)",
    prompts={"default": "Instruction: {question} Choose the correct option among the options below: {options}."},
    prompt_source="Audio Flamingo 3 model card, multiple-choice example",
    max_new_tokens=64,
    multiple_choice=True,
)
