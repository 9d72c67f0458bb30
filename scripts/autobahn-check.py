"""Compares the Autobahn TestSuite's reports with the expected results.

Usage: autobahn-check.py EXPECTED REPORTS [--table] [--with MORE]

EXPECTED (and MORE, when given: the long cases that only the full run
runs, merged into EXPECTED) maps each side ("server": the echo endpoint under fuzzingclient,
"client": the client under fuzzingserver) to {case id: behavior}. REPORTS
holds the suite's `server/index.json` and `client/index.json`. Every case
must be OK, NON-STRICT or INFORMATIONAL (UNIMPLEMENTED only for the
permessage-deflate cases 12.x and 13.x), its closing behavior must not have
failed, and both must match what is expected; any difference is listed and
the exit status is 1. With --table, prints the README's summary table.
"""

import json
import os
import sys
from collections import Counter

AGENT = "tether"
SIDES = ("server", "client")
ACCEPTED = ("OK", "NON-STRICT", "INFORMATIONAL")
CLOSE_ACCEPTED = ("OK", "INFORMATIONAL")
COLUMNS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


def case_key(case):
    return tuple(int(part) for part in case.split("."))


def problems(side, expected, actual):
    """Every way the reports of `side` differ from what is expected."""
    found = []
    for case in sorted(set(expected) - set(actual), key=case_key):
        found.append(f"{side} {case}: expected {expected[case]}, not run")
    for case in sorted(set(actual) - set(expected), key=case_key):
        found.append(f"{side} {case}: ran ({actual[case]['behavior']}) but is not expected")
    for case in sorted(set(expected) & set(actual), key=case_key):
        behavior = actual[case]["behavior"]
        close = actual[case]["behaviorClose"]
        deflate = case.split(".")[0] in ("12", "13")
        if behavior != expected[case]:
            found.append(f"{side} {case}: expected {expected[case]}, got {behavior}")
        if behavior not in ACCEPTED and not (behavior == "UNIMPLEMENTED" and deflate):
            found.append(f"{side} {case}: {behavior} is never acceptable")
        if close not in CLOSE_ACCEPTED:
            found.append(f"{side} {case}: closing behavior {close}")
    return found


def table(reports):
    """The README's summary: cases per category and outcome, for each side."""
    lines = [
        "| side | category | " + " | ".join(COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for side, actual in reports.items():
        counts = {}
        for case, result in actual.items():
            category = int(case.split(".")[0])
            behavior = result["behavior"]
            column = behavior if behavior in COLUMNS else "FAILED"
            counts.setdefault(category, Counter())[column] += 1
        for category in sorted(counts):
            cells = " | ".join(str(counts[category][c]) for c in COLUMNS)
            lines.append(f"| {side} | {category} | {cells} |")
    return "\n".join(lines)


def main():
    expected_path, reports_dir = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    if "--with" in sys.argv[3:]:
        more_path = sys.argv[sys.argv.index("--with") + 1]
        with open(more_path) as f:
            for side, cases in json.load(f).items():
                expected[side].update(cases)
        expected_path += " and " + more_path
    reports = {}
    for side in SIDES:
        with open(os.path.join(reports_dir, side, "index.json")) as f:
            reports[side] = json.load(f)[AGENT]
    if "--table" in sys.argv[3:]:
        print(table(reports))
        return 0
    found = []
    for side in SIDES:
        found += problems(side, expected[side], reports[side])
    for side in SIDES:
        counts = Counter(result["behavior"] for result in reports[side].values())
        summary = ", ".join(f"{n} {b}" for b, n in sorted(counts.items()))
        print(f"{side}: {len(reports[side])} cases: {summary}")
    if found:
        print(f"Autobahn results differ from {expected_path}:", file=sys.stderr)
        for line in found:
            print("  " + line, file=sys.stderr)
        return 1
    print("Autobahn results match " + expected_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
