"""Subscriptions: who wants which stories — ``config/subscriptions.yaml``.

Each subscription has a name, filters and channels. A story (an :class:`~pipeline.core.messages.Alert`)
matches a subscription when it passes every filter given; within one filter, any listed
value will do::

    subscriptions:
      - name: primorye-heilongjiang-energy
        filters:
          pairs: [[RU-PRI, CN-HL]]      # both take part (the story's regions)
          sectors: [energy]
          min_score: 0.6
        channels:
          - type: atom
          - type: jsonfeed

=====================  ============================================================
filter                 a story passes when
=====================  ============================================================
``regions``            one of these federal subjects or provinces takes part
``pairs``              both regions of one of these ``[RU-…, CN-…]`` pairs take part
``sectors``            it is about one of these sectors
``levels``             its level is one of these
``min_score``          its score is at least this
``keywords``           one of these words or phrases is in its title, summary or evidence
``languages``          its first article is in one of these languages
``sources``            one of its outlets is one of these sources
``exclude_sources``    it has an outlet that is none of these sources
=====================  ============================================================

Without a subscriptions file there is one subscription, :data:`DEFAULT_NAME`: every story
at or above ``alerts.min_score``, as the single alert feed had it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pipeline.core.errors import ConfigError, ConfigProblem, nearest
from pipeline.core.messages import Alert, Level, Sector
from pipeline.core.settings import AmurSettings, EmailSettings, SourceName, file_stamp, read_yaml, require_unique, validate_file

__all__ = [
    "DEFAULT_NAME", "DigestSchedule", "EmailChannel", "FeedChannel", "Filters", "Subscription", "SubscriptionsFile", "SubscriptionsWatcher", "Vocabulary",
    "WebhookChannel", "load_subscriptions", "secret_problems", "signing_key", "smtp_problems", "subscriptions_path",
]

DEFAULT_NAME = "all"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Vocabulary:
    """The filter values that exist beyond the fixed ones (sectors, levels): the regions a story
    can name (id → display name) and the languages its articles can be in. The application
    gives them from the gazetteer and the language detector, which the core does not know."""

    regions: Mapping[str, str]
    languages: frozenset[str]

    def unknown_region(self, value: str) -> str | None:
        """Why ``value`` is no region id, with the nearest ids (by id or by name); ``None`` if it is one."""
        if value in self.regions:
            return None
        by_name = {name: region for region, name in self.regions.items()}
        candidates = dict.fromkeys([*nearest(value, self.regions), *(by_name[name] for name in nearest(value, by_name))])
        suggestions = ", ".join(f"{region} ({self.regions[region]})" for region in list(candidates)[:3])
        return f"unknown region {value!r}" + (f"; nearest: {suggestions}" if suggestions else "")

    def unknown_language(self, value: str) -> str | None:
        """Why ``value`` is no language articles are read in; ``None`` if it is one."""
        if value in self.languages:
            return None
        return f"unknown language {value!r}; stories are in one of {', '.join(sorted(self.languages))}"


def _existing(unknown: Callable[[Vocabulary, str], str | None], error_type: str) -> AfterValidator:
    """A validator passing a value the validation's ``vocabulary`` (when given) knows, and
    refusing one it does not with ``unknown``'s reason."""
    def check(value: str, info: ValidationInfo) -> str:
        vocabulary: Vocabulary | None = (info.context or {}).get("vocabulary")
        if vocabulary is not None and (why := unknown(vocabulary, value)):
            raise PydanticCustomError(error_type, why)
        return value

    return AfterValidator(check)


# Ids of the right shape; with a vocabulary in the validation context (a subscriptions file
# read by load_subscriptions), ids that exist.
_EXISTING_REGION = _existing(Vocabulary.unknown_region, "unknown_region")
RussianRegion = Annotated[str, Field(pattern=r"^RU-[A-Z]{2,3}$", examples=["RU-PRI"]), _EXISTING_REGION]
ChineseRegion = Annotated[str, Field(pattern=r"^CN-[A-Z]{2}$", examples=["CN-HL"]), _EXISTING_REGION]
Region = Annotated[str, Field(pattern=r"^(RU-[A-Z]{2,3}|CN-[A-Z]{2})$", examples=["RU-PRI", "CN-HL"]), _EXISTING_REGION]
LanguageCode = Annotated[str, _existing(Vocabulary.unknown_language, "unknown_language")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Filters(_Frozen):
    """What a story must be to reach a subscription (see the module docstring)."""

    regions: list[Region] = Field(default_factory=list)
    pairs: list[tuple[RussianRegion, ChineseRegion]] = Field(default_factory=list)
    sectors: list[Sector] = Field(default_factory=list)
    levels: list[Level] = Field(default_factory=list)
    min_score: float | None = Field(None, ge=0, le=1)
    keywords: list[str] = Field(default_factory=list)
    languages: list[LanguageCode] = Field(default_factory=list, examples=[["ru", "zh"]])
    sources: list[SourceName] = Field(default_factory=list)
    exclude_sources: list[SourceName] = Field(default_factory=list)

    @field_validator("keywords")
    @classmethod
    def _words(cls, keywords: list[str]) -> list[str]:
        if any(not keyword.strip() for keyword in keywords):
            raise ValueError("a keyword must not be empty")
        return keywords

    @cached_property
    def _keyword_pattern(self) -> re.Pattern | None:
        if not self.keywords:
            return None
        alternatives = "|".join(re.escape(keyword.strip()) for keyword in self.keywords)
        return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def match(self, alert: Alert) -> bool:
        """Whether ``alert`` passes every filter given."""
        regions = set(alert.regions) | set(alert.russian_parties) | set(alert.chinese_parties)
        sources = {outlet.source for outlet in alert.outlets} or {alert.source}
        checks = (
            not self.regions or bool(regions.intersection(self.regions)),
            not self.pairs or any(russian in regions and chinese in regions for russian, chinese in self.pairs),
            not self.sectors or bool(set(alert.sectors).intersection(self.sectors)),
            not self.levels or alert.level in self.levels,
            self.min_score is None or alert.score >= self.min_score,
            not self.languages or alert.language in self.languages,
            not self.sources or bool(sources.intersection(self.sources)),
            not self.exclude_sources or bool(sources.difference(self.exclude_sources)),
            self._keyword_pattern is None or self._keyword_pattern.search(_searchable(alert)) is not None,
        )
        return all(checks)


def _searchable(alert: Alert) -> str:
    return "\n".join([alert.title, alert.summary, *alert.evidence])


class FeedChannel(_Frozen):
    """A feed file of the subscription's stories: Atom 1.0 or JSON Feed 1.1."""

    type: Literal["atom", "jsonfeed"]


class WebhookChannel(_Frozen):
    """Signed POSTs of the subscription's stories to an endpoint (see sinks/webhooks.py)."""

    type: Literal["webhook"]
    url: HttpUrl = Field(examples=["https://hooks.example.org/amur"])
    secret_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$", description="Environment variable holding the signing secret")
    updates: bool = Field(False, description="Also story.updated when outlets join, not only story.created")


class DigestSchedule(_Frozen):
    """When a digest goes out: every day at a time, or every week on a day at a time, in a time zone."""

    every: Literal["day", "week"] = "day"
    at: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["08:00"])
    on: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = Field(
        "monday", description="The day of a weekly digest",
    )
    timezone: str = Field("UTC", examples=["Europe/Moscow", "Asia/Shanghai"])

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Moscow or Asia/Shanghai") from None
        return name


class EmailChannel(_Frozen):
    """The subscription's stories by email (see sinks/email.py), through amur.yaml's ``email:``
    server: a message per story (``mode: each``) or one digest per period (``mode: digest``)."""

    type: Literal["email"]
    to: list[Annotated[str, Field(pattern=r"^[^@\s,<>]+@[^@\s,<>]+$", max_length=254)]] = Field(
        min_length=1, max_length=50, examples=[["analyst@example.org"]],
    )
    mode: Literal["each", "digest"] = "each"
    schedule: DigestSchedule | None = Field(None, description="When a digest goes out (mode: digest)")
    updates: bool = Field(False, description="Also when a story changes (outlets join), not only when it is new")

    @model_validator(mode="after")
    def _schedule_for_digests(self) -> EmailChannel:
        if self.mode == "digest" and self.schedule is None:
            raise ValueError("a digest needs a schedule, e.g. schedule: {every: day, at: '08:00', timezone: Europe/Moscow}")
        if self.mode == "each" and self.schedule is not None:
            raise ValueError("a schedule is for mode: digest; mode: each sends every story as it comes")
        return self


Channel = Annotated[FeedChannel | WebhookChannel | EmailChannel, Field(discriminator="type")]


def signing_key(secret: str) -> bytes:
    """The HMAC key of a webhook's signing secret: the bytes after ``whsec_`` base64-decoded, or
    the secret's UTF-8.

    :raises ValueError: a ``whsec_`` secret whose rest is no base64, or is empty.
    """
    if not secret.startswith("whsec_"):
        return secret.encode("utf-8")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("a whsec_ secret must go on in base64 (Standard Webhooks)") from None
    if not key:
        raise ValueError("a whsec_ secret must go on in base64 of at least one byte")
    return key


def secret_problems(path: Path, subscriptions: list[Subscription], environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Each webhook channel whose signing secret ``environ`` lacks or holds unusable."""
    problems = []
    for index, subscription in enumerate(subscriptions):
        webhook = subscription.webhook
        if webhook is None:
            continue
        secret = environ.get(webhook.secret_env)
        why = None if secret else "is not set"
        if secret:
            try:
                signing_key(secret)
            except ValueError as exc:
                why = f"holds no usable secret: {exc}"
        if why:
            problems.append(ConfigProblem(
                str(path), f"subscriptions.{index}.channels (webhook).secret_env",
                f"environment variable {webhook.secret_env} {why}", "export the webhook's signing secret in that variable",
            ))
    return problems


class Subscription(_Frozen):
    """One subscriber's choice of stories, and where they go."""

    name: SourceName = Field(examples=["primorye-heilongjiang"])
    filters: Filters = Filters()
    channels: list[Channel] = Field(
        default_factory=lambda: [FeedChannel(type="atom"), FeedChannel(type="jsonfeed")],
    )

    @field_validator("channels")
    @classmethod
    def _one_of_each(cls, channels: list) -> list:
        for kind, instead in (("webhook", "another endpoint"), ("email", "other addresses (or list them all under 'to')")):
            if sum(channel.type == kind for channel in channels) > 1:
                raise ValueError(f"at most one {kind} channel per subscription; make another subscription for {instead}")
        return channels

    def match(self, alert: Alert) -> bool:
        return self.filters.match(alert)

    @property
    def webhook(self) -> WebhookChannel | None:
        return self.channel("webhook")

    def channel(self, kind: str) -> FeedChannel | WebhookChannel | EmailChannel | None:
        """The subscription's channel of type ``kind``, if it has one."""
        return next((channel for channel in self.channels if channel.type == kind), None)


class SubscriptionsFile(_Frozen):
    """The contents of ``config/subscriptions.yaml``."""

    subscriptions: list[Subscription] = Field(default_factory=list)

    @field_validator("subscriptions")
    @classmethod
    def _unique_names(cls, subscriptions: list[Subscription]) -> list[Subscription]:
        require_unique([subscription.name for subscription in subscriptions], "subscription")
        return subscriptions


def smtp_problems(
    config_file: str, settings: EmailSettings | None, subscriptions: Sequence[Subscription], environ: Mapping[str, str],
) -> list[ConfigProblem]:
    """What stops email from being sent: subscriptions with an email channel and no ``email:``
    server, or a password variable the environment lacks."""
    if not any(subscription.channel("email") for subscription in subscriptions):
        return []
    if settings is None:
        return [ConfigProblem(config_file, "email", "subscriptions have email channels but no SMTP server is set",
                              "add email: with host and sender (and port, security, username, password_env)")]
    if settings.password_env and not environ.get(settings.password_env):
        return [ConfigProblem(config_file, "email.password_env", f"the environment variable {settings.password_env} is not set",
                              f"export {settings.password_env}=<the SMTP password> before starting Amur")]
    return []


def subscriptions_path(config_path: Path | str, settings: AmurSettings) -> Path:
    """The subscriptions file named by ``settings``, resolved against the directory of amur.yaml."""
    return Path(config_path).parent / settings.subscriptions_file


def default_subscription(settings: AmurSettings) -> Subscription:
    return Subscription(name=DEFAULT_NAME, filters=Filters(min_score=settings.alerts.min_score))


def load_subscriptions(path: Path | str, settings: AmurSettings, vocabulary: Vocabulary | None = None) -> list[Subscription]:
    """The subscriptions of ``path``; the default one when the file does not exist.

    :param vocabulary: the regions and languages that exist: a filter naming another is invalid.
    :raises ConfigError: the file is invalid (file, key and fix for every problem).
    """
    path = Path(path)
    if not path.exists():
        return [default_subscription(settings)]
    return validate_file(SubscriptionsFile, path, read_yaml(path), context={"vocabulary": vocabulary}).subscriptions


class SubscriptionsWatcher:
    """The subscriptions of a file, read again whenever it changes.

    An invalid edit is logged with its file, key and fix, and the subscriptions read before
    stay in force, so a typo never silences a feed or a webhook. With ``secrets`` (the
    environment, for a watcher that delivers webhooks) an edit naming a webhook secret the
    environment lacks is invalid too: found on reload, not at the next start; with a
    ``vocabulary``, so is one naming a region or a language that does not exist.
    """

    def __init__(
        self, path: Path, settings: AmurSettings, *, secrets: Mapping[str, str] | None = None, vocabulary: Vocabulary | None = None,
    ):
        self.path = path
        self.settings = settings
        self.secrets = secrets
        self.vocabulary = vocabulary
        self._stamp = file_stamp(path)
        self._subscriptions = self._load()

    def _load(self) -> list[Subscription]:
        subscriptions = load_subscriptions(self.path, self.settings, self.vocabulary)
        if self.secrets is not None and (problems := secret_problems(self.path, subscriptions, self.secrets)):
            raise ConfigError(problems)
        return subscriptions

    def current(self) -> list[Subscription]:
        stamp = file_stamp(self.path)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._subscriptions = self._load()
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("subscriptions not reloaded, those before go on: %s", problem)
            else:
                log.info("subscriptions reloaded: %s", ", ".join(s.name for s in self._subscriptions))
        return self._subscriptions
