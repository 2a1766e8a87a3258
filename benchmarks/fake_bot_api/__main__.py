"""``python -m benchmarks.fake_bot_api``: serve the fake until SIGTERM (see :mod:`.cli`)."""

from benchmarks.fake_bot_api.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
