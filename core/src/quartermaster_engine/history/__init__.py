"""A flow's past and what can be done with it: its history, one checkpoint per
commit (`read_history`), edits and retries (`edits`), forks (`fork`), moves to a new graph
version (`migrate`).

See docs/history.md."""

from quartermaster_engine.history import edits, fork, migrate
from quartermaster_engine.history.checkpoints import EDITED, Checkpoint, checkpoints
from quartermaster_engine.history.edits import Edit
from quartermaster_engine.history.fork import ForkEdits
from quartermaster_engine.history.migrate import MigrationReport
from quartermaster_engine.history.read import read_history
from quartermaster_engine.history.replay import ReplayError

__all__ = [
    "EDITED",
    "Checkpoint",
    "Edit",
    "ForkEdits",
    "MigrationReport",
    "ReplayError",
    "checkpoints",
    "edits",
    "fork",
    "migrate",
    "read_history",
]
