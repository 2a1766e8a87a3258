"""Safety checks for incoming messages and drafted replies.

Check families register here, once, in the order their flags are reported. A new family
subclasses `bot.safety.registry.Check` and adds one `register_check` line below.
"""

from __future__ import annotations

from bot.safety.abuse import AbuseCheck
from bot.safety.address import AddressCheck
from bot.safety.blocklist import BlocklistCheck
from bot.safety.commitments import CommitmentCheck
from bot.safety.echo import InsultEchoCheck
from bot.safety.harmful import HarmfulCheck
from bot.safety.injection import InjectionCheck
from bot.safety.language import LanguageCheck
from bot.safety.length import LengthCheck
from bot.safety.links import LinkCheck
from bot.safety.persona_leak import PersonaLeakCheck
from bot.safety.pii import PiiCheck
from bot.safety.quality import QualityCheck
from bot.safety.registry import Check, ContextCheck, Limits, register_check, registered_checks
from bot.safety.spam import SpamCheck

register_check(PiiCheck)
register_check(LengthCheck)
register_check(LanguageCheck)
register_check(InjectionCheck)
register_check(HarmfulCheck)
register_check(AbuseCheck)
register_check(SpamCheck)
# Draft-only checks (the gate's output side).
register_check(AddressCheck)
register_check(QualityCheck)
register_check(LinkCheck)
register_check(BlocklistCheck)
register_check(InsultEchoCheck)
register_check(PersonaLeakCheck)
register_check(CommitmentCheck)

__all__ = ["Check", "ContextCheck", "Limits", "register_check", "registered_checks"]
