"""Links and @mentions in a draft that the account does not allow.

A reply that sends users to an unknown site or tags a stranger speaks for the brand, so every
link goes to review unless its domain (or a parent domain) is in `allowed_domains`, and every
@mention unless it is the account's own handle or in `allowed_handles`. With empty lists no
link and no mention passes. E-mail addresses are the PII check's business, not links.
"""

from __future__ import annotations

import re
from typing import ClassVar
from urllib.parse import urlsplit

from bot.safety.context import CheckContext
from bot.safety.registry import ContextCheck, Stage

# Bare domains ("shop.example.com/returns") count only with a TLD from this list, so that
# "e.g.", "v2.0" or "file.txt" are not links.
_TLDS = (
    "com|net|org|info|biz|io|co|ai|app|dev|me|ly|gl|gg|tv|xyz|shop|store|online|site|link|"
    "club|live|news|blog|page|uk|us|ca|au|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|ru|ua|"
    "in|jp|cn|br|mx|ie|nz|eu|tk|cc|ws|to|su"
)
_SCHEME_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`]+", re.IGNORECASE)
_BARE_DOMAIN = re.compile(
    r"(?<![\w@./-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:" + _TLDS + r")"
    r"(?![\w@-]|\.\w)(?:/[^\s<>\"'`]*)?",
    re.IGNORECASE,
)
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_]{2,32})\b(?![.@-]\w)")
_TRAILER = ".,;:!?)]}'\""


def link_hosts(text: str) -> list[str]:
    """The host of every link in `text`, lower-cased, without a leading "www."."""
    hosts = []
    for match in _SCHEME_URL.finditer(text):
        url = match.group().rstrip(_TRAILER)
        if not url.lower().startswith("http"):
            url = "http://" + url
        hosts.append(urlsplit(url).hostname or "")
    text = _SCHEME_URL.sub(" ", text)  # a URL's own host must not count twice
    hosts.extend(m.group().rstrip(_TRAILER).split("/")[0] for m in _BARE_DOMAIN.finditer(text))
    return [h.lower().removeprefix("www.") for h in hosts]


def mentions(text: str) -> list[str]:
    """@handles in `text`, without the '@', case-folded."""
    return [m.group(1).casefold() for m in _MENTION.finditer(text)]


def domain_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in allowed)


class LinkCheck(ContextCheck):
    name = "links"
    stages: ClassVar[frozenset[Stage]] = frozenset({"draft"})
    flags = ("url_not_allowed", "mention_not_allowed")

    def check_with(self, text: str, context: CheckContext) -> tuple[str, ...]:
        rules = context.rules
        found = []
        if "." in text and any(
            not domain_allowed(host, rules.allowed_domains) for host in link_hosts(text)
        ):
            found.append("url_not_allowed")
        if "@" in text:
            allowed = {h.casefold() for h in rules.allowed_handles}
            if rules.own_handle:
                allowed.add(rules.own_handle.casefold())
            if any(handle not in allowed for handle in mentions(text)):
                found.append("mention_not_allowed")
        return tuple(found)
