"""Reply lines of two runs made comparable: what a node generates (random ids, the times of
events recorded now) replaced by placeholders, so that the rest must be equal as text."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from tests.support.formats import CANONICAL_TIME, TIME_FORM, UUID

PLACEHOLDER = re.compile(r"<id(\d+)>")
# A minute before this module was imported: every time a node records during the test run
# is later; fixed times in sample data and requests are years earlier.
TEST_START = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime(TIME_FORM)


class Normaliser:
    """Replaces each distinct UUID by <idN> (in order of first appearance) and every
    canonical time written since the test run began by <now>."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def _id(self, match: re.Match) -> str:
        value = match.group(0)
        if value not in self.ids:
            self.ids.append(value)
        return f"<id{self.ids.index(value) + 1}>"

    def __call__(self, line: str) -> str:
        line = UUID.sub(self._id, line)
        return CANONICAL_TIME.sub(lambda m: "<now>" if m.group(0) >= TEST_START else m.group(0),
                                  line)

    def fill(self, template: str) -> str:
        """A request template with <idN> replaced by this process's N-th id."""
        return PLACEHOLDER.sub(lambda m: self.ids[int(m.group(1)) - 1], template)


def normalised(lines: list[str]) -> list[str]:
    """One run's reply lines through one Normaliser (ids numbered across the whole run)."""
    normalise = Normaliser()
    return [normalise(line) for line in lines]
