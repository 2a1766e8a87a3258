"""The web dashboard: moderators work the queue, operators watch the bot (FastAPI + Jinja2).

A thin room like the CLI and the Telegram moderators' chat: every action goes through the one
ModerationService as an `Actor(kind=ActorKind.WEB)`, so it is checked and audited in one place.
Templates and assets ship in the package; the pages load nothing from the internet.
"""
