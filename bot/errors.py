"""The project's exceptions. Every message says what to do next.

The CLI prints `error: <message>` for any AutoreplyError and exits with `exit_code`, without a
stack trace: these are conditions an operator fixes, not bugs.
"""

from __future__ import annotations


def as_sentence(text: str) -> str:
    """A service message (written in lower case, to be embedded: "nothing changed: {exc}")
    shown on its own, capitalised. Not for notes that may start with a name, such as an
    adapter's "shop-reply-v2 is now active", which stay as written."""
    return text[:1].upper() + text[1:]


class AutoreplyError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(AutoreplyError):
    """A setting is missing or invalid."""


class ModelLoadError(AutoreplyError):
    """The base model, tokenizer or an adapter could not be loaded."""


class StorageError(AutoreplyError):
    """The database cannot be reached or is not at the expected schema."""


class NotFoundError(AutoreplyError):
    """A referenced row (draft, message, adapter) does not exist."""


class InvalidStateError(AutoreplyError):
    """An operation does not apply to the current state (e.g. approving a sent draft)."""


class PermissionDeniedError(AutoreplyError):
    """The actor may not act on that account (the refusal is audited)."""

    exit_code = 3


class InputError(AutoreplyError):
    """User-supplied input (a file, a line, an edit) cannot be used as given."""

    exit_code = 2


class ChannelError(AutoreplyError):
    """A platform adapter failed in a way the operator must fix (bad token, unreachable API)."""


class GenerationError(AutoreplyError):
    """The model failed while drafting a reply."""
