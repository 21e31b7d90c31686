#!/usr/bin/python3
"""Prints the final table of `make bench` from the rows the benchmarks recorded.

`summary.py SUMMARY.jsonl [NAME=EXIT_CODE ...]`: one row per figure (reference, ours,
ratio, target, ok/MISSED), then one line per benchmark script and how it ended.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def figure(value, unit):
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{value / 2**20:.2f} MiB"
    if unit == "MB":
        return f"{value:.0f} MB"
    return benchlib.seconds(value)


def reported(row):
    """A figure printed for information, with no target to meet."""
    return row["met"] is None and row["ours"] is not None and row["target"] == "(reported)"


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: summary.py SUMMARY.jsonl [NAME=EXIT_CODE ...]")
    rows = []
    if os.path.exists(sys.argv[1]):
        with open(sys.argv[1], encoding="utf-8") as source:
            rows = [json.loads(line) for line in source if line.strip()]
    table = []
    for row in rows:
        value = row["value"]
        if value is None or row["reference"] is None:
            # No reference tool: the figure itself is in the debstage column.
            ratio = "-"
        elif row["unit"] == "bytes":
            ratio = f"{value:.4f}"
        else:
            ratio = f"{value:.2f}x"
        table.append([
            row["benchmark"],
            row["metric"],
            f"{row['reference_name']} {figure(row['reference'], row['unit'])}",
            figure(row["ours"], row["unit"]),
            ratio,
            row["target"],
            "reported" if reported(row) else benchlib.status(row["met"]),
        ])
    print("\n== Summary (ratio = debstage / reference, medians of the same run)")
    print(benchlib.table(["benchmark", "metric", "reference", "debstage", "ratio", "target", "status"], table))
    for argument in sys.argv[2:]:
        name, _, code = argument.partition("=")
        if code == "0":
            verdict = "ran"
        elif code == "skipped":
            verdict = "skipped (script not there)"
        else:
            verdict = f"FAILED TO RUN (exit {code})"
        print(f"  {name}: {verdict}")
    missed = sum(1 for row in rows if row["met"] is False)
    shown = sum(1 for row in rows if reported(row))
    unmeasured = sum(1 for row in rows if row["met"] is None) - shown
    print(f"  {len(rows)} figures: {len(rows) - missed - unmeasured - shown} on target,"
          f" {missed} MISSED, {unmeasured} not measured, {shown} reported without a target")


if __name__ == "__main__":
    main()
