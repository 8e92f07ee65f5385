"""Simulated outcomes for the worked example of docs/experiments.md.

Reads the output of `scoring score ... --experiment calling-ab.yaml` and writes
outcomes.csv: one row per user (`id`) with `called` (1 when the user called). A user
calls with probability 0.1 + 0.4 * (the score they were served) ** 2, drawn with a fixed
seed, so the run is the same every time.

    python simulate_outcomes.py scored.csv outcomes.csv
"""

import csv
import random
import sys


def main(scored: str, outcomes: str) -> None:
    draw = random.Random(17)
    with open(scored, newline="") as source, open(outcomes, "w", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(["id", "called"])
        for row in csv.DictReader(source):
            served = float(row["score"])
            writer.writerow([row["id"], int(draw.random() < 0.1 + 0.4 * served**2)])


if __name__ == "__main__":
    main(*sys.argv[1:3])
