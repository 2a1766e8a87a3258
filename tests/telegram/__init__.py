"""Tests of the Telegram adapter and the fake Bot API server they run against."""
