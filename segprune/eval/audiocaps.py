"""AudioCaps audio captioning (Kim et al., NAACL 2019): CIDEr-D against the human captions.

The paper's numbers are on the AudioCaps test split (about 975 10-s YouTube clips, five captions
each; some clips are no longer on YouTube, so copies differ slightly in size). Prompts:
`task.CAPTION_PROMPTS`, as for Clotho.
"""

from .task import CaptionTask

TASK = CaptionTask(
    name="audiocaps",
    title="AudioCaps",
    hub_id="OpenSound/AudioCaps",
    hub_config=None,
    hub_split="test",
    split_note="AudioCaps test split (~975 clips x 5 captions; rows of one clip are merged)",
)
