"""Which existing memories a consolidation prompt shows beside a window. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from memstream.schemas import MemoryNode


class Candidates:
    """Existing memories a window's prompt may show, each once at its best score; never a
    memory of the window's own messages (a re-delivered job sends the same prompt), nor one
    in ``skip`` (already shown or considered)."""

    def __init__(self, *, own: set[str], skip: set[str] | None = None) -> None:
        self._own = own
        self._skip = skip or set()
        self._best: dict[str, tuple[float, MemoryNode]] = {}

    def admits(self, node: MemoryNode) -> bool:
        return (
            node.memory_id not in self._skip
            and node.memory_id not in self._best
            and not self._own & set(node.source_message_ids)
        )

    def consider(self, score: float, node: MemoryNode) -> None:
        held = self._best.get(node.memory_id)
        if held is not None:
            if held[0] < score:
                self._best[node.memory_id] = (score, node)
        elif self.admits(node):
            self._best[node.memory_id] = (score, node)

    def ranked(self) -> list[MemoryNode]:
        """Most similar first (ties by id, so the prompt is the same on a replay)."""
        ordered = sorted(self._best.values(), key=lambda sn: (-sn[0], sn[1].memory_id))
        return [n for _, n in ordered]

    def __bool__(self) -> bool:
        return bool(self._best)


def oldest_first(nodes: Sequence[MemoryNode]) -> list[MemoryNode]:
    """The order memories read naturally in a prompt."""
    return sorted(nodes, key=lambda n: (n.valid_from, n.memory_id))
