"""Child process of `ProfanityCheckWorker`: JSON list of texts in, JSON list of scores out.

Loads the model before reading anything, so the load overlaps with the parent's work.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    # scikit-learn imports pandas when it is installed (the training extra brings it) only to
    # recognise DataFrames; scoring a list of strings never needs it, and its import is ~0.25 s
    # of this process's start, which `autoreply classify` waits for. None in sys.modules makes
    # `import pandas` raise ImportError, the path scikit-learn takes when pandas is absent.
    sys.modules.setdefault("pandas", None)  # type: ignore[arg-type]
    from profanity_check import predict_prob  # the slow part: scikit-learn + joblib load

    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        texts = json.loads(line)
        scores = [float(p) for p in predict_prob(texts)] if texts else []
        out.write(json.dumps(scores).encode("ascii") + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    code = main()
    # Skip the interpreter's teardown of scipy/scikit-learn (~0.15 s): the parent waits for this
    # exit, and there is nothing left to flush or release.
    os._exit(code)
