"""Clotho v2 audio captioning (Drossos et al., ICASSP 2020): CIDEr-D against five human captions.

The paper's numbers are on the Clotho v2.1 evaluation split (1,045 clips of 15-30 s, five
captions each), the split that DCASE reports. Prompts: `task.CAPTION_PROMPTS`.
"""

from .task import CaptionTask

TASK = CaptionTask(
    name="clotho",
    title="Clotho v2",
    hub_id="CLAPv2/Clotho",
    hub_config=None,
    hub_split="test",
    split_note="Clotho v2.1 evaluation split (1,045 clips x 5 captions); on the hub mirror its 'test' split",
)
