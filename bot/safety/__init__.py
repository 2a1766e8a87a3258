"""Safety checks for incoming messages and drafted replies.

Check families register here, once, in the order their flags are reported. A new family
subclasses `bot.safety.registry.Check` and adds one `register_check` line below.
"""

from __future__ import annotations

from bot.safety.language import LanguageCheck
from bot.safety.length import LengthCheck
from bot.safety.pii import PiiCheck
from bot.safety.registry import Check, Limits, register_check, registered_checks

register_check(PiiCheck)
register_check(LengthCheck)
register_check(LanguageCheck)

__all__ = ["Check", "Limits", "register_check", "registered_checks"]
