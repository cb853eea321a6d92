"""The ``amur`` command. Each command parses its arguments and calls an importable function."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.app.config_check import check_config
from pipeline.core.errors import AmurError, ConfigError, ConfigProblem
from pipeline.core.settings import DEFAULT_CONFIG_PATH, AmurSettings, load_settings, load_sources, sources_path
from pipeline.core.topology import roles

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Amur: alerts on Russia–China cooperation news.")
config_app = typer.Typer(no_args_is_help=True, help="Check configuration files.")
schemas_app = typer.Typer(no_args_is_help=True, help="JSON Schemas of the topic messages.")
topics_app = typer.Typer(no_args_is_help=True, help="Manage the pipeline's topics.")
sources_app = typer.Typer(no_args_is_help=True, help="Inspect and try out news sources.")
db_app = typer.Typer(no_args_is_help=True, help="The SQL database of records, alerts and connector state.")
subscriptions_app = typer.Typer(no_args_is_help=True, help="Who gets which stories.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: what a stage could not handle, and why.")
app.add_typer(config_app, name="config")
app.add_typer(sources_app, name="sources")
app.add_typer(schemas_app, name="schemas")
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(dlq_app, name="dlq")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", envvar="AMUR_CONFIG", help="Runtime settings file.", show_envvar=True)
]
EXIT_CONFIG = 2


def _fail_config(problems: list[ConfigProblem]) -> None:
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(EXIT_CONFIG)


@contextmanager
def _errors_end_the_command(prefix: str = "", settings: AmurSettings | None = None) -> Iterator[None]:
    """A broken configuration exits 2 with every problem; any other Amur error exits 1 with its
    message, and so does a local file that cannot be written (a full disk, a read-only place),
    with the fix and, given the ``settings``, the files it may be."""
    from pipeline.core.db import storage_hint

    try:
        yield
    except ConfigError as exc:
        _fail_config(exc.problems)
    except AmurError as exc:
        typer.echo(f"error: {prefix}{exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        hint = storage_hint(exc)
        if hint is None:
            raise
        files = f" (database_url {settings.database_url}, embedded.path {settings.embedded.path})" if settings else ""
        typer.echo(f"error: {prefix}{getattr(exc, 'orig', None) or exc}{files}: {hint}", err=True)
        raise typer.Exit(1) from None


def _settings(config: Path, transport: Optional[str] = None) -> AmurSettings:
    with _errors_end_the_command():
        settings = load_settings(config)
    if transport:
        settings = settings.model_copy(update={"transport": transport})
    return settings


LogLevel = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]
LogFormat = Annotated[str, typer.Option("--log-format", help="text, or json: one JSON object per line.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="The same as --log-level debug.")]
ServeHost = Annotated[Optional[str], typer.Option("--host", help="Address the dashboard binds; serve.host (127.0.0.1) by default.")]
ServePort = Annotated[Optional[int], typer.Option("--port", min=1, max=65_535, help="Port the dashboard binds; serve.port (8080) by default.")]


def _logging(verbose: bool, level: str = "info", log_format: str = "text") -> None:
    from pipeline.app.logs import LEVELS, configure_logging

    if level not in LEVELS:
        raise typer.BadParameter(f"choose one of: {', '.join(LEVELS)}", param_hint="--log-level")
    if log_format not in ("text", "json"):
        raise typer.BadParameter("choose text or json", param_hint="--log-format")
    configure_logging("debug" if verbose else level, log_format)


@app.command()
def run(
    role: Annotated[Optional[str], typer.Argument(help=f"One of: {', '.join(roles())}; every role when omitted.")] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    transport: Annotated[Optional[str], typer.Option(help="embedded or kafka; overrides the config.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Poll every source once, drain the pipeline, exit.")] = False,
    serve: Annotated[bool, typer.Option("--serve", help="Also serve the dashboard (serve.host, serve.port).")] = False,
    host: ServeHost = None,
    port: ServePort = None,
    workers: Annotated[Optional[str], typer.Option(
        "--workers", help="Each role as processes of its own, e.g. processors=2 (others get one); needs Kafka.",
    )] = None,
    metrics_port: Annotated[Optional[int], typer.Option(
        "--metrics-port", min=1, max=65_535, help="Serve this process's Prometheus metrics at http://127.0.0.1:PORT/metrics.",
    )] = None,
    verbose: Verbose = False,
    log_level: LogLevel = "info",
    log_format: LogFormat = "text",
) -> None:
    """Run the pipeline: all roles in one process, or one role of a scaled-out deployment."""
    from pipeline.app.roles import Runtime, run_forever, run_once
    from pipeline.core.membership import until_reachable

    if role is not None and role not in roles():
        raise typer.BadParameter(f"unknown role {role!r}; choose one of: {', '.join(roles())}", param_hint="ROLE")
    if transport is not None and transport not in ("embedded", "kafka"):
        raise typer.BadParameter("choose embedded or kafka", param_hint="--transport")
    if (host is not None or port is not None) and not serve:
        raise typer.BadParameter("they place the dashboard: add --serve", param_hint="--host/--port")
    _logging(verbose, log_level, log_format)
    settings = _settings(config, transport)
    if workers is not None:
        log_args = ["--log-level", "debug" if verbose else log_level, "--log-format", log_format]
        _supervise(workers, role, once, settings, config, transport, metrics_port, log_args)
        return
    if role is not None and settings.transport == "embedded" and not once:
        typer.echo("note: a single role on the embedded transport only makes sense with --once", err=True)
    chosen = (role,) if role else roles()
    if metrics_port is not None:
        from pipeline.core.metrics import serve as serve_metrics

        try:
            serve_metrics(metrics_port)
        except OSError as exc:
            raise typer.BadParameter(f"cannot listen on 127.0.0.1:{metrics_port}: {exc.strerror}", param_hint="--metrics-port") from None
    with _errors_end_the_command(settings=settings):
        if once:
            runtime = Runtime.from_settings(settings, config)
        else:
            from pipeline.app.supervisor import stop_when_orphaned

            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            stop_when_orphaned(stop)
            runtime = until_reachable("amur run", lambda: Runtime.from_settings(settings, config), stop)
            if runtime is None:
                return  # stopped before the broker came back
        web = _background_server(settings, config, host, port) if serve else None
        try:
            if once:
                run_once(runtime, chosen, report=typer.echo)
            else:
                run_forever(runtime, chosen, stop)
        finally:
            if web is not None:
                web.stop()
            runtime.close()


def _supervise(
    workers: str, role: Optional[str], once: bool, settings: AmurSettings, config: Path, transport: Optional[str],
    metrics_port: Optional[int], log_args: list[str],
) -> None:
    from pipeline.app.supervisor import check_plan, parse_workers, supervise

    if role is not None or once:
        raise typer.BadParameter("--workers runs every role continuously: give no ROLE and no --once", param_hint="--workers")
    try:
        plan = parse_workers(workers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--workers") from None
    with _errors_end_the_command():
        check_plan(plan, settings, config)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    extra = [*log_args, *(["--transport", transport] if transport else [])]
    supervise(plan, config, stop, extra_args=extra, metrics_port=metrics_port)


def _background_server(settings: AmurSettings, config: Path, host: Optional[str], port: Optional[int]):
    from pipeline.app.web.server import BackgroundServer, make_server
    from pipeline.core.db import make_engine
    from pipeline.core.migrations import upgrade_database

    # The roles would migrate the database as they set up; the server, which never writes,
    # starts first and needs the schema it reads.
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    engine.dispose()
    return BackgroundServer(make_server(settings, config, host=host, port=port)).start()


@app.command()
def serve(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    host: ServeHost = None,
    port: ServePort = None,
    verbose: Verbose = False,
    log_level: LogLevel = "info",
    log_format: LogFormat = "text",
) -> None:
    """Serve the dashboard, the cooperation map, the JSON API and the feeds (read-only)."""
    from pipeline.app.web.server import make_server

    _logging(verbose, log_level, log_format)
    settings = _settings(config)
    with _errors_end_the_command():
        server = make_server(settings, config, host=host, port=port)
    typer.echo(f"serving on http://{server.config.host}:{server.config.port}/ (Ctrl-C to stop)", err=True)
    server.run()


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="amur.yaml (checks the sources file it names too) or a sources file.")] = DEFAULT_CONFIG_PATH,
) -> None:
    """Print every problem with its file, key and a hint; exit 2 if there is any."""
    from pipeline.app.vocabulary import vocabulary

    problems = check_config(file, vocabulary)
    if problems:
        _fail_config(problems)
    typer.echo(f"{file}: OK")


@sources_app.command("status")
def sources_status(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Each source's status (ok, failing, unhealthy, items failing, silent), last success, failures, items
    seen and failed, interval, last new item, usual gap, next poll and last error."""
    from pipeline.app.sources import format_health, source_health

    settings = _settings(config)
    with _errors_end_the_command():
        typer.echo(format_health(source_health(settings, config)))


sources_app.command("health", help="The same as `amur sources status`.")(sources_status)


@sources_app.command("list")
def sources_list(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """The configured sources: name, kind, interval, enabled, URL."""
    from pipeline.app.sources import format_sources

    settings = _settings(config)
    with _errors_end_the_command():
        typer.echo(format_sources(load_sources(sources_path(config, settings)).sources))


@sources_app.command("test")
def sources_test(
    name: Annotated[str, typer.Argument(help="The source's name in the sources file.")],
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    classify: Annotated[bool, typer.Option("--classify", help="Also classify what would be emitted.")] = False,
) -> None:
    """Poll one source dry: show what it would emit, touching neither topics nor state."""
    from pipeline.app.sources import dry_run, format_dry_run

    settings = _settings(config)
    with _errors_end_the_command(prefix=f"source {name}: "):
        result = dry_run(settings, config, name, classify=classify, progress=lambda line: typer.echo(line, err=True))
        typer.echo(format_dry_run(result))


@topics_app.command("create")
def topics_create(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Create the pipeline's topics (articles, classified, alerts, dlq) where missing."""
    from pipeline.app.roles import Runtime

    settings = _settings(config)
    with _errors_end_the_command():
        runtime = Runtime.from_settings(settings, config)
    typer.echo("\n".join(runtime.topics.all()))
    runtime.close()


@subscriptions_app.command("list")
def subscriptions_list(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Each subscription's filters and channels."""
    from pipeline.app.subscriptions import configured, format_subscriptions

    settings = _settings(config)
    with _errors_end_the_command():
        typer.echo(format_subscriptions(configured(settings, config)))


@subscriptions_app.command("test")
def subscriptions_test(
    name: Annotated[str, typer.Argument(help="The subscription's name in the subscriptions file.")],
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many stories.")] = 20,
) -> None:
    """Which recent stories in the records the subscription would get; nothing is delivered."""
    from pipeline.app.subscriptions import format_stories, matching_stories

    settings = _settings(config)
    with _errors_end_the_command(prefix=f"subscription {name}: "):
        typer.echo(format_stories(matching_stories(settings, config, name, limit)))


LetterStage = Annotated[Optional[str], typer.Option("--stage", help="Only letters of this stage (connectors, processors, stories, sinks).")]
LetterTopic = Annotated[Optional[str], typer.Option("--topic", help="Only letters from this topic (a name, or a kind: articles, classified, alerts).")]
LetterSince = Annotated[Optional[str], typer.Option("--since", help="Only letters from this long ago (30m, 24h, 7d) or since this time (ISO 8601).")]
TransportOption = Annotated[Optional[str], typer.Option("--transport", help="embedded or kafka (overrides amur.yaml).")]


def _letter_filter(settings: AmurSettings, stage: Optional[str], topic: Optional[str], since: Optional[str], ids: Sequence[str] = ()):
    from pipeline.app.dlq import LetterFilter, parse_since
    from pipeline.app.roles import topics_for

    topics = topics_for(settings)
    try:
        moment = parse_since(since)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    if topic is not None and topic not in topics.all():
        try:
            topic = topics.name(topic)
        except (KeyError, ValueError):
            raise typer.BadParameter(f"{topic!r} is none of {', '.join(topics.all())}", param_hint="--topic") from None
    return LetterFilter(stage=stage, topic=topic, since=moment, ids=frozenset(ids))


@dlq_app.command("list")
def dlq_list(
    config: ConfigOption = DEFAULT_CONFIG_PATH, stage: LetterStage = None, topic: LetterTopic = None,
    since: LetterSince = None, transport: TransportOption = None,
) -> None:
    """Each dead letter, oldest first: when, stage (and sink), error, original topic:partition:offset, id, reason."""
    from pipeline.app.dlq import format_letters, read_letters
    from pipeline.app.roles import Runtime

    settings = _settings(config, transport)
    keep = _letter_filter(settings, stage, topic, since)
    with _errors_end_the_command():
        runtime = Runtime.from_settings(settings, config)
        try:
            typer.echo(format_letters(read_letters(settings, runtime.transport, runtime.topics, keep)))
        finally:
            runtime.close()


@dlq_app.command("replay")
def dlq_replay(
    config: ConfigOption = DEFAULT_CONFIG_PATH, stage: LetterStage = None, topic: LetterTopic = None,
    since: LetterSince = None,
    ids: Annotated[Optional[list[str]], typer.Option("--id", help="Only the letter with this id (repeatable).")] = None,
    again: Annotated[bool, typer.Option("--again", help="Also send letters replayed before.")] = False,
    transport: TransportOption = None,
) -> None:
    """Send the chosen letters' values back to their topics after a fix; each letter once."""
    from pipeline.app.dlq import read_letters, replay
    from pipeline.app.roles import Runtime
    from pipeline.core.db import make_engine
    from pipeline.core.migrations import upgrade_database

    settings = _settings(config, transport)
    keep = _letter_filter(settings, stage, topic, since, ids or ())
    with _errors_end_the_command():
        runtime = Runtime.from_settings(settings, config)
        engine = make_engine(settings.database_url)
        try:
            upgrade_database(engine)
            letters = read_letters(settings, runtime.transport, runtime.topics, keep)
            typer.echo(replay(letters, runtime.transport, engine, runtime.topics, again=again).describe())
        finally:
            engine.dispose()
            runtime.close()


@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG_PATH, transport: TransportOption = None) -> None:
    """The pipeline on one screen: sources needing attention, lag per role, dead letters, last alert."""
    from pipeline.app.roles import Runtime
    from pipeline.app.status import format_status, pipeline_status

    settings = _settings(config, transport)
    with _errors_end_the_command():
        runtime = Runtime.from_settings(settings, config)
        try:
            typer.echo(format_status(pipeline_status(runtime, config)))
        finally:
            runtime.close()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Bring the database to the newest schema revision, keeping every row (also done at start-up)."""
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.core.db import make_engine
    from pipeline.core.migrations import current_revision, head_revision, upgrade_database

    settings = _settings(config)
    with _errors_end_the_command():
        engine = make_engine(settings.database_url)
        try:
            before = current_revision(engine)
            upgrade_database(engine)
        except SQLAlchemyError as exc:
            typer.echo(f"error: database {engine.url.render_as_string()}: {exc.__class__.__name__}: {exc}", err=True)
            raise typer.Exit(1) from None
        finally:
            engine.dispose()
    head = head_revision()
    typer.echo(f"database at revision {head}" + ("" if before == head else f" (was {before or 'empty'})"))


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="Where to write the .schema.json files.")] = Path("pipeline/core/schemas"),
    check: Annotated[bool, typer.Option("--check", help="Fail if the files differ from the models.")] = False,
) -> None:
    """Write one JSON Schema per topic message, generated from the models."""
    from pipeline.core.schemas import export_schemas

    stale = export_schemas(directory, check=check)
    if check and stale:
        typer.echo(f"stale schemas (run amur schemas export): {', '.join(stale)}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"schemas {'checked' if check else 'written'} in {directory}")


@app.command()
def classify(
    source: Annotated[Optional[str], typer.Argument(help="A text or HTML file, an http(s) URL, or - for standard input.")] = None,
    jsonl: Annotated[Optional[Path], typer.Option(help="Classify each line's 'text' (with optional 'title', 'url').")] = None,
    config: ConfigOption = DEFAULT_CONFIG_PATH,
) -> None:
    """Print the full classification of one article (or of every line of a JSONL file) as JSON."""
    from pipeline.app.classify import classify_jsonl, classify_one

    if (source is None) == (jsonl is None):
        raise typer.BadParameter("give either SOURCE or --jsonl FILE")
    settings = _settings(config)
    with _errors_end_the_command():
        if jsonl is not None:
            for line in classify_jsonl(jsonl, settings):
                typer.echo(line)
        else:
            typer.echo(classify_one(source, settings))


@app.command("eval")
def evaluate_command(
    file: Annotated[Path, typer.Argument(help="Labelled JSONL in the development set's format: 'text' and 'label' per line, and optionally level, regions, sectors, event.")],
    config: ConfigOption = DEFAULT_CONFIG_PATH,
) -> None:
    """Run a labelled file through the whole pipeline on a scratch database and print every figure."""
    from pipeline.app.evaluate import evaluate_pipeline
    from processors.evaluate import format_report

    settings = _settings(config)
    with _errors_end_the_command():
        report = evaluate_pipeline(file, settings)
    typer.echo(format_report(report))

