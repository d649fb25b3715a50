"""Per-item CPU cost of a comparison's hot loop, on one Scan page of 1,000 items (no moto).

    .venv/bin/python bench/items_micro.py [--doc docs/performance.md]

What the compare does with each scanned item, next to what any Scan pays for it (botocore
parsing the page), each the best of several repetitions so that a busy machine shows less:

- botocore parse: the page's JSON through botocore's own parser (what a plain Scan pays);
- raw page: what the compare pays instead for its own pages (`bot/items/rawpages.py`):
  `split_page` (json.loads, Items set aside) and botocore's parse of what is left;
- before (3 calls): `to_json` + `key_text` + `digest`, as the engine did per item before (the
  functions as they are now: the string shortcut in `canonical_item` helps this line too);
- now (`index_row`): the one-pass version the engine uses;
- SQLite insert: `JobFile.add_items` of the page (one transaction, `executemany`).

The page holds the same items as `bench/copy_back.py` (~200 bytes: a string key, a string, a
number, a string set, an 80-character note). Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

BEGIN, END = "<!-- bench/items_micro.py: begin -->", "<!-- bench/items_micro.py: end -->"


def per_item_us(fn, items: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e6 / items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--doc", help="also write the table into this Markdown file")
    args = parser.parse_args()

    import botocore.session
    from botocore.parsers import create_parser
    from copy_back import item

    from bot.items.jobfile import JobFile
    from bot.items.rawpages import split_page
    from bot.items.values import digest, index_row, key_text, to_json

    page = [item(i, changed=i % 100 == 1) for i in range(1000)]
    keys = ("pk",)
    shape = botocore.session.get_session().get_service_model("dynamodb")
    output = shape.operation_model("Scan").output_shape
    body = json.dumps({"Items": page, "Count": len(page), "ScannedCount": len(page)}).encode()
    parse = create_parser("json").parse

    def raw_page() -> None:
        rest, _ = split_page(body)
        parse({"body": rest, "headers": {}, "status_code": 200}, output)

    with tempfile.TemporaryDirectory() as tmp:
        job = JobFile(Path(tmp) / "job.sqlite")
        rows = [index_row(it, keys) for it in page]
        batch = [0]

        def insert() -> None:  # new keys each time, as a Scan brings them
            batch[0] += 1
            job.add_items("restored", [(f"{k}{batch[0]:05d}", h, t) for k, h, t in rows])

        results = [
            (
                "botocore parse (the plain Scan pays it)",
                per_item_us(
                    lambda: parse({"body": body, "headers": {}, "status_code": 200}, output),
                    len(page),
                    args.repeat,
                ),
            ),
            (
                "raw page: split_page + botocore parse of the rest (the compare pays it)",
                per_item_us(raw_page, len(page), args.repeat),
            ),
            (
                "before: to_json + key_text + digest",
                per_item_us(
                    lambda: [(key_text(i, keys), digest(i), to_json(i)) for i in page],
                    len(page),
                    args.repeat,
                ),
            ),
            (
                "now: index_row",
                per_item_us(lambda: [index_row(i, keys) for i in page], len(page), args.repeat),
            ),
            (
                "SQLite insert (add_items, one transaction)",
                per_item_us(insert, len(page), args.repeat),
            ),
        ]
        job.close()
    load = os.getloadavg()[0]
    lines = [
        f"Per scanned item, best of {args.repeat} on a 1,000-item page"
        f" ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average {load:.1f}):",
        "",
        "| step | µs per item |",
        "|---|---|",
        *(f"| {name} | {us:.1f} |" for name, us in results),
    ]
    text = "\n".join(lines)
    print(text)
    if args.doc:
        doc = Path(args.doc)
        head, rest = doc.read_text().split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        doc.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
