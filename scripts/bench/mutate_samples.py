#!/usr/bin/env python3
"""Mutated app-format samples for checking that a rubric optimisation changed no result.

Takes real-looking samples (default: data/samples.jsonl) and plants what the rubric's fast paths
special-case into titles, features, descriptions and product names: lexicon phrases, URLs, e-mails,
phone numbers, prices, years, street addresses and near misses ("12 stainless steel", "draw."),
HTML and entities, emoji, non-ASCII letters and punctuation, whitespace at the edges, ALL CAPS,
empty and extra features, automotive categories; half the records are written with non-ASCII
escaped. Deterministic for a seed.

    python3 scripts/bench/mutate_samples.py --n 20000 --out /tmp/stress.jsonl
    target/release/examples/bench_data --input /tmp/stress.jsonl --only full --digest

Equal `report_digest` values from two builds mean they read and scored every record the same.
"""
import argparse
import json
import random

BITS = [
    "best seller", "FREE SHIPPING", "www.shop.com", "call 555-123-4567", "$19.99", "2024",
    "visit 12 Maple Grove Street", "12 stainless steel", "draw. Then", "Amazon", "lorem ipsum",
    "\u2122", "\U0001F600", "\u00e9", "\u2019s", "\u2014", "&amp;", "<b>bold</b>",
    "<script>x</script>", "\n", "  ", "\t", "#1", "50% off", "it's", "all-weather", "USB", "LED",
    "HDMI", "Stra\u00dfe", "\u0130stanbul", "\u4e2d\u6587", "a", "the", "of", "Drive", "St.",
    "Suite 5", "info@x.io", "1.3", "EUR 5", "x-y", "--", "'",
]


def mutate(rng, s):
    for _ in range(rng.randint(0, 4)):
        i = rng.randint(0, len(s))
        s = s[:i] + rng.choice(BITS) + s[i:]
    if rng.random() < 0.1:
        s = s.upper()
    if rng.random() < 0.05:
        s = " " + s + " "
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="data/samples.jsonl")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    with open(a.source, encoding="utf-8") as f:
        src = [json.loads(line) for line in f if line.strip()]
    with open(a.out, "w", encoding="utf-8") as f:
        for _ in range(a.n):
            r = json.loads(json.dumps(rng.choice(src)))
            o = r["output"]
            o["title"] = mutate(rng, o["title"])
            feats = o["features_formatted"][: rng.randint(0, 12)]
            o["features_formatted"] = [mutate(rng, x) for x in feats]
            if rng.random() < 0.3:
                o["features_formatted"] += [mutate(rng, "") for _ in range(rng.randint(0, 3))]
            o["description"] = mutate(rng, o["description"])
            if rng.random() < 0.3:
                r["input"]["product_name"] = mutate(rng, r["input"]["product_name"])
            if rng.random() < 0.2:
                r["input"]["category"] = "Automotive > Parts"
            f.write(json.dumps(r, ensure_ascii=rng.random() < 0.5) + "\n")


if __name__ == "__main__":
    main()
