"""The helpers of these tests are importable as ``thread_support``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
