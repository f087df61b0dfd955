"""What a time rule is: a pattern, and what its match means relative to ``at``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from memstream.search.timeparse.calendar import TimeRange

#: A pattern and the range a match of it means (``None``: these words are not a time).
Rule = tuple[re.Pattern[str], Callable[[re.Match[str], datetime], TimeRange | None]]
