"""The public checks' data: expected values and the values of the usual mistakes.

The public checks (fr_utils/checks/) give learners helpful messages in their
own kernel, so they need the right answer for their fixed, public inputs, and
what each usual mistake returns there (to name the mistake).  They read these
numbers from ``fr_utils/checks/expected.json``, a data file that this module
writes from the references in grader/references.py; the references themselves
never ship with fr_utils.

    python -m grader.expected            # rewrite fr_utils/checks/expected.json
    python -m grader.expected --check    # exit 1 if the file is out of date

tests/test_grader_decisions.py checks that the stored file equals what this
module computes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from grader import references as ref

TARGET = Path(__file__).resolve().parents[1] / "fr_utils" / "checks" / "expected.json"

def _floats(values) -> list:
    return [float(x) for x in np.asarray(values, dtype=np.float64).ravel()]


def triplet_loss_data() -> dict:
    from fr_utils.checks import triplet_loss as public

    data = {}
    for key, (anchor, positive, negative, alpha) in public.LOSS_CASES.items():
        used = 0.2 if alpha is None else alpha
        data[key] = {
            "expected": ref.triplet_loss(anchor, positive, negative, used),
            "mistakes": ref.triplet_loss_mistakes(anchor, positive, negative, used),
        }
    data["triplet_loss/batch_sum"]["per_triplet"] = _floats(
        ref.triplet_losses(*public.LOSS_CASES["triplet_loss/batch_sum"][:3], 0.2))
    anchor, positive, negative = (x.numpy() for x in public.seeded_triplets())
    data["triplet_loss/seeded"] = {
        "expected": ref.triplet_loss(anchor, positive, negative, 0.2),
        "mistakes": ref.triplet_loss_mistakes(anchor, positive, negative, 0.2),
    }
    for key, (anchor, positive, negatives, alpha) in public.SEMI_HARD_CASES.items():
        used = 0.2 if alpha is None else alpha
        d_ap, d_an = ref.squared_distances(anchor, positive, negatives)
        data[key] = {
            "expected": ref.semi_hard_negatives(anchor, positive, negatives, used).tolist(),
            "plain_distances": ref.semi_hard_negatives(anchor, positive, negatives, used, squared=False).tolist(),
            "default_alpha": ref.semi_hard_negatives(anchor, positive, negatives, 0.2).tolist(),
            "d_ap": _floats(d_ap),
            "d_an": [_floats(row) for row in d_an],
        }
    return data


def verification_data() -> dict:
    from fr_utils.checks import verification as public

    data = {}
    for key, (far, k) in public.FAR_CASES.items():
        data[key] = {"expected": ref.far_1_to_k(far, k), "mistakes": ref.far_mistakes(far, k)}
    for key, (far, budget) in public.MAX_ENROLLED_CASES.items():
        want = ref.max_enrolled(far, budget)
        data[key] = {
            "expected": want,
            # the system's FAR with one person fewer/more, for the messages
            "far_at": {str(k): ref.far_1_to_k(far, k) for k in range(max(want - 1, 0), want + 3)},
        }
    return data


PRODUCERS = [triplet_loss_data, verification_data]


def expected_data() -> dict:
    data: dict = {}
    for produce in PRODUCERS:
        data.update(produce())
    return data


def render(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether the file is up to date")
    args = parser.parse_args(argv)
    text = render(expected_data())
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python -m grader.expected", file=sys.stderr)
            return 1
        print(f"{TARGET} is up to date")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
