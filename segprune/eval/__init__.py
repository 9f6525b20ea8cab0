"""`segprune eval`: reproduce the paper's tables (Clotho v2, AudioCaps, ClothoAQA, MMAU) for every
method in the registry and every keep ratio. Kept apart from the library core: `import segprune`
never imports this package, and its extra dependencies (`pip install 'segprune[eval]'`) are
imported only when needed.

    segprune eval --model audio-flamingo-3 --task clotho --keep 0.5 0.25 0.1 --out runs/af3-clotho
"""

from . import asr, audiocaps, clotho, clothoaqa, mmau
from .task import Task

TASKS: dict[str, Task] = {m.TASK.name: m.TASK for m in (clotho, audiocaps, clothoaqa, mmau, asr)}

__all__ = ["TASKS", "Task"]
