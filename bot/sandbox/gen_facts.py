"""Derive the facts the stand-in needs from the official machine-readable Bot API description.

    python -m bot.sandbox.gen_facts [path/to/api.json]

writes `bot/sandbox/botapi_facts.json` (kept in the repository: a fresh clone has no ../shared).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FACTS_PATH = Path(__file__).with_name("botapi_facts.json")
DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "botapi" / "api.json"


def derive(api: Mapping[str, Any]) -> dict[str, object]:
    methods = api["methods"]
    assert isinstance(methods, dict)
    return {
        "version": api["version"],
        "methods": {
            name: {
                "params": [f["name"] for f in spec.get("fields", [])],
                "required": [f["name"] for f in spec.get("fields", []) if f.get("required")],
            }
            for name, spec in sorted(methods.items())
        },
    }


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    facts = derive(json.loads(source.read_text(encoding="utf-8")))
    FACTS_PATH.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{FACTS_PATH.name}: {len(facts['methods'])} methods from {facts['version']}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
