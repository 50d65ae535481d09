"""What is wrong with a spec, and where: a file and a path into the document.

A problem reads `file: field: reason` (`slo/fraud.yaml: slos[0].objective: must be between 0 and 100
(got 120)`), the form the CLI, the API and the tests show. Where a problem is, is data: a parser that
needs to know whether a part of a spec failed asks the function that checked it (which returns None),
never the text of the problems found so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

Part = str | int  # a field name, or an index into a list (or a document into a multi-document file)
FieldPath = tuple[Part, ...]


def render(path: FieldPath) -> str:
    """`("slos", 0, "objective")` -> `slos[0].objective`; `(1, "spec")` -> `[1].spec`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True)
class Location:
    """A file and a path inside it; `at` goes deeper."""

    file: str
    path: FieldPath = ()

    def at(self, *parts: Part) -> Location:
        return Location(self.file, (*self.path, *parts))


@dataclass(frozen=True)
class Problem:
    location: Location
    reason: str

    @property
    def file(self) -> str:
        return self.location.file

    @property
    def path(self) -> FieldPath:
        return self.location.path

    def __str__(self) -> str:
        where = render(self.path)
        return f"{self.file}: {where}: {self.reason}" if where else f"{self.file}: {self.reason}"


class Problems:
    """The problems found while specs are read, in the order they were found."""

    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, location: Location, reason: str) -> None:
        self.found.append(Problem(location, reason))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.found.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.found)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.found)

    @property
    def lines(self) -> list[str]:
        return [str(problem) for problem in self.found]
