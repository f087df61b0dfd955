"""The fault suite's ledger: each fault test records what it did and what survived, and the
test run ends with one line per fault (``pytest_terminal_summary`` in ``conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaultOutcome:
    fault: str
    cases: int
    """Inputs or requests the fault was applied to."""
    lost: int = 0
    """Valid inputs that became neither a memory nor a dead letter with a reason."""
    duplicated: int = 0
    """Inputs remembered more than once."""
    leaked: int = 0
    """Things that must be gone and were found (erased text, another tenant's data)."""
    server_errors: int = 0
    """5xx answers to valid requests."""

    def line(self) -> str:
        return (
            f"fault {self.fault}: cases={self.cases} lost={self.lost} "
            f"duplicated={self.duplicated} leaked={self.leaked} 5xx={self.server_errors}"
        )


OUTCOMES: list[FaultOutcome] = []


def record(outcome: FaultOutcome) -> FaultOutcome:
    """Keep ``outcome`` for the summary; the test asserts on it too."""
    OUTCOMES.append(outcome)
    return outcome
