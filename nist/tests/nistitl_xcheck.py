#!/usr/bin/env python3
"""Parse an ANSI/NIST-ITL file with the independent PyPI `nistitl` reader and print what it found.

Usage: nistitl_xcheck.py FILE

Prints one JSON document: {"records": [...]}, one entry per record in file order. A tagged
record is {"type", "fields": {"<number>": value}} where a text value is a list of subfields,
each a list of items (nistitl's plain strings and lists are normalised to that shape) and a
binary field is {"len", "sha256"}; a binary record is {"type", "idc", "len", "sha256"}.
"""
import hashlib
import json
import sys

import nistitl


def text(value):
    if isinstance(value, (int, str)):
        return [[str(value)]]
    return [[str(x)] if isinstance(x, (int, str)) else [str(i) for i in x] for x in value]


def main(path):
    data = open(path, "rb").read()
    msg = nistitl.Message()
    msg.parse(data)
    out = []
    for record in msg:
        if isinstance(record, nistitl.BinaryRecord):
            out.append({"type": record.type, "idc": int(record.IDC), "len": record.length,
                        "sha256": hashlib.sha256(record.value).hexdigest()})
            continue
        fields = {}
        for f in record._sorted_fields(0):
            if isinstance(f, nistitl.BinaryField):
                fields[str(f.tag)] = {"len": len(f.value), "sha256": hashlib.sha256(f.value).hexdigest()}
            else:
                fields[str(f.tag)] = text(f.value)
        out.append({"type": record.type, "fields": fields})
    print(json.dumps({"records": out}))


if __name__ == "__main__":
    main(sys.argv[1])
