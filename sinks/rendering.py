"""How a story reads, wherever a person reads it away from the dashboard: as text (feed
entries' ``content_text``, the text part of an email) and as HTML (Atom ``content
type="html"``, JSON Feed ``content_html``, the HTML part of an email).

Both say the same, in the same order: the original title where the headline is another, the
English gist, the lead, the parties and regions by name, the sectors by label, level, score
and figures, the evidence and every outlet's link. In HTML every text is escaped and only
http(s) URLs become links, so nothing a page or a feed carried can act in a reader.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from pipeline.core.messages import SECTOR_LABELS, Alert

__all__ = ["story_html", "story_text"]


def _named(story: Alert, ids: Sequence[str]) -> str:
    return ", ".join(story.names.get(entry_id, entry_id) for entry_id in ids) or "-"


def story_text(story: Alert) -> str:
    """The story as plain text."""
    figures = "; ".join(figure.text for figure in story.figures) or "-"
    lines = [
        *([f"Original title: {story.title}", ""] if story.heading != story.title else []),
        *([f"In English: {story.gist_en}", ""] if story.gist_en and story.gist_en != story.heading else []),
        story.summary,
        "",
        f"Russian side: {_named(story, story.russian_parties)}",
        f"Chinese side: {_named(story, story.chinese_parties)}",
        f"Regions: {_named(story, story.regions)}",
        f"Sectors: {', '.join(SECTOR_LABELS.get(sector, sector) for sector in story.sectors) or '-'}; level: {story.level or 'unknown'}; "
        f"score: {story.score:.2f}",
        f"Figures: {figures}",
    ]
    if story.evidence:
        lines += ["", "Evidence:", *(f"• {sentence}" for sentence in story.evidence)]
    lines += ["", "Reported by:", *(
        f"• {outlet.source}{f' ({outlet.language})' if outlet.language else ''}: {outlet.title} — {outlet.url}"
        for outlet in story.outlets
    )]
    return "\n".join(lines)


def story_html(story: Alert, *, headed: bool = True) -> str:
    """The story in HTML: every text escaped, links only to http(s); ``headed``: under its
    headline (a feed entry has it as its title already)."""
    def named(ids: Sequence[str]) -> str:
        return html.escape(_named(story, ids))

    def link(url: str, text: str) -> str:
        shown = html.escape(text)
        return f'<a href="{html.escape(url, quote=True)}">{shown}</a>' if url.startswith(("http://", "https://")) else shown

    facts = [
        ("Russian side", named(story.russian_parties)), ("Chinese side", named(story.chinese_parties)),
        ("Regions", named(story.regions)),
        ("Sectors", html.escape(", ".join(SECTOR_LABELS.get(sector, sector) for sector in story.sectors) or "-")),
        ("Level", html.escape(story.level or "unknown")), ("Score", f"{story.score:.2f}"),
        ("Figures", html.escape("; ".join(figure.text for figure in story.figures) or "-")),
    ]
    parts = [f"<h1>{link(story.url, story.heading)}</h1>"] if headed else []
    if story.heading != story.title:
        parts.append(f"<p>Original title: {html.escape(story.title)}</p>")
    if story.gist_en and story.gist_en != story.heading:
        parts.append(f"<p><strong>In English:</strong> {html.escape(story.gist_en)}</p>")
    parts.append(f"<p>{html.escape(story.summary)}</p>")
    parts.append("<table>" + "".join(f"<tr><th align=\"left\">{label}</th><td>{value}</td></tr>" for label, value in facts) + "</table>")
    if story.evidence:
        parts.append("<h2>Evidence</h2><ul>" + "".join(f"<li>{html.escape(sentence)}</li>" for sentence in story.evidence) + "</ul>")
    outlets = "".join(
        f"<li>{html.escape(outlet.source)}{f' ({html.escape(outlet.language)})' if outlet.language else ''}: "
        f"{link(outlet.url, outlet.title)}</li>"
        for outlet in story.outlets
    )
    parts.append(f"<h2>Reported by</h2><ul>{outlets}</ul>")
    return "".join(parts)
