"""The ``memstream`` command line.

Every command is a short function that parses its options and calls into the package;
they stay in one file so ``memstream --help`` and the code read in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from memstream import __version__ as memstream_version
from memstream.config import Settings, settings_warnings, validation_message
from memstream.search.hybrid import RetrievalMode


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    config: Path | None = obj.get("config")
    bootstrap = obj.get("bootstrap_servers")
    if bootstrap:
        kafka = overrides.get("kafka") or {}
        overrides["kafka"] = {**kafka, "bootstrap_servers": bootstrap}
    try:
        settings = Settings.load(config, **{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings: {validation_message(exc)}") from exc
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    if not obj.get("warned"):  # once per command, however often it loads settings
        obj["warned"] = True
        for warning in settings_warnings(os.environ, settings):
            click.echo(f"warning: {warning}", err=True)
    return settings


def _bootstrap_option(f: Any) -> Any:
    """``--bootstrap-servers`` on every command that talks to a broker."""

    def remember(ctx: click.Context, _: Any, value: str | None) -> str | None:
        root = ctx.find_root()
        if value:
            root.obj = {**(root.obj or {}), "bootstrap_servers": value}
        return value

    return click.option(
        "--bootstrap-servers",
        default=None,
        expose_value=False,
        callback=remember,
        help="Kafka brokers, host:port[,host:port] (default: settings kafka.bootstrap_servers).",
    )(f)


def _broker_errors(run: Any, settings: Settings) -> Any:
    """Run a coroutine; a broker that cannot be reached is one line with the fix."""
    import logging

    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    # aiokafka logs each failed connection attempt itself; the one line below says it all.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(run)
    except (KafkaConnectionError, KafkaTimeoutError, OSError) as exc:
        raise click.ClickException(
            f"cannot reach the Kafka broker at {settings.kafka.bootstrap_servers} ({exc}). "
            "Is it running? `memstream up` starts one; --bootstrap-servers or "
            "MEMSTREAM_KAFKA__BOOTSTRAP_SERVERS points elsewhere."
        ) from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(memstream_version, "--version", "-V", prog_name="memstream")
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="MEMSTREAM_CONFIG",
    help="TOML settings file (environment variables MEMSTREAM_* override it).",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """memstream: long-term memory for LLM chatbots, as a stream processor."""
    ctx.obj = {**(ctx.obj or {}), "config": config}


@main.command()
@click.option("--write", is_flag=True, help="Rewrite the committed file.")
@click.option(
    "--asyncapi", is_flag=True, help="The AsyncAPI 3.0 document of all four topics instead."
)
def schema(write: bool, asyncapi: bool) -> None:
    """Print the ChatMessage JSON Schema (the producers' contract), or with --asyncapi the
    AsyncAPI document of every topic (keys, headers, payloads)."""
    from memstream.schemas.messages import JSON_SCHEMA_PATH, chat_message_json_schema

    if asyncapi:
        from memstream.streams.asyncapi import ASYNCAPI_PATH, asyncapi_document

        path, document = ASYNCAPI_PATH, asyncapi_document()
    else:
        path, document = JSON_SCHEMA_PATH, chat_message_json_schema()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if write:
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
    else:
        click.echo(text, nl=False)


@main.group()
def topics() -> None:
    """Manage memstream's Kafka topics."""


@topics.command("create")
@_bootstrap_option
@click.pass_context
def topics_create(ctx: click.Context) -> None:
    """Create missing topics with memstream's partitions and retention (idempotent)."""
    from memstream.streams.topics import create_topics, topic_specs

    s = _settings(ctx)
    created = _broker_errors(create_topics(s.kafka), s)
    for spec in topic_specs(s.kafka):
        state = "created" if spec.name in created else "exists"
        click.echo(f"{spec.name:24} {state:8} partitions={spec.partitions} {spec.config}")


@main.command("chat")
@click.option("--url", default=None, help="Query service URL (default: from settings).")
@click.option("--owner", "owner_id", required=True)
@click.option("--user", "user_id", required=True)
@click.option("--speaker", default=None, help="Your display name in memories.")
@click.option("--api-key", envvar="MEMSTREAM_API_KEY", default=None, help="Or MEMSTREAM_API_KEY.")
@click.pass_context
def chat_cmd(
    ctx: click.Context,
    url: str | None,
    owner_id: str,
    user_id: str,
    speaker: str | None,
    api_key: str | None,
) -> None:
    """Chat with memory in the terminal (/help, /list, /add, /delete, /forget, /exit)."""
    import httpx

    from memstream.query.terminal import TerminalChat

    s = _settings(ctx)
    base = url or f"http://{s.api.host}:{s.api.port}"
    headers = {"X-API-Key": api_key} if api_key else {}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        TerminalChat(
            client,
            owner_id,
            user_id,
            speaker=speaker,
            say=click.echo,
            ask=lambda p: input(p),
            write=lambda text: click.echo(text, nl=False),
        ).run()


@main.command("mcp")
@click.option("--url", default=None, help="Query service URL (default: from settings).")
@click.option("--owner", "owner_id", required=True, help="Whose memory space (the app).")
@click.option("--user", "user_id", default=None, help="Scope every call to this user.")
@click.option("--speaker", default=None, help="The user's display name in memories.")
@click.option("--api-key", envvar="MEMSTREAM_API_KEY", default=None, help="Or MEMSTREAM_API_KEY.")
@click.option(
    "--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True
)
@click.option("--host", default="127.0.0.1", show_default=True, help="http only.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.pass_context
def mcp_cmd(
    ctx: click.Context,
    url: str | None,
    owner_id: str,
    user_id: str | None,
    speaker: str | None,
    api_key: str | None,
    transport: str,
    host: str,
    port: int,
) -> None:
    """MCP server (remember, recall, list_memories, forget) over the query service.

    Needs the `mcp` extra: pip install 'memstream[mcp]'. With --transport http it serves
    streamable HTTP on /mcp and passes each caller's API key through to the service."""
    try:
        from memstream.integrations.mcp import Scoping, build_server
    except ImportError as exc:
        raise click.ClickException(
            f"{exc.name or 'mcp'} is not installed: pip install 'memstream[mcp]'"
        ) from exc
    s = _settings(ctx)
    scoping = Scoping(
        url or f"http://{s.api.host}:{s.api.port}",
        owner_id,
        user_id,
        api_key=api_key,
        speaker=speaker,
    )
    server = build_server(scoping)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)


@main.command("settings")
def settings_cmd() -> None:
    """Print the settings reference (every MEMSTREAM_* variable) as Markdown."""
    from memstream.config import settings_reference

    click.echo(settings_reference(), nl=False)


@main.command()
@click.option("--loglevel", default="info", show_default=True)
@_bootstrap_option
@click.pass_context
def worker(ctx: click.Context, loglevel: str) -> None:
    """Run a Faust worker: ingest, windows, consolidation jobs."""
    from memstream.worker.run import run_worker

    run_worker(_settings(ctx), loglevel=loglevel)


@main.command()
@click.option("--host", default=None, help="Default: settings api.host.")
@click.option("--port", type=int, default=None, help="Default: settings api.port.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the retrieval query service (HTTP)."""
    import uvicorn

    from memstream.query.app import create_service

    s = _settings(ctx)
    uvicorn.run(
        create_service(s),
        host=host or s.api.host,
        port=port if port is not None else s.api.port,
        log_level="warning",
    )


@main.command()
@click.argument(
    "file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path)
)
@click.option(
    "--raw",
    is_flag=True,
    help="Send every line as it is; invalid ones end up in the DLQ instead of being refused here.",
)
@_bootstrap_option
@click.pass_context
def produce(ctx: click.Context, file: Path, raw: bool) -> None:
    """Produce chat messages from a JSON Lines file (one ChatMessage per line; - reads
    standard input)."""
    from memstream.streams.producer import produce_file

    s = _settings(ctx)
    source = None if str(file) == "-" else file
    progress = sys.stderr.isatty()
    report = _broker_errors(produce_file(s.kafka, source, raw=raw, progress=progress), s)
    click.echo(json.dumps(report.summary()))
    for line_no, error in report.errors[:20]:
        click.echo(f"line {line_no}: {error}", err=True)
    if len(report.errors) > 20:
        click.echo(f"... and {len(report.errors) - 20} more invalid lines", err=True)
    if report.errors:
        sys.exit(1)


@main.group("eval")
def eval_group() -> None:
    """Evaluate memory quality through the real pipeline."""


@eval_group.command("locomo")
@click.option(
    "--data",
    "data_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="LoCoMo JSON (a list of conversations).",
)
@click.option("--conversations", multiple=True, help="sample_id to include (repeatable).")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 200))
@click.option(
    "--retrieval",
    "modes",
    multiple=True,
    type=click.Choice([m.value for m in RetrievalMode]),
    help="Recall channels; the first is the report's headline, all are in by_retrieval. "
    "Default: hybrid and each channel the embedder has alone (dense, bm25, sparse).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_context
def eval_locomo(
    ctx: click.Context,
    data_file: Path,
    conversations: tuple[str, ...],
    k: int,
    modes: tuple[str, ...],
    out: Path | None,
) -> None:
    """Replay LoCoMo conversations (broker, worker, store) and score evidence recall@k."""
    from memstream.evaluation.runner import run_locomo

    settings = _settings(ctx)
    if modes:
        chosen = [RetrievalMode(m) for m in modes]
    else:  # every channel the configured embedder has
        off = {RetrievalMode.sparse} if settings.embedder.sparse == "none" else set()
        chosen = [m for m in RetrievalMode if m not in off]
    if RetrievalMode.sparse in chosen and settings.embedder.sparse == "none":
        raise click.UsageError("--retrieval sparse needs MEMSTREAM_EMBEDDER__SPARSE=splade-tiny")
    try:
        report = asyncio.run(
            run_locomo(settings, data_file, conversations=conversations or None, k=k, modes=chosen)
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    text = json.dumps(report, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    click.echo(text)


@main.command()
@click.option(
    "--from",
    "source",
    type=click.Choice(["events", "messages"]),
    required=True,
    help="events: re-index the memory events; messages: re-derive from the raw messages.",
)
@click.option("--reembed", is_flag=True, help="events: recompute vectors with the embedder.")
@click.option("--drop-old", is_flag=True, help="Drop the previous version after the switch.")
@click.option(
    "--settle-seconds",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0, 600),
    help="How long the tail is still applied after the switch.",
)
@click.option("--progress/--no-progress", default=None, help="Default: on a terminal.")
@click.pass_context
def rebuild(
    ctx: click.Context,
    source: str,
    reembed: bool,
    drop_old: bool,
    settle_seconds: float,
    progress: bool | None,
) -> None:
    """Build a new store version from the log, catch up, switch atomically; print JSON.

    The live version serves throughout. Interrupted, it leaves the live version untouched;
    run it again and it starts over (the unfinished version is dropped first).
    """
    from memstream.rebuild.run import run_rebuild
    from memstream.sinks.base import StoreError
    from memstream.streams.topics import TopicError

    if reembed and source != "events":
        raise click.UsageError("--reembed goes with --from events")
    settings = _settings(ctx)
    try:
        report = asyncio.run(
            run_rebuild(
                settings,
                "events" if source == "events" else "messages",
                reembed=reembed,
                drop_old=drop_old,
                settle_seconds=settle_seconds,
                progress=sys.stderr.isatty() if progress is None else progress,
            )
        )
    except (StoreError, TopicError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(report.model_dump_json())


@main.group(invoke_without_command=True)
@click.pass_context
def versions(ctx: click.Context) -> None:
    """The store's versions (live, retired, building); ``versions drop N`` deletes one."""
    if ctx.invoked_subcommand is None:
        from memstream.sinks.versions import list_versions

        rows = asyncio.run(list_versions(_settings(ctx)))
        click.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))


@versions.command("drop")
@click.argument("version", type=click.IntRange(1))
@click.pass_context
def versions_drop(ctx: click.Context, version: int) -> None:
    """Delete a version that is not live, with its data."""
    from memstream.sinks.base import StoreError
    from memstream.sinks.versions import drop_version

    try:
        asyncio.run(drop_version(_settings(ctx), version))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"dropped version {version}")


@main.group()
def bench() -> None:
    """Benchmarks; each prints one JSON object."""


@bench.command("ingest")
@click.option("--messages", default=100_000, show_default=True, type=click.IntRange(1))
@click.option("--users", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--partitions", default=4, show_default=True, type=click.IntRange(1, 256))
@click.pass_context
def bench_ingest_cmd(ctx: click.Context, messages: int, users: int, partitions: int) -> None:
    """Worker ingest (validate + window) vs a bare Faust agent on the same topic."""
    from memstream.evaluation.bench import bench_ingest

    report = asyncio.run(
        bench_ingest(_settings(ctx), messages=messages, users=users, partitions=partitions)
    )
    click.echo(json.dumps(report))


@bench.command("retrieval")
@click.option("--users", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--memories", "per_user", default=50, show_default=True, type=click.IntRange(1))
@click.option("--clients", default=16, show_default=True, type=click.IntRange(1, 512))
@click.option("--seconds", default=20.0, show_default=True, type=click.FloatRange(1, 3600))
@click.option("--top-k", default=20, show_default=True, type=click.IntRange(1, 200))
@click.pass_context
def bench_retrieval_cmd(
    ctx: click.Context, users: int, per_user: int, clients: int, seconds: float, top_k: int
) -> None:
    """Load U users x M memories, run C concurrent HTTP clients against the query service."""
    from memstream.evaluation.bench import bench_retrieval

    report = asyncio.run(
        bench_retrieval(
            _settings(ctx),
            users=users,
            per_user=per_user,
            clients=clients,
            seconds=seconds,
            top_k=top_k,
        )
    )
    click.echo(json.dumps(report))


@bench.command("time-to-memory")
@click.option("--messages", default=60, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--users", default=6, show_default=True, type=click.IntRange(1))
@click.option(
    "--interval",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 60),
    help="Seconds between two messages.",
)
@click.pass_context
def bench_time_to_memory_cmd(
    ctx: click.Context, messages: int, users: int, interval: float
) -> None:
    """From a message's ack to its memory being searchable: p50/p95. LLM-free by default;
    set MEMSTREAM_LLM__* for the model path (the idle gap then applies)."""
    from memstream.evaluation.bench import bench_time_to_memory

    report = asyncio.run(
        bench_time_to_memory(_settings(ctx), messages=messages, users=users, interval=interval)
    )
    click.echo(json.dumps(report))


@bench.command("rebuild")
@click.option("--users", default=1000, show_default=True, type=click.IntRange(2))
@click.option("--memories", "per_user", default=50, show_default=True, type=click.IntRange(20))
@click.option("--reembed", is_flag=True, help="Recompute every vector (the embedder's speed).")
@click.pass_context
def bench_rebuild_cmd(ctx: click.Context, users: int, per_user: int, reembed: bool) -> None:
    """Rebuild from events: U users x M memories into the configured store."""
    from memstream.evaluation.bench import bench_rebuild

    report = asyncio.run(
        bench_rebuild(_settings(ctx), users=users, per_user=per_user, reembed=reembed)
    )
    click.echo(json.dumps(report))


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--api-port", type=int, default=None, help="Default: settings api.port (8080).")
@click.option("--broker-port", type=int, default=None, help="Default: 9092.")
@click.option("--worker-port", type=int, default=None, help="Worker stats page; default: 6066.")
@click.option(
    "--load",
    "load_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSON Lines file of chat messages to produce once everything is up.",
)
@click.pass_context
def up(
    ctx: click.Context,
    data_dir: Path | None,
    api_port: int | None,
    broker_port: int | None,
    worker_port: int | None,
    load_file: Path | None,
) -> None:
    """Everything on one machine: embedded broker, a worker, the query service, SQLite.

    The children end when this command ends, however it ends (Ctrl-C, SIGTERM, a closed
    terminal, or SIGKILL: the kernel signals them). A default port that is taken is
    replaced by a free one; a port you asked for that is taken is an error."""
    from memstream.config import settings_env
    from memstream.embedded import port_free, spawn, start_tansu, stop, wait_port
    from memstream.runtime import free_port

    base = _settings(ctx, data_dir=data_dir)

    def port(name: str, asked: int | None, default: int, flag: str) -> int:
        if asked is not None:
            if not port_free(asked):
                raise click.ClickException(
                    f"port {asked} ({name}) is in use: choose another {flag}"
                )
            return asked
        if port_free(default):
            return default
        chosen = free_port()
        click.echo(f"{name}: port {default} is in use; using {chosen} ({flag} to choose)")
        return chosen

    # Asked for explicitly: by flag or by its variable (a taken one is then an error).
    api_set = "MEMSTREAM_API__PORT" in os.environ
    web_set = os.environ.get("MEMSTREAM_WORKER__WEB_PORT", "0") != "0"
    broker = port("broker", broker_port, 9092, "--broker-port")
    api = port(
        "service", api_port or (base.api.port if api_set else None), base.api.port, "--api-port"
    )
    web = port(
        "worker", worker_port or (base.worker.web_port if web_set else None), 6066, "--worker-port"
    )
    s = _settings(
        ctx,
        data_dir=base.data_dir,
        kafka={**base.kafka.model_dump(), "bootstrap_servers": f"127.0.0.1:{broker}"},
        api={**base.api.model_dump(), "port": api},
        worker={**base.worker.model_dump(), "web_port": web},
        store={**base.store.model_dump(), "backend": "sqlite"},
    )
    logs = s.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # The children get exactly these settings (file, environment and flags already merged).
    env = {**os.environ, **settings_env(s)}
    me = [sys.executable, "-m", "memstream"]
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def say(text: str, err: bool = False) -> None:
        # The terminal may be gone (closed, or make exited first): keep stopping.
        with contextlib.suppress(OSError):
            click.echo(text, err=err)

    def shutdown(*_: Any, code: int = 0) -> None:
        nonlocal stopping
        if stopping:  # a second Ctrl-C or signal while stopping: the stop goes on
            return
        stopping = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        say("\nstopping: worker consolidates open windows first ...")
        exit_code = code
        for name, proc in reversed(procs):
            code = stop(proc, timeout=60 if name == "worker" else 15)
            # uvicorn re-raises the SIGTERM it handled gracefully: that is a clean stop too.
            clean = code in (0, -signal.SIGTERM)
            say(f"  {name} stopped" + ("" if clean else f" uncleanly (exit {code})"))
        sys.exit(exit_code)

    def died(name: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-8:]
        say(f"{name} exited with {proc.returncode}; the end of {log}:", err=True)
        for line in tail:
            say(f"  {line}", err=True)
        shutdown(code=1)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGHUP, shutdown)  # the terminal closed
    try:
        say(f"data dir {s.data_dir.resolve()} (logs in {logs.resolve()})")
        # Each child dies with this process, whatever kills it. SIGKILL, as for a crash: a
        # worker loses nothing by it (messages of open windows stay uncommitted and are read
        # again), and a graceful drain into a broker that is going too could hang.
        procs.append(
            ("broker", start_tansu(broker, logs / "broker.log", die_with_parent=signal.SIGKILL))
        )
        say(f"broker   kafka://127.0.0.1:{broker} (tansu, in memory)")
        child_logs = {"worker": logs / "worker.log", "service": logs / "service.log"}
        for name, command in (("worker", "worker"), ("service", "serve")):
            proc = spawn([*me, command], env, child_logs[name], die_with_parent=signal.SIGKILL)
            procs.append((name, proc))
        service = procs[-1][1]
        wait_port("127.0.0.1", api, timeout=90, proc=service)
        url = f"http://127.0.0.1:{api}"
        say(f"service  {url}  (OpenAPI docs: {url}/docs)")
        say(f"worker   http://127.0.0.1:{web}/stats/")
        say(f"store    sqlite {s.store.sqlite_path}")
        _wait_ready(procs, child_logs, web, url, died)
        if load_file is not None:
            from memstream.streams.producer import produce_file

            report = asyncio.run(produce_file(s.kafka, load_file, raw=False, progress=False))
            say(f"loaded   {load_file}: {json.dumps(report.summary())}")
        say("ready; Ctrl-C stops everything")
        while True:
            for name, proc in procs:
                if proc.poll() is not None:
                    died(name, proc, child_logs.get(name, logs / "broker.log"))
            time.sleep(0.5)
    except KeyboardInterrupt:
        shutdown()
    except click.ClickException:
        raise
    except Exception as exc:
        say(f"error: {exc}", err=True)
        shutdown(code=1)


def _wait_ready(
    procs: list[tuple[str, subprocess.Popen[bytes]]],
    logs: dict[str, Path],
    web_port: int,
    url: str,
    died: Any,
    timeout: float = 120.0,
) -> None:
    """Until the worker has joined its group (partitions assigned) and the service answers
    its health check: "ready" then means a message produced now is consumed."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs:
            if proc.poll() is not None:
                died(name, proc, logs.get(name, logs["worker"].with_name("broker.log")))
        try:
            stats = httpx.get(f"http://127.0.0.1:{web_port}/stats/", timeout=2).json()
            health = httpx.get(f"{url}/healthz", timeout=2)
            if stats.get("assigned_partitions") and health.status_code == 200:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the worker did not join its group within {timeout:.0f} s")
