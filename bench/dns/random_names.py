#!/usr/bin/python3
"""random_names.py LIVE_QUERIES OUT [--lines N] [--seed S]

Writes a dnsperf query file in which every second query is for a random name
that was never registered (`x<hex>.service.discovery A`, each name once) and the
others cycle through LIVE_QUERIES (the harness's live mix). Used by
bench/dns/random-names.sh to measure what absent names cost (docs/performance.md).
"""
import argparse
import random


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("live")
    parser.add_argument("out")
    parser.add_argument("--lines", type=int, default=6_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with open(args.live) as f:
        live = [line for line in f if line.strip() and not line.startswith(";")]
    rng = random.Random(args.seed)
    seen = set()
    with open(args.out, "w") as out:
        for i in range(args.lines):
            if i % 2 == 0:
                out.write(live[(i // 2) % len(live)])
                continue
            while True:
                name = "x%012x" % rng.getrandbits(48)
                if name not in seen:
                    seen.add(name)
                    break
            out.write(f"{name}.service.discovery A\n")


if __name__ == "__main__":
    main()
