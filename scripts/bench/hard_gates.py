#!/usr/bin/env python3
"""The Python baseline of the data benchmark: the rubric's length hard gates, written the
straightforward way (stdlib only, one core).

For every line of a JSONL file of app-format samples: json.loads, then
  - title: 50-100 characters (after strip),
  - features: 3-10 of them, each 1-80 characters (after strip),
  - description: at least 150 words once HTML tags are removed (regex) and entities decoded
    (html.unescape); a word is a whitespace-separated run holding a letter or digit.
Lines that are not valid app records fail. Prints samples/s and the pass count as JSON.

Words are counted the way a Python programmer would make it fast, so that the baseline is a
fair one: on ASCII text, deleting the punctuation (str.translate) leaves exactly the runs that
hold a letter or digit for str.split to count; other text takes the per-character test. (The
per-character test on every word, this script's first version, ran 3.3 times slower and made
the Rust side look that much better.)

Usage: hard_gates.py FILE [--expect-passed N]
  --expect-passed N   the Rust pass count on the same file: exit 1 when the counts differ.
"""

import html
import json
import re
import sys
import time

TAG = re.compile(r"<[A-Za-z/!][^>]*>")
# Every ASCII character that is neither a letter, a digit nor whitespace, to delete.
PUNCTUATION = str.maketrans(
    "", "", "".join(c for c in map(chr, range(128)) if not (c.isalnum() or c.isspace()))
)


def description_words(description):
    visible = html.unescape(TAG.sub(" ", description))
    if visible.isascii():
        return len(visible.translate(PUNCTUATION).split())
    return sum(1 for w in visible.split() if any(c.isalnum() for c in w))


def passes(record):
    out = record["output"]
    title = out["title"].strip()
    features = out["features_formatted"]
    return (
        50 <= len(title) <= 100
        and 3 <= len(features) <= 10
        and all(1 <= len(f.strip()) <= 80 for f in features)
        and description_words(out["description"]) >= 150
    )


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    path = args[0]
    expect = None
    if "--expect-passed" in args:
        expect = int(args[args.index("--expect-passed") + 1])

    samples = passed = 0
    start = time.perf_counter()
    cpu = time.process_time()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            samples += 1
            try:
                ok = passes(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                ok = False
            passed += ok
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu

    result = {
        "implementation": "python",
        "python": sys.version.split()[0],
        "threads": 1,
        "samples": samples,
        "passed": passed,
        "seconds": seconds,
        "samples_per_s": samples / seconds if seconds else 0.0,
        "cpu_seconds": cpu_seconds,
        "samples_per_cpu_s": samples / cpu_seconds if cpu_seconds else 0.0,
    }
    if expect is not None:
        result["rust_passed"] = expect
        result["agree"] = expect == passed
    print(json.dumps(result, indent=2))
    if expect is not None and expect != passed:
        print(
            f"hard_gates.py: pass counts disagree: Python {passed}, Rust {expect}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
