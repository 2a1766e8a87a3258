"""End-to-end timing of `autoreply classify` against bare baselines measured in the same run.

Every figure is the wall time of a fresh subprocess, Python start-up included, because start-up
(the toxicity model import) is most of the cost. Run: `python -m benchmarks.classify_bench`.
"""

from __future__ import annotations

import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

_OPENERS = ["", "", "", "hey ", "hi ", "@ShopCo ", "ok so ", "omg ", "ugh ", "yo "]
_BODIES = [
    "where is my order #{n}??",
    "do you ship to {place}?",
    "my {item} arrived broken, this is the {n2}th time",
    "love the new {item} 😍 best purchase this year",
    "can you cancel order {n} please",
    "still waiting on my refund, {n2} days now",
    "thank you for the quick reply!",
    "is the {item} back in stock in size {size}",
    "follow me for free followers!!! link in bio 🔥",
    "you people are useless idiots",
    "what time do you open on sundays",
    "pls dm me, need to change my address to {n2} {place} road",
    "call me on 07700 9{n2:05d}",
    "the {item} is ok i guess",
    "worst customer service ever smh",
    "good morning ☀️",
    "earn $500/day from home, DM for details",
    "lol same",
    "why is the app so slow today",
    "shoutout to the team at the {place} store 🙌",
]
_ITEMS = ["hoodie", "mug", "charger", "candle", "headphones", "jacket", "lamp", "sneakers"]
_PLACES = ["canada", "ireland", "Leeds", "Brighton", "texas", "berlin", "Manchester"]
_ENDINGS = ["", "", "", " 🙃", " lol", "!!", " #help", " tbh", "..."]


def make_lines(count: int, seed: int = 1234) -> list[str]:
    """`count` support-style messages, the same for the same seed."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        body = rng.choice(_BODIES).format(
            n=rng.randint(10_000, 99_999),
            n2=rng.randint(2, 99),
            item=rng.choice(_ITEMS),
            place=rng.choice(_PLACES),
            size=rng.choice("SMLX"),
        )
        text = rng.choice(_OPENERS) + body + rng.choice(_ENDINGS)
        lines.append(text.upper() if rng.random() < 0.05 else text)
    return lines


def _time(cmd: Sequence[str], stdin_path: Path | None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys of the whole process tree) of one run."""
    with open(stdin_path or os.devnull, "rb") as stdin:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def run(
    lines: int = 10_000, repeats: int = 5, command: Sequence[str] | None = None
) -> dict[str, object]:
    """Time the command on `lines` generated lines; returns {case: {median_s, min_s, ...}}.

    `command` is the classify command reading stdin (default `python -m bot.classify_cmd`;
    the CLI can pass `[".venv/bin/autoreply", "classify"]`).
    """
    py = sys.executable
    cmd = list(command) if command else [py, "-m", "bot.classify_cmd"]
    vader_loop = (
        "import sys\nfrom vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer as S\n"
        "a = S()\nfor line in sys.stdin: a.polarity_scores(line.rstrip('\\n'))"
    )
    serial = (
        "import sys\nfrom bot.classify_cmd import run_classify\n"
        "from bot.safety.toxicity import ProfanityCheckScorer\n"
        "from bot.config import DEFAULT_INTENTS\n"
        "run_classify(sys.stdin.buffer, sys.stdout, intent_labels=DEFAULT_INTENTS,"
        " toxicity=ProfanityCheckScorer())"
    )
    cases = {
        "python -c pass": ([py, "-c", "pass"], False),
        "import profanity_check": ([py, "-c", "import profanity_check"], False),
        "bare VADER loop": ([py, "-c", vader_loop], True),
        "classify, in-process model": ([py, "-c", serial], True),
        "classify (worker process)": (cmd, True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.txt"
        path.write_text("\n".join(make_lines(lines)) + "\n", encoding="utf-8")
        _time(cmd, path)  # warm the page cache and .pyc files
        results: dict[str, object] = {
            "lines": lines,
            "repeats": repeats,
            "load_average": round(os.getloadavg()[0], 2),  # others' work skews wall times
        }
        # Cases take turns within each round so that load from elsewhere hits all alike.
        timings: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(repeats):
            for name, (argv, feed) in cases.items():
                timings[name].append(_time(argv, path if feed else None))
        for name, (_, feed) in cases.items():
            walls = [wall for wall, _ in timings[name]]
            cpus = [cpu for _, cpu in timings[name]]
            median = statistics.median(walls)
            results[name] = {
                "median_s": round(median, 3),
                "min_s": round(min(walls), 3),
                "cpu_s": round(statistics.median(cpus), 3),
                "lines_per_s": round(lines / median) if feed else None,
            }
    return results


def format_table(results: dict[str, object]) -> str:
    rows = [f"{'case':<30} {'runs':>4} {'median s':>9} {'min s':>7} {'cpu s':>7} {'lines/s':>9}"]
    for name, value in results.items():
        if isinstance(value, dict):
            rate = "-" if value["lines_per_s"] is None else value["lines_per_s"]
            rows.append(
                f"{name:<30} {results['repeats']:>4} {value['median_s']:>9.3f} "
                f"{value['min_s']:>7.3f} {value['cpu_s']:>7.3f} {rate:>9}"
            )
    return "\n".join(rows)


def main() -> None:
    results = run()
    print(f"{results['lines']} lines, wall time per fresh process (start-up included);")
    print(f"cpu s = user + sys of the process tree; load average now {os.getloadavg()[0]:.2f}")
    print(format_table(results))


if __name__ == "__main__":
    main()
