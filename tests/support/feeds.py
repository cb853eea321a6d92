"""The feeds sink as the sinks stage runs it: after the alerts store, which it renders from."""

from __future__ import annotations

from sqlalchemy import Engine

from pipeline.core.messages import Alert
from pipeline.core.sink import Rejection
from pipeline.core.subscriptions import SubscriptionsWatcher
from sinks.alerts import AlertsSink
from sinks.subscription_feeds import FeedsOptions, SubscriptionFeedsSink


class StoredFeeds:
    """The ``alerts`` and ``feeds`` sinks, each story added to both and flushed in the order
    amur.yaml's ``sinks:`` lists them."""

    def __init__(self, engine: Engine, options: FeedsOptions, subscriptions: SubscriptionsWatcher):
        self.store = AlertsSink(engine)
        self.feeds = SubscriptionFeedsSink(engine, options, subscriptions)
        self.subscriptions = subscriptions

    def setup(self) -> None:
        self.store.setup()
        self.feeds.setup()

    def add(self, story: Alert) -> None:
        self.store.add(story)
        self.feeds.add(story)

    def flush(self) -> list[Rejection]:
        return self.store.flush() + self.feeds.flush()

    def close(self) -> None:
        self.feeds.close()
        self.store.close()
