"""Clotho v2 audio captioning (Drossos et al., ICASSP 2020): CIDEr-D against five human captions.

The paper's numbers are on the Clotho v2.1 evaluation split (1,045 clips of 15-30 s, five
captions each), the split that DCASE reports. Prompts: Audio Flamingo 3's short-captioning
prompt from its model card's prompt guide; for Qwen2-Audio, the captioning instruction of its
README ("Generate the caption in English:").
"""

from .task import CaptionTask

CAPTION_PROMPTS = {
    "audio-flamingo-3": "Generate a caption for the input audio.",
    "qwen2-audio": "Generate the caption in English:",
    "default": "Generate a caption for the input audio.",
}
CAPTION_PROMPT_SOURCE = (
    "Audio Flamingo 3: model card prompt guide (short audio captioning); "
    "Qwen2-Audio: README (github.com/QwenLM/Qwen2-Audio), captioning example"
)

TASK = CaptionTask(
    name="clotho",
    title="Clotho v2",
    hub_id="CLAPv2/Clotho",
    hub_config=None,
    hub_split="test",
    split_note="Clotho v2.1 evaluation split (1,045 clips x 5 captions); on the hub mirror its 'test' split",
    prompts=CAPTION_PROMPTS,
    prompt_source=CAPTION_PROMPT_SOURCE,
    max_new_tokens=64,
)
