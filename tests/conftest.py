"""Shared test set-up. Everything runs offline; fixtures live in plugin modules by room."""

from __future__ import annotations

import os
import tempfile

# Set before any HF import: tests must never reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PTB_TIMEDELTA", "1")
# A stray autoreply.toml in the working directory must not leak into tests.
_EMPTY_TOML = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)  # noqa: SIM115
_EMPTY_TOML.close()
os.environ.setdefault("AUTOREPLY_CONFIG", _EMPTY_TOML.name)

pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.database",
]
