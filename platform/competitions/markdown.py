"""Organizers' Markdown, rendered with markdown-it-py and sanitised with nh3 (no script, no event handler,
no javascript: or data: link): the one function every page that shows organizer-written text calls."""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# CommonMark with tables and strikethrough; raw HTML is parsed so that nh3, not the parser, decides what stays.
_PARSER = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(["table", "strikethrough"])
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "details", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub", "summary", "sup", "table", "tbody", "td",
    "th", "thead", "tr", "ul",
}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "td": {"align"}, "th": {"align"},
               "ol": {"start"}, "code": {"class"}}


def render_markdown(text: str) -> SafeString:
    html = _PARSER.render(text or "")
    clean = nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                      link_rel="noopener noreferrer nofollow", clean_content_tags={"script", "style"})
    return mark_safe(clean)  # noqa: S308 - nh3 has just sanitised it
