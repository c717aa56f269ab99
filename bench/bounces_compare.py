#!/usr/bin/env python3
"""Compare `herald bounces parse --json` output with Sisimai's reading.

usage: bounces_compare.py EXPECTED_JSON HERALD_JSONL [NOT_BOUNCES_JSONL]

EXPECTED_JSON maps a file name to Sisimai's recipients (see
shared/bounces/README.md); HERALD_JSONL has one herald object per line.
Prints the agreement numbers the issue's targets are about, raw and with
the disagreements tests/herald/bounce_corpus.rs documents on purpose, then
every disagreement (documented ones marked). Exits 1 when a target is
missed even counting the documented disagreements.
"""
import json
import os
import re
import sys

TEST_FILE = os.path.join(os.path.dirname(__file__), "..", "tests", "herald", "bounce_corpus.rs")


def allow_list(name):
    """(file, address) pairs of one allow-list in the corpus test."""
    source = open(TEST_FILE, encoding="utf-8").read()
    start = source.index(f"const {name}:")
    block = source[start:source.index("];", start)]
    return set(re.findall(r'\(\s*"([^"]+\.eml)",\s*"([^"]*)",', block))


def load_lines(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                obj = json.loads(line)
                out[os.path.basename(obj["file"])] = obj
    return out


def main():
    expected = json.load(open(sys.argv[1], encoding="utf-8"))
    ours = load_lines(sys.argv[2])
    not_bounces = load_lines(sys.argv[3]) if len(sys.argv) > 3 else {}

    allowed_missing = allow_list("ALLOWED_MISSING")
    allowed_class = allow_list("ALLOWED_CLASS")
    listed = found = comparable = same_class = 0
    documented_missing = documented_class = 0
    missing, class_diff, extra = [], [], []
    for name, sis in sorted(expected.items()):
        mine = ours.get(name, {"kind": "missing", "recipients": []})
        by_address = {r["address"].lower(): r for r in mine["recipients"]}
        sis_addresses = set()
        for r in sis:
            address = r["recipient"].lower()
            sis_addresses.add(address)
            listed += 1
            got = by_address.get(address)
            if got is None or mine["kind"] == "none":
                documented = (name, address) in allowed_missing
                documented_missing += documented
                missing.append(("documented" if documented else "UNEXPLAINED", name, address,
                                r["reason"], mine["kind"], sorted(by_address)))
                continue
            found += 1
            if r["soft"] == -1:
                continue
            comparable += 1
            sis_class = "soft" if r["soft"] == 1 else "hard"
            if got["class"] == sis_class:
                same_class += 1
            else:
                documented = (name, address) in allowed_class
                documented_class += documented
                class_diff.append(("documented" if documented else "UNEXPLAINED", name, address,
                                   r["reason"], r["status"], sis_class,
                                   got["status"], got["class"], got["diagnostic"][:110]))
        for address in by_address:
            if address not in sis_addresses and mine["kind"] in ("bounce", "complaint"):
                extra.append((name, address or "(none given)", mine["kind"]))

    arf_wrong = [n for n, o in ours.items() if n.startswith("arf-") and o["kind"] != "complaint"]
    failures = ("bounce", "complaint")
    not_failures = {**{n: o for n, o in ours.items() if n.startswith("rfc3834-")}, **not_bounces}
    wrongly_failed = [n for n, o in not_failures.items() if o["kind"] in failures]

    def pct(a, b):
        return 100.0 * a / b if b else 0.0

    found_pct = pct(found + documented_missing, listed)
    class_pct = pct(same_class + documented_class, comparable)
    print(f"recipients Sisimai lists:          {listed}")
    print(f"  found by herald:                 {found} ({pct(found, listed):.1f}%); "
          f"with {documented_missing} documented disagreements {found_pct:.1f}% (target >= 95%)")
    print(f"  found, with a class (soft != -1): {comparable}")
    print(f"  same hard/soft class:            {same_class} ({pct(same_class, comparable):.1f}%); "
          f"with {documented_class} documented disagreements {class_pct:.1f}% (target >= 90%)")
    print(f"arf-* files not a complaint:     {len(arf_wrong)} {arf_wrong}")
    print(f"rfc3834-*/not-bounces as failure: {len(wrongly_failed)} {wrongly_failed}")
    print(f"recipients herald adds:          {len(extra)}")
    print()
    print(f"## Missing ({len(missing)}): documented?, file, Sisimai's address and reason, herald's kind and addresses")
    for row in missing:
        print("  " + " | ".join(str(x) for x in row))
    print(f"## Different class ({len(class_diff)}): documented?, file, address, Sisimai reason/status/class, herald status/class/diagnostic")
    for row in class_diff:
        print("  " + " | ".join(str(x) for x in row))
    print(f"## Added by herald ({len(extra)})")
    for row in extra:
        print("  " + " | ".join(str(x) for x in row))

    ok = found_pct >= 95 and class_pct >= 90 and not arf_wrong and not wrongly_failed
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
