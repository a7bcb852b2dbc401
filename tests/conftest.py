from __future__ import annotations

import sys
from pathlib import Path

# Lets tests import their shared helpers as `helpers`.
sys.path.insert(0, str(Path(__file__).parent))
