"""Email (``type: email``): each subscription's ``email`` channel gets its stories by mail.

A channel in subscriptions.yaml, sent through the SMTP server under ``email:`` in amur.yaml::

    channels:
      - type: email
        to: [analyst@example.org]
        mode: each             # a message per new story; or digest, with a schedule:
        # mode: digest
        # schedule: {every: day, at: "08:00", timezone: Europe/Moscow}   # or every: week, on: monday
        updates: true          # a story that changes (outlets join) comes again, not only when it is new

**Digests.** A digest subscription's matching stories are collected as they come
(``email_digest_items``, once per story, or per version with ``updates``); when a period of
its schedule ends (APScheduler's cron trigger gives the times, in the schedule's time zone),
the stories collected before its end become one message in the outbox, keyed by the
subscription and the end, so two sinks workers or a restart make it once. A period with
nothing new sends nothing; a sink that was down over several ends sends one digest of all
it missed at the latest.

**Outbox** (:mod:`sinks.outbox`): a batch records the messages it calls for in
``email_deliveries``, keyed by subscription, story, event and version, so a replayed alert
sends nothing twice; a background thread sends them, tries again with back-off while the
server is down or refuses, and parks one on the dead-letter topic after ``max_attempts``.
A dead server holds up no other channel: the other sinks write and commit as before.

**A message** is multipart text and HTML (escaped, readable without images): the story's
headline as the subject, its English gist, its lead, the parties and regions by name,
sectors, level, figures, evidence and every outlet's link. Its ``Message-ID`` is made of
the story, its version and the subscription, so the one repeat the outbox allows — the
server took the message and the process died before that was recorded — is recognisably
the same message; ``List-Unsubscribe`` points at ``email.unsubscribe`` (or the sender).

**The server** is reached through the destination guard like every address Amur connects
to (``fetch.allow_networks``): its name is resolved, refused addresses are dropped, and the
connection goes to a checked address while TLS still verifies the name.
"""

from __future__ import annotations

import html
import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from pipeline.core.db import UTCDateTime, insert_missing, metadata
from pipeline.core.errors import ConfigError, SinkError
from pipeline.core.guard import AddressPolicy, Network, resolve
from pipeline.core.messages import Alert, utc_now
from pipeline.core.settings import EmailSettings
from pipeline.core.sink import SinkContext
from pipeline.core.subscriptions import DigestSchedule, Subscription, SubscriptionsWatcher, smtp_problems, subscriptions_path
from pipeline.core.topology import Topics
from pipeline.core.transport.base import Producer
from sinks.outbox import UPDATED, OutboxOptions, OutboxSink, delivery_columns, matching, outbox_row
from sinks.rendering import story_html, story_text

__all__ = ["EmailOptions", "EmailSink", "compose", "compose_digest", "email_deliveries", "email_digest_items", "period_end"]

log = logging.getLogger(__name__)

email_deliveries = sa.Table(
    "email_deliveries", metadata,
    *delivery_columns(),
    sa.Column("recipients", sa.Text, nullable=False),  # comma-separated
    sa.Column("message", sa.Text, nullable=False),  # the whole message, as sent
    sa.Index("ix_email_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_email_deliveries_story", "subscription", "story_id", "event"),
)

# The stories a digest subscription has matched, until a digest takes them (``digest``: its delivery id).
email_digest_items = sa.Table(
    "email_digest_items", metadata,
    sa.Column("subscription", sa.String(64), primary_key=True),
    sa.Column("story_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("alert", sa.JSON, nullable=False),
    sa.Column("added_at", UTCDateTime, nullable=False),
    sa.Column("digest", sa.String(32)),
    sa.Index("ix_email_digest_items_waiting", "subscription", "digest", "added_at"),
)
DIGEST = "digest"


class EmailOptions(OutboxOptions):
    """Options of ``- type: email`` in amur.yaml's ``sinks:`` (``timeout_seconds``: for each
    exchange with the SMTP server). The server itself is ``email:`` in amur.yaml."""


class EmailSink(OutboxSink):
    """Records email messages in an outbox and sends them in the background (see the module docstring)."""

    name = "email"
    channel = "email"
    table = email_deliveries
    Options = EmailOptions

    def __init__(
        self, engine: Engine, options: EmailOptions, server: EmailSettings | None, subscriptions: SubscriptionsWatcher,
        producer: Producer, topics: Topics, allow_networks: Sequence[Network] = (),
    ):
        super().__init__(engine, options, subscriptions, producer, topics)
        self.server = server
        self.policy = AddressPolicy(allow_networks)
        self.clock: Callable[[], datetime] = utc_now  # what time it is, for the digests' periods
        self._said_no_server = False

    @classmethod
    def from_config(cls, options: EmailOptions, context: SinkContext) -> EmailSink:
        if context.transport is None:
            raise SinkError("email: needs a transport for its dead letters")
        subscriptions = SubscriptionsWatcher(
            subscriptions_path(context.config_path, context.settings), context.settings, vocabulary=context.vocabulary,
        )
        return cls(
            context.engine(), options, context.settings.email, subscriptions, context.transport.producer(), context.topics,
            context.settings.fetch.allow_networks,
        )

    def setup(self) -> None:
        if problems := smtp_problems("amur.yaml", self.server, self.subscriptions.current(), os.environ):
            raise ConfigError(problems)
        super().setup()

    def subscribed(self) -> list[Subscription]:
        """The subscriptions with an email channel; none without a server (a reload added one to
        a deployment that has none: said once, as ``amur config check`` says it)."""
        subscribed = super().subscribed()
        if subscribed and self.server is None:
            if not self._said_no_server:
                log.error("email channels of %s ignored: amur.yaml has no email: server", ", ".join(s.name for s in subscribed))
                self._said_no_server = True
            return []
        return subscribed

    def write(self, batch: Sequence[Alert]) -> None:
        subscribed = self.subscribed()
        self.record_events(batch, [subscription for subscription in subscribed if subscription.channel("email").mode == "each"])
        digests = [subscription for subscription in subscribed if subscription.channel("email").mode == DIGEST]
        wanted = matching(batch, digests)
        if not wanted:
            return
        items = email_digest_items
        try:
            with self.engine.begin() as connection:
                collected = {tuple(row) for row in connection.execute(
                    sa.select(items.c.subscription, items.c.story_id)
                    .where(items.c.story_id.in_({alert.id for _, alert in wanted}))
                )}
                now = self.clock()
                rows = {
                    (subscription.name, alert.id, alert.version): {
                        "subscription": subscription.name, "story_id": alert.id, "version": alert.version,
                        "alert": alert.model_dump(mode="json"), "added_at": now, "digest": None,
                    }
                    for subscription, alert in wanted
                    if subscription.channel("email").updates or (subscription.name, alert.id) not in collected
                }
                if rows:
                    connection.execute(insert_missing(self.engine, items, key=["subscription", "story_id", "version"]), list(rows.values()))
        except sa.exc.SQLAlchemyError as exc:
            raise SinkError(f"{self.name}: cannot collect digest stories: {exc.__class__.__name__}: {exc}") from exc

    def prepare_due(self) -> None:
        """Turn the stories each digest subscription collected before its latest period end
        into one message in the outbox."""
        now = self.clock()
        for subscription in self.subscribed():
            channel = subscription.channel("email")
            if channel.mode != DIGEST or (ended := period_end(channel.schedule, now)) is None:
                continue
            items = email_digest_items
            waiting = (items.c.subscription == subscription.name, items.c.digest.is_(None), items.c.added_at <= ended)
            with self.engine.begin() as connection:
                collected = connection.execute(sa.select(items.c.alert).where(*waiting).order_by(items.c.added_at)).scalars().all()
                if not collected:
                    continue  # nothing new: no digest
                stories = list({story.id: story for story in map(Alert.model_validate, collected)}.values())  # newest version each
                key = f"digest-{ended.astimezone(UTC):%Y%m%dT%H%MZ}"
                message = compose_digest(stories, subscription.name, key, ended, channel.to, self.server)
                row = outbox_row(
                    subscription.name, key, DIGEST, len(stories), key_version=1,
                    recipients=", ".join(channel.to), message=message.as_string(),
                )
                connection.execute(insert_missing(self.engine, self.table, key=["id"]), [row])
                connection.execute(sa.update(items).where(*waiting).values(digest=row["id"]))

    def contents(self, subscription: Subscription, alert: Alert, event: str) -> dict:
        recipients = subscription.channel("email").to
        message = compose(alert, subscription.name, event, recipients, self.server)
        return {"recipients": ", ".join(recipients), "message": message.as_string()}

    def destination(self, row: dict) -> str:
        return row["recipients"]

    def payload(self, row: dict) -> str:
        return row["message"]

    def send(self, row: dict) -> str | None:
        """Hand one message to the SMTP server; ``None`` when it took it, else why not."""
        server = self.server
        password = os.environ.get(server.password_env, "") if server.password_env else None
        if server.password_env and not password:
            return f"no SMTP password: the environment variable {server.password_env} is not set"
        try:
            addresses = resolve(server.host, server.port)
        except OSError as exc:
            return f"cannot resolve {server.host}: {exc}"
        allowed = [address for address in addresses if self.policy.refusal(address) is None]
        if not allowed:
            return f"refused: {server.host} is {', '.join(addresses)}: {self.policy.refusal(addresses[0]) if addresses else 'no address'}"
        smtp_class = _GuardedSMTPOverTLS if server.security == "tls" else _GuardedSMTP
        try:
            with smtp_class(allowed[0], timeout=self.options.timeout_seconds) as smtp:
                smtp.connect(server.host, server.port)
                if server.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if server.username:
                    smtp.login(server.username, password or "")
                # As text: smtplib ends its lines in CRLF (the message is ASCII: headers and
                # parts are encoded), which it does not do for bytes.
                refused = smtp.sendmail(server.sender, row["recipients"].split(", "), row["message"])
        except (smtplib.SMTPException, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if refused:  # the others have it: sending again would repeat it to them
            log.warning("email subscription=%s: the server refused %s", row["subscription"], ", ".join(sorted(refused)))
        return None


class _GuardedSMTP(smtplib.SMTP):
    """SMTP to one checked address, whatever the name given to ``connect`` resolves to now
    (the name still goes to STARTTLS, which verifies it)."""

    def __init__(self, address: str, *, timeout: float):
        self._address = address
        super().__init__(timeout=timeout)

    def _get_socket(self, host, port, timeout):
        return socket.create_connection((self._address, port), timeout, self.source_address)


class _GuardedSMTPOverTLS(smtplib.SMTP_SSL, _GuardedSMTP):
    """SMTP over TLS from the start (port 465) to one checked address."""

    def __init__(self, address: str, *, timeout: float):
        self._address = address
        smtplib.SMTP_SSL.__init__(self, timeout=timeout, context=ssl.create_default_context())


def compose(story: Alert, subscription: str, event: str, recipients: Sequence[str], server: EmailSettings) -> EmailMessage:
    """The message telling ``recipients`` of ``story`` (``event``: created or updated)."""
    message = _headed(
        f"Updated: {story.heading}" if event == UPDATED else story.heading, subscription,
        f"{story.id}.v{story.version}.{subscription}", recipients, server,
    )
    message.set_content(story_text(story))
    message.add_alternative(_document(story_html(story)), subtype="html")
    return message


def period_end(schedule: DigestSchedule, now: datetime) -> datetime | None:
    """The latest end of a ``schedule`` period at or before ``now`` (``None`` before the first)."""
    hour, minute = (int(part) for part in schedule.at.split(":"))
    trigger = CronTrigger(
        hour=hour, minute=minute, day_of_week=schedule.on[:3] if schedule.every == "week" else "*", timezone=schedule.timezone,
    )
    span = timedelta(days=7 if schedule.every == "week" else 1, minutes=1)
    latest = None
    moment = trigger.get_next_fire_time(None, now - span)
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return latest


def compose_digest(
    stories: Sequence[Alert], subscription: str, key: str, ended: datetime, recipients: Sequence[str], server: EmailSettings,
) -> EmailMessage:
    """One message of ``stories``, the subscription's new ones in the period that ``ended``."""
    count = f"{len(stories)} {'story' if len(stories) == 1 else 'stories'}"
    message = _headed(
        f"Amur digest, {subscription}: {count} to {ended:%d %B %Y %H:%M} {ended.tzname()}", subscription,
        f"{key}.{subscription}", recipients, server,
    )
    separator = "\n\n" + "─" * 40 + "\n\n"
    message.set_content(f"{count} for {subscription}.{separator}" + separator.join(
        f"{story.heading}\n{story.url}\n\n{story_text(story)}" for story in stories
    ))
    message.add_alternative(_document(f"<p>{html.escape(count)} for {html.escape(subscription)}.</p>" + "<hr>".join(
        story_html(story) for story in stories
    )), subtype="html")
    return message


def _headed(subject: str, subscription: str, message_key: str, recipients: Sequence[str], server: EmailSettings) -> EmailMessage:
    """A message with its headers: ``message_key`` makes its Message-ID."""
    domain = server.sender.rsplit("@", 1)[1]
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())  # no line break reaches a header
    message["From"] = server.sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(utc_now())
    message["Message-ID"] = f"<{message_key}@{domain}>"
    message["List-Id"] = f"Amur {subscription} <{subscription}.amur.{domain}>"
    unsubscribe = server.unsubscribe or f"mailto:{server.sender}"
    if unsubscribe.startswith("mailto:"):
        unsubscribe += f"?subject={quote(f'unsubscribe {subscription}')}"
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    return message


def _document(body: str) -> str:
    return f'<!doctype html><html><head><meta charset="utf-8"></head><body>{body}</body></html>'
