"""A flow's past and what can be done with it: its history, one checkpoint per
commit (`read_history`), and edits of a paused flow (`edit`).

See docs/history.md."""

from quartermaster_engine.history.checkpoints import EDITED, Checkpoint, checkpoints
from quartermaster_engine.history.read import read_history

__all__ = ["EDITED", "Checkpoint", "checkpoints", "read_history"]
