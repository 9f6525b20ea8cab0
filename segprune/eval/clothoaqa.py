"""ClothoAQA audio question answering (Lipping et al., EUSIPCO 2022): exact match of one word.

Setting of lmms-eval's `clotho_aqa_test` task (EvolvingLMMs-Lab/lmms-eval, tasks/clotho_aqa):
the `clotho_aqa` config of lmms-lab/ClothoAQA, split `clotho_aqa_test_filtered`, the question
followed by "Answer the question using a single word only.", greedy, 8 new tokens, exact match
with case and punctuation ignored.
"""

from .task import QATask

TASK = QATask(
    name="clothoaqa",
    title="ClothoAQA",
    hub_id="lmms-lab/ClothoAQA",
    hub_config="clotho_aqa",
    hub_split="clotho_aqa_test_filtered",
    split_note="ClothoAQA test split as filtered by lmms-eval (clotho_aqa_test_filtered)",
    prompts={"default": "{question}\nAnswer the question using a single word only."},
    prompt_source="lmms-eval clotho_aqa_test (post_prompt)",
    max_new_tokens=8,
)
