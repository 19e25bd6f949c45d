"""A small Dockerfile reader: enough to check the image recipe without a Docker engine."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    value: str  # the rest, continuation lines joined


@dataclass
class Stage:
    image: str  # base image with build args substituted
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.value for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text: str) -> list[Instruction]:
    """Instructions in order; comment lines (also inside continuations) are dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        result.append(Instruction(keyword.upper(), " ".join(value.split())))
        pending = ""
    return result


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global build args (with defaults) and the stages in order."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "ARG" and not found:
            name, _, default = instruction.value.partition("=")
            args[name] = default
        elif instruction.keyword == "FROM":
            words = instruction.value.split()
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(image, name))
        else:
            found[-1].instructions.append(instruction)
    return args, found


def copy_sources(value: str) -> tuple[dict[str, str], list[str]]:
    """Flags (``--from=builder``) and source paths of a COPY instruction."""
    words = shlex.split(value)
    flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1]
