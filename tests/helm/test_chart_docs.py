"""values.yaml explains every key, and the chart README's table lists every documented one."""

from __future__ import annotations

import re

from tests.helm.manifests import CHART_DIR

KEY = re.compile(r"^(\s*)([A-Za-z]\w*):")


def _keys() -> list[tuple[str, bool, bool]]:
    """(dotted path, has a comment right above, is documented with ``# --``) per key line."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    keys = []
    for number, line in enumerate(lines):
        match = KEY.match(line)
        if not match or line.lstrip().startswith("- "):
            continue
        indent = len(match[1])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match[2]))
        above = number > 0 and lines[number - 1].strip().startswith("#")
        keys.append((".".join(k for _, k in stack), above, _comment_block(lines, number)))
    return keys


def _comment_block(lines: list[str], number: int) -> bool:
    index = number - 1
    while index >= 0 and lines[index].strip().startswith("#"):
        if lines[index].strip().startswith("# --"):
            return True
        index -= 1
    return False


def test_every_key_is_commented_or_inside_a_documented_block() -> None:
    keys = _keys()
    documented = {path for path, _, block in keys if block}

    def inside_documented(path: str) -> bool:
        parts = path.split(".")
        return any(".".join(parts[:n]) in documented for n in range(1, len(parts)))

    missing = [path for path, above, _ in keys if not above and not inside_documented(path)]
    assert missing == []


def test_readme_values_table_lists_every_documented_key() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    documented = [path for path, _, block in _keys() if block]

    assert len(documented) > 50
    assert [p for p in documented if f"| `{p}` |" not in readme] == []
    assert "## Upgrading" in readme
