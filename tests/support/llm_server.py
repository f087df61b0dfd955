"""The project's OpenAI-compatible test server: scripted replies per prompt kind, on loopback.

Counts calls and tokens per kind, and injects faults (429, 500, timeouts, malformed JSON) on
demand. The default replies are rule-based stand-ins for a model, good enough to drive the
real pipeline: every substantive user message becomes a fact, fiction scores 1, relative
times ("two months ago") are resolved, equal texts are duplicates, a new employer
contradicts the old one, food observations make a diet insight.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict[str, Any]], dict[str, Any]]

KINDS = {
    "memstream_consolidation": "consolidate",
    "memstream_reconciliation": "reconcile",
    "memstream_reflection": "reflect",
}


@dataclass
class Faults:
    """Each request fails with probability ``rate``, the kind drawn from ``kinds``."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "500", "timeout", "malformed")
    #: Every kind the server can serve: also an HTML error page with status 200 (a proxy's),
    #: and a connection reset before any answer.
    ALL = ("429", "500", "timeout", "malformed", "html", "reset")
    timeout_sleep: float = 3.0
    seed: int = 1
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        if self._rng.random() < self.rate:
            return self._rng.choice(self.kinds)
        return None


class ScriptedLLM:
    def __init__(self, port: int = 0) -> None:
        self.calls: Counter[str] = Counter()
        self.prompt_tokens: Counter[str] = Counter()
        self.completion_tokens: Counter[str] = Counter()
        self.faults_served: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.responders: dict[str, Responder] = {
            "consolidate": rule_consolidation,
            "reconcile": rule_reconciliation,
            "reflect": rule_reflection,
        }
        self.faults = Faults()
        #: Streamed answers stop after their first chunk (the connection dropped).
        self.cut_streams = False
        #: The chat answer (kind "chat").
        self.chat_answer = "I remember."
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.prompt_tokens.clear()
            self.completion_tokens.clear()
            self.faults_served.clear()
            self.requests.clear()
        self.faults = Faults()
        self.cut_streams = False
        self.chat_answer = "I remember."

    def settings_env(self) -> dict[str, str]:
        """Worker settings that point the OpenAI backend here (short timeouts, fast retries)."""
        return {
            "MEMSTREAM_LLM__BACKEND": "openai",
            "MEMSTREAM_LLM__MODEL": "scripted",
            "MEMSTREAM_LLM__BASE_URL": self.base_url,
            "MEMSTREAM_LLM__API_KEY": "test",
            "MEMSTREAM_LLM__TIMEOUT_SECONDS": "1.5",
            "MEMSTREAM_LLM__BACKOFF_SECONDS": "0.05",
        }

    # -- HTTP ------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.endswith("/embeddings"):
                    self._send(200, embeddings_reply(body))
                    return
                if self.path.endswith("/text-generation/generation"):
                    self._send(*dashscope_reply(llm, body))
                    return
                status, reply = llm.complete(body)
                if body.get("stream") and status == 200 and "choices" in reply:
                    self._stream(reply, cut=llm.cut_streams)
                    return
                if reply.get("fault") == "reset":
                    self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all
                    self.close_connection = True
                    return
                if reply.get("fault") == "html":
                    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                    self.send_response(200)
                    self.send_header("content-type", "text/html")
                    self.send_header("content-length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                self._send(status, reply)

            def _stream(self, reply: dict[str, Any], *, cut: bool) -> None:
                """The reply as OpenAI-style SSE chunks, a word at a time; ``cut`` drops the
                connection after the first chunk (a model server dying mid-answer)."""
                text = reply["choices"][0]["message"]["content"] or ""
                words = re.findall(r"\S+\s*", text) or [""]
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                base = {k: reply[k] for k in ("id", "created", "model")}
                for i, word in enumerate(words):
                    delta = {"content": word, **({"role": "assistant"} if i == 0 else {})}
                    chunk = {**base, "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": delta, "finish_reason": None}
                    ]}  # fmt: skip
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    if cut:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                end = {**base, "object": "chat.completion.chunk", "usage": reply["usage"],
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())

            def _send(self, status: int, reply: dict[str, Any]) -> None:
                data = json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        return Handler

    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fmt = body.get("response_format") or {}
        name = (fmt.get("json_schema") or {}).get("name", "")
        messages = body.get("messages", [])
        kind = KINDS.get(name) or kind_of(payload_of(messages))
        prompt_tokens = sum(len(_text(m.get("content"))) for m in messages) // 4 + 1
        with self._lock:
            self.requests.append(body)
            fault = self.faults.draw()
            if fault:
                self.faults_served[fault] += 1
        if fault == "429":
            return 429, {"error": {"message": "rate limited", "type": "rate_limit"}}
        if fault == "500":
            return 500, {"error": {"message": "server exploded", "type": "server_error"}}
        if fault in ("html", "reset"):
            return 200, {"fault": fault}
        if fault == "timeout":
            time.sleep(self.faults.timeout_sleep)
        if fault is None and body.get("tools"):
            return 200, agent_reply(body)
        if fault == "malformed":
            text = '{"facts": [ this is not json'
        elif kind == "chat":
            text = self.chat_answer
        else:
            text = json.dumps(self.responders[kind](payload_of(messages)), ensure_ascii=False)
        completion_tokens = len(text) // 4 + 1
        with self._lock:
            self.calls[kind] += 1
            self.prompt_tokens[kind] += prompt_tokens
            self.completion_tokens[kind] += completion_tokens
        return 200, {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def agent_reply(body: dict[str, Any]) -> dict[str, Any]:
    """A rule-based tool-using agent: asked with tools, it first calls the ``recall`` tool
    (or the first tool) with the user's last message; given the tool's answer, it replies
    "From memory: <answer>". Enough to drive an agent framework's real tool loop."""
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "From memory: " + _text(last.get("content")),
        }
        finish = "stop"
    else:
        names = [t.get("function", {}).get("name") for t in body["tools"]]
        name = "recall" if "recall" in names else names[0]
        query = next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        call = {
            "id": f"call-{hashlib.sha1(query.encode()).hexdigest()[:8]}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"query": query})},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    return {
        "id": "chatcmpl-agent",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def kind_of(payload: dict[str, Any]) -> str:
    """Without a schema name (JSON mode), the input tells the step apart."""
    if "observations" in payload:
        return "reflect"
    if "facts" in payload:
        return "reconcile"
    if "messages" in payload:
        return "consolidate"
    return "chat"


def dashscope_reply(llm: ScriptedLLM, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """DashScope's text-generation protocol around the same scripted answers."""
    params = body.get("parameters", {})
    status, reply = llm.complete(
        {
            "model": body.get("model"),
            "messages": body.get("input", {}).get("messages", []),
            "response_format": params.get("response_format"),
        }
    )
    if status != 200:
        return status, {
            "code": "Throttling" if status == 429 else "InternalError",
            "message": reply["error"]["message"],
            "request_id": "r",
        }
    choice = reply["choices"][0]
    return 200, {
        "request_id": "r",
        "output": {"choices": [{"finish_reason": "stop", "message": choice["message"]}]},
        "usage": {
            "input_tokens": reply["usage"]["prompt_tokens"],
            "output_tokens": reply["usage"]["completion_tokens"],
        },
    }


def payload_of(messages: list[dict[str, str]]) -> dict[str, Any]:
    """The JSON after ``INPUT:`` in the last user message."""
    user = [m["content"] for m in messages if m.get("role") == "user"]
    if not user or "INPUT:" not in user[-1]:
        return {}
    value: dict[str, Any] = json.loads(user[-1].rsplit("INPUT:", 1)[1])
    return value


def embeddings_reply(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input", [])
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    dims = int(body.get("dimensions") or 32)
    data = []
    for i, text in enumerate(texts):
        digest = hashlib.sha256(str(text).encode()).digest()
        rng = random.Random(digest)
        data.append(
            {
                "object": "embedding",
                "index": i,
                "embedding": [rng.uniform(-1, 1) for _ in range(dims)],
            }
        )
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "scripted"),
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }


# -- rule-based stand-ins for the model ------------------------------------------------------

FICTION = re.compile(
    r"\b(write|tell) (me )?(a|an) (story|screenplay|poem|script)|\bpretend\b|\bimagine\b"
    r"|\brole-?play\b|写一个故事|写个故事|假装|假如我是",
    re.IGNORECASE,
)
SMALL_TALK = re.compile(
    r"^\W*(hi|hello|hey|ok|okay|thanks?|thank you|bye|你好|好的|谢谢)\W*$", re.I
)
NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
    "一": 1,
    "两": 2,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
}
AGO = re.compile(
    r"\b(\w+|\d+) (day|week|month|year)s? ago\b|([一两二三四五六\d])(天|周|个月|年)前",
    re.IGNORECASE,
)
EMPLOYER = re.compile(
    r"\b(?:work(?:ing)? (?:at|for)|joined|job at)\s+([A-Z][\w-]+)|在(\w{2,8}?)工作|加入了?(\w{2,8})"
)
FOOD = re.compile(
    r"\b(eat|ate|food|cook|spicy|vegetarian|vegan|noodles?|rice|salad|sushi|pizza|coffee|tea|"
    r"breakfast|lunch|dinner|meat|tofu|dumplings?)\b|吃|菜|饭|面|辣|素",
    re.IGNORECASE,
)


def _employer(text: str) -> str | None:
    match = EMPLOYER.search(text)
    if not match:
        return None
    return next(g for g in match.groups() if g)


def _message_date(time_text: str) -> date:
    return datetime.strptime(time_text[:10], "%Y-%m-%d").date()


def _event(text: str, sent: date) -> dict[str, Any]:
    unknown = {"year": -1, "month": -1, "day": -1, "recurring": False}
    match = AGO.search(text)
    if not match:
        return unknown
    word = (match.group(1) or match.group(3) or "").lower()
    unit = (match.group(2) or match.group(4) or "").lower()
    n = int(word) if word.isdigit() else NUMBERS.get(word)
    if n is None:
        return unknown
    if unit in ("day", "天"):
        when = sent - timedelta(days=n)
        return {"year": when.year, "month": when.month, "day": when.day, "recurring": False}
    if unit in ("week", "周"):
        when = sent - timedelta(weeks=n)
        return {"year": when.year, "month": when.month, "day": when.day, "recurring": False}
    if unit in ("month", "个月"):
        months = sent.year * 12 + sent.month - 1 - n
        return {"year": months // 12, "month": months % 12 + 1, "day": -1, "recurring": False}
    return {"year": sent.year - n, "month": -1, "day": -1, "recurring": False}


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def rule_consolidation(payload: dict[str, Any]) -> dict[str, Any]:
    scores, facts = [], []
    existing = payload.get("existing_memories", [])
    for m in payload.get("messages", []):
        if m["role"] != "user":
            continue
        text = m["text"].strip()
        if FICTION.search(text):
            score = 1
        elif SMALL_TALK.match(text) or len(text) < 3:
            score = 0
        else:
            score = 3
        scores.append({"id": m["id"], "score": score})
        if score < 2:
            continue
        relation, target = relation_to(text, existing)
        words = sorted(set(re.findall(r"\w{4,}", text)), key=len, reverse=True)[:3]
        facts.append(
            {
                "sources": [m["id"]],
                "content": text,
                "keywords": words,
                "event": _event(text, _message_date(m["time"])),
                "topic": "work" if _employer(text) else "other",
                "relation": relation,
                "existing": target,
            }
        )
    return {"scores": scores, "facts": facts}


def relation_to(text: str, existing: list[dict[str, Any]]) -> tuple[str, int]:
    relation, target = "new", 0
    for e in existing:
        if _norm(e["text"]) == _norm(text):
            return "duplicate", e["id"]
        new_job, old_job = _employer(text), _employer(e["text"])
        if new_job and old_job and new_job != old_job:
            relation, target = "contradicts", e["id"]
    return relation, target


def rule_reconciliation(payload: dict[str, Any]) -> dict[str, Any]:
    existing = payload.get("existing_memories", [])
    decisions = []
    for fact in payload.get("facts", []):
        relation, target = relation_to(fact["text"], existing)
        decisions.append({"fact": fact["id"], "relation": relation, "existing": target})
    return {"decisions": decisions}


def rule_reflection(payload: dict[str, Any]) -> dict[str, Any]:
    observations = payload.get("observations", [])
    chinese = any("\u4e00" <= ch <= "\u9fff" for o in observations for ch in o["text"])
    food = [o for o in observations if FOOD.search(o["text"])]
    insights = []
    if food:
        insights.append(
            {
                "key": "饮食" if chinese else "diet",
                "value": "; ".join(o["text"].rstrip(".") for o in food[:3]),
                "evidence": [o["id"] for o in food],
            }
        )
    elif observations:
        insights.append(
            {
                "key": "近况" if chinese else "recent life",
                "value": observations[-1]["text"][:120],
                "evidence": [observations[-1]["id"]],
            }
        )
    by_id = {o["id"]: o for o in observations}
    expire = []
    for pair in payload.get("conflicts", []):
        older, newer = by_id[pair["older"]]["text"], by_id[pair["newer"]]["text"]
        a, b = _employer(older), _employer(newer)
        if a and b and a != b:
            expire.append(pair["older"])
    return {"insights": insights, "expire": expire}


def main() -> None:
    """Run the scripted server on its own: ``python -m tests.llm_server --port 8399``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8399)
    args = parser.parse_args()
    server = ScriptedLLM(port=args.port).start()
    print(f"scripted OpenAI-compatible server on {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(10)
            print(json.dumps({"calls": dict(server.calls)}), flush=True)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
