"""HTTP trigger route templates as ASP.NET Core reads them: parameters, constraints, precedence."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger("devhost")

T = TypeVar("T")

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_ALPHA = re.compile(r"^[A-Za-z]+$")

# Precedence of a segment kind, lower wins, as ASP.NET orders candidate routes for one path.
_LITERAL, _COMPLEX, _CONSTRAINED, _PARAMETER, _OPTIONAL, _CATCH_ALL = range(6)


def _integer_in(value: str, bounds: tuple[int, int]) -> bool:
    return bool(_INTEGER.match(value)) and bounds[0] <= int(value) <= bounds[1]


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


Check = Callable[[str], bool]

_SIMPLE: dict[str, Check] = {
    "int": lambda v: _integer_in(v, _INT32),
    "long": lambda v: _integer_in(v, _INT64),
    "bool": lambda v: v.lower() in ("true", "false"),
    "alpha": lambda v: bool(_ALPHA.match(v)),
    "guid": _is_guid,
    "double": lambda v: bool(_NUMBER.match(v)),
    "float": lambda v: bool(_NUMBER.match(v)),
    "decimal": lambda v: bool(_NUMBER.match(v)),
    "datetime": _is_datetime,
    "required": lambda v: v != "",
}

# Constraints with integer arguments: (how many arguments they take, the check they make).
_WITH_ARGUMENTS: dict[str, tuple[tuple[int, ...], Callable[[list[int]], Check]]] = {
    "min": ((1,), lambda a: lambda v: _integer_in(v, _INT64) and int(v) >= a[0]),
    "max": ((1,), lambda a: lambda v: _integer_in(v, _INT64) and int(v) <= a[0]),
    "range": ((2,), lambda a: lambda v: _integer_in(v, _INT64) and a[0] <= int(v) <= a[1]),
    "minlength": ((1,), lambda a: lambda v: len(v) >= a[0]),
    "maxlength": ((1,), lambda a: lambda v: len(v) <= a[0]),
    "length": ((1, 2), lambda a: lambda v: a[0] <= len(v) <= a[-1]),
}


def _constraint(text: str, template: str) -> Check | None:
    """A check for one inline constraint; None when devhost does not know it (then it is ignored)."""
    name, _, argument = text.partition("(")
    argument = argument.removesuffix(")")
    name = name.strip().lower()
    if name in _SIMPLE:
        return _SIMPLE[name]
    try:
        if name in _WITH_ARGUMENTS:
            arities, build = _WITH_ARGUMENTS[name]
            numbers = [int(part) for part in argument.split(",")]
            if len(numbers) not in arities:
                raise ValueError(argument)
            return build(numbers)
        if name == "regex":
            # ASP.NET's regex constraint is case-insensitive and unanchored unless the pattern anchors.
            pattern = re.compile(argument, re.IGNORECASE)
            return lambda v: pattern.search(v) is not None
    except (ValueError, re.error):
        logger.warning("route %r: constraint %r is malformed; ignoring it", template, text)
        return None
    logger.warning("route %r: constraint %r is not known to devhost; treating the parameter as plain",
                   template, text)
    return None


@dataclass(frozen=True)
class Parameter:
    """One {parameter} of a template."""

    name: str
    checks: tuple[Check, ...] = ()
    optional: bool = False
    default: str | None = None
    catch_all: bool = False

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.checks)


def _split_constraints(body: str) -> list[str]:
    """Split "id:int:range(1,10)" on colons outside parentheses (a regex may hold colons)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == ":" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parameter(body: str, template: str) -> Parameter:
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    optional = body.endswith("?")
    body = body.removesuffix("?")
    # A default follows the constraints: {page:int=1}. Look for "=" outside any constraint argument.
    default: str | None = None
    depth = 0
    for index, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "=" and depth == 0:
            body, default = body[:index], body[index + 1 :]
            break
    name, *constraints = _split_constraints(body)
    if not name:
        raise ValueError(f"route {template!r} has a parameter with no name")
    checks = tuple(c for c in (_constraint(text, template) for text in constraints if text) if c is not None)
    return Parameter(name=name, checks=checks, optional=optional or catch_all, default=default,
                     catch_all=catch_all)


_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass(frozen=True)
class Segment:
    """A path segment: a literal, one parameter, or literals and parameters mixed ("{name}.{ext}")."""

    literal: str | None = None  # casefolded
    parameters: tuple[Parameter, ...] = ()
    pattern: re.Pattern[str] | None = None

    @property
    def rank(self) -> int:
        if self.literal is not None:
            return _LITERAL
        if self.pattern is not None:
            return _COMPLEX
        parameter = self.parameters[0]
        if parameter.catch_all:
            return _CATCH_ALL
        if parameter.optional:
            return _OPTIONAL
        return _CONSTRAINED if parameter.checks else _PARAMETER

    def bind(self, part: str, values: dict[str, str]) -> bool:
        if self.literal is not None:
            return part.casefold() == self.literal
        if self.pattern is None:
            parameter = self.parameters[0]
            if part == "" or not parameter.accepts(part):
                return False
            values[parameter.name] = part
            return True
        match = self.pattern.fullmatch(part)
        if match is None:
            return False
        for index, parameter in enumerate(self.parameters):
            value = match.group(f"p{index}")
            if value is None:
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            if not parameter.accepts(value):
                return False
            values[parameter.name] = value
        return True


def _segment(text: str, template: str) -> Segment:
    pieces: list[str | Parameter] = []
    position = 0
    for token in _TOKEN.finditer(text):
        if token.start() > position:
            pieces.append(text[position : token.start()])
        if token.group(0) in ("{{", "}}"):
            pieces.append(token.group(0)[0])
        else:
            pieces.append(_parameter(token.group(1), template))
        position = token.end()
    if position < len(text):
        pieces.append(text[position:])
    parameters = tuple(p for p in pieces if isinstance(p, Parameter))
    if not parameters:
        return Segment(literal="".join(p for p in pieces if isinstance(p, str)).casefold())
    if len(pieces) == 1:
        return Segment(parameters=parameters)
    regex, index = [], 0
    for piece in pieces:
        if isinstance(piece, str):
            # Literal text inside a segment matches case-insensitively, like a whole literal segment.
            regex.append("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in piece))
        else:
            # Greedy, because ASP.NET matches a complex segment from the right: "{name}.{ext}" on
            # "a.tar.gz" gives name "a.tar" and ext "gz".
            regex.append(f"(?P<p{index}>.+)" + ("?" if piece.optional else ""))
            index += 1
    return Segment(parameters=parameters, pattern=re.compile("".join(regex)))


@dataclass(frozen=True)
class RouteTemplate:
    """A parsed route template, matched against the path segments after the route prefix."""

    template: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        text = template.strip().removeprefix("~").strip("/")
        segments = tuple(_segment(part, template) for part in text.split("/")) if text else ()
        for index, segment in enumerate(segments[:-1]):
            if segment.rank == _CATCH_ALL:
                raise ValueError(f"route {template!r}: a catch-all parameter must be the last segment")
            if segment.rank == _OPTIONAL and any(s.rank != _OPTIONAL for s in segments[index + 1 :]):
                raise ValueError(f"route {template!r}: only trailing parameters can be optional")
        return cls(template=template, segments=segments)

    @property
    def precedence(self) -> tuple[int, ...]:
        return tuple(segment.rank for segment in self.segments)

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """Route values for the path's decoded segments, or None when the template does not match."""
        values: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.rank == _CATCH_ALL:
                return values if _bind_rest(segment.parameters[0], "/".join(parts[index:]), values) else None
            if index >= len(parts):
                return values if _bind_missing(self.segments[index:], values) else None
            if not segment.bind(parts[index], values):
                return None
        return values if len(parts) == len(self.segments) else None


def _bind_rest(parameter: Parameter, rest: str, values: dict[str, str]) -> bool:
    if rest:
        values[parameter.name] = rest
        return parameter.accepts(rest)
    if parameter.default is not None:
        values[parameter.name] = parameter.default
    return True


def _bind_missing(segments: Sequence[Segment], values: dict[str, str]) -> bool:
    """Past the end of the path only optional parameters, or ones with defaults, may remain."""
    for segment in segments:
        if segment.literal is not None or segment.pattern is not None:
            return False
        parameter = segment.parameters[0]
        if parameter.default is not None:
            values[parameter.name] = parameter.default
        elif not parameter.optional:
            return False
    return True


@dataclass
class Route(Generic[T]):
    """A template, the methods it answers (None: all) and what it leads to."""

    template: RouteTemplate
    methods: frozenset[str] | None
    target: T


@dataclass(frozen=True)
class Match(Generic[T]):
    """A route chosen for a request, with its route values."""

    target: T
    values: dict[str, str]


@dataclass(frozen=True)
class MethodNotAllowed:
    """Routes matched the path but none answers the method."""

    allowed: frozenset[str]


@dataclass
class RouteTable(Generic[T]):
    """All HTTP triggers' routes; picks the most specific template that answers the method."""

    prefix: tuple[str, ...]
    routes: list[Route[T]] = field(default_factory=list)

    @classmethod
    def with_prefix(cls, route_prefix: str) -> RouteTable[T]:
        return cls(prefix=tuple(p.casefold() for p in route_prefix.strip("/").split("/") if p))

    def add(self, template: str, methods: Iterable[str] | None, target: T) -> None:
        method_set = frozenset(m.upper() for m in methods) if methods else None
        self.routes.append(Route(RouteTemplate.parse(template), method_set, target))
        # Stable sort: the most specific template first, then declaration order.
        self.routes.sort(key=lambda r: r.template.precedence)

    def url_path(self, template: str) -> str:
        return "/" + "/".join([*self.prefix, template.strip().removeprefix("~").strip("/")]).strip("/")

    def find(self, method: str, parts: Sequence[str]) -> Match[T] | MethodNotAllowed | None:
        """The route for a request; parts are the decoded path segments, prefix included."""
        count = len(self.prefix)
        if len(parts) < count or any(p.casefold() != q for p, q in zip(parts, self.prefix, strict=False)):
            return None
        rest = parts[count:]
        allowed: set[str] = set()
        matched_any = False
        for route in self.routes:
            values = route.template.match(rest)
            if values is None:
                continue
            matched_any = True
            if route.methods is None or method.upper() in route.methods:
                return Match(route.target, values)
            allowed |= route.methods
        return MethodNotAllowed(frozenset(allowed)) if matched_any else None
