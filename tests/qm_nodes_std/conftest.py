"""Test helpers of the node pack (``std_support``) are importable from its tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
