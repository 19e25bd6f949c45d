"""``python -m devservices.dashboards [PATH] [--check]``: write the dashboard JSON, or (with
``--check``) exit 1 when the file at PATH is not what the code builds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devservices.dashboards.zoom_worker import render

DEFAULT_PATH = Path("helm/zoom-worker/dashboards/zoom-worker.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devservices.dashboards")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--check", action="store_true", help="fail when PATH is stale")
    args = parser.parse_args(argv)
    path: Path = args.path
    fresh = render()
    if args.check:
        if not path.exists() or path.read_text() != fresh:
            print(f"{path} is stale: run `make dashboards`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fresh)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
