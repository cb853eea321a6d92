"""``kind: memo``: articles written out in the source's own entry, under ``memos:``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from pipeline.core.connector import Item, Listing, PollingConnector
from pipeline.core.messages import Article, article_id, utc_now
from pipeline.core.settings import SourceOptions


class Memo(BaseModel):
    slug: str = Field(pattern=r"^[a-z0-9-]+$")
    title: str
    text: str


class MemoOptions(SourceOptions):
    memos: list[Memo] = Field(min_length=1)

    @property
    def location(self) -> str:
        return f"memo:{self.memos[0].slug}"


class MemoConnector(PollingConnector):
    Options = MemoOptions

    @classmethod
    def from_source(cls, source, context):
        return cls(source, context.state)

    def list_items(self, etag, last_modified) -> Listing:
        return Listing([Item(url=f"https://memo.example/{memo.slug}", title=memo.title) for memo in self.source.options.memos])

    def fetch_article(self, item: Item) -> Article:
        memo = next(memo for memo in self.source.options.memos if item.url.endswith(f"/{memo.slug}"))
        return Article(
            id=article_id(item.url), url=item.url, source=self.name, title=memo.title, text=memo.text,
            language="en", fetched_at=utc_now(),
        )
