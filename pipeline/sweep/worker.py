"""``python -m pipeline.sweep.worker SETTINGS_JSON``: one sweep worker in its own process (``sweep --workers N``)."""
from __future__ import annotations

import json
import sys

from ..user_errors import report
from .engine import work

if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    sys.exit(report(lambda: work(**settings)))
