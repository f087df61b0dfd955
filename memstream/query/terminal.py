"""``memstream chat``: a terminal client of the query service, in the spirit of
MemoryScope's CLI. Plain HTTP, so it works against any deployment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from memstream.client import sse_data

HELP = """commands:
  /help             this text
  /list [insight|expired]   your memories (observations by default)
  /add TEXT         remember TEXT (an obs_customized memory)
  /delete ID        delete one memory
  /forget           erase everything about you (asks first)
  /exit             leave
anything else is a message to the assistant"""


class TerminalChat:
    def __init__(
        self,
        client: httpx.Client,
        owner_id: str,
        user_id: str,
        *,
        speaker: str | None,
        say: Callable[[str], None],
        ask: Callable[[str], str],
        write: Callable[[str], None] | None = None,
    ) -> None:
        """``write`` (text without a line end) shows the answer as it streams; without it
        the answer is said whole when it is complete."""
        self._client = client
        self._owner = owner_id
        self._user = user_id
        self._speaker = speaker
        self._say = say
        self._ask = ask
        self._write = write
        self._users = f"/v1/users/{owner_id}/{user_id}"

    def run(self) -> None:
        self._say(f"memstream chat as {self._owner}/{self._user} — /help for commands")
        while True:
            try:
                line = self._ask("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                return
            if not line:
                continue
            if line in ("/exit", "/quit"):
                return
            try:
                self.handle(line)
            except httpx.HTTPError as exc:
                self._say(f"! cannot reach the service: {exc}")

    def handle(self, line: str) -> None:
        command, _, arg = line.partition(" ")
        arg = arg.strip()
        if command == "/help":
            self._say(HELP)
        elif command == "/list":
            params: dict[str, Any] = {"limit": 50}
            if arg == "insight":
                params["memory_type"] = "insight"
            elif arg == "expired":
                params["status"] = "expired"
            page = self._check(self._client.get(f"{self._users}/memories", params=params))
            if page is not None:
                for m in page["memories"]:
                    self._say(f"  {m['memory_id'][:12]}  [{m['message_time'][:16]}] {m['content']}")
                self._say(f"  ({page['total']} in all)")
        elif command == "/add" and arg:
            body = self._check(self._client.post(f"{self._users}/memories", json={"content": arg}))
            if body is not None:
                self._say(f"  added {body['memory_id'][:12]} (written in a moment)")
        elif command == "/delete" and arg:
            memory_id = self._resolve(arg)
            if memory_id is not None and self._check(
                self._client.delete(f"{self._users}/memories/{memory_id}")
            ):
                self._say(f"  deleting {memory_id[:12]}")
        elif command == "/forget":
            if self._ask("erase everything about you? type 'yes': ").strip().lower() == "yes":
                if self._check(self._client.post(f"{self._users}/forget")):
                    self._say("  forgotten")
            else:
                self._say("  kept")
        elif command.startswith("/"):
            self._say(f"  unknown or incomplete command {command!r}; /help lists them")
        else:
            self._chat(line)

    def _chat(self, line: str) -> None:
        """The answer streamed (server-sent events), shown as it comes."""
        body = {
            "owner_id": self._owner,
            "user_id": self._user,
            "message": line,
            "speaker": self._speaker,
            "stream": True,
        }
        parts: list[str] = []
        with self._client.stream("POST", "/v1/chat", json=body) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
                return
            if self._write is not None:
                self._write("assistant> ")
            for data in sse_data(response.iter_lines()):
                if "error" in data:
                    if self._write is not None and parts:
                        self._write("\n")
                    self._say(f"! {data['error'].get('message', data['error'])}")
                    return
                delta = data["choices"][0]["delta"].get("content") if data.get("choices") else None
                if delta:
                    parts.append(delta)
                    if self._write is not None:
                        self._write(delta)
        if self._write is not None:
            self._write("\n")
        else:
            self._say(f"assistant> {''.join(parts)}")

    def _resolve(self, prefix: str) -> str | None:
        """A memory id, or a unique prefix of one as /list shows them."""
        page = self._check(
            self._client.get(
                f"{self._users}/memories",
                params={"limit": 1000, "status": ["valid", "expired"]},
            )
        )
        if page is None:
            return None
        ids = [str(m["memory_id"]) for m in page["memories"] if m["memory_id"].startswith(prefix)]
        if len(ids) != 1:
            self._say(f"  {'no' if not ids else 'more than one'} memory matches {prefix!r}")
            return None
        return ids[0]

    def _check(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                error = response.json().get("error", response.text)
            except ValueError:
                error = response.text
            self._say(f"! {response.status_code}: {error}")
            return None
        return response.json()
