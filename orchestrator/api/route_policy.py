"""What each route lets a request carry: its body cap, and whether a key comes before the body.

Both are derived from the routes themselves, so a new route is classified without a list to
update: it needs a key when its dependencies include ``get_caller`` or ``get_admin`` (the
same thing that puts ``security`` into its OpenAPI), and its cap is the JSON cap unless its
endpoint is given another one (the LiveKit webhook: 256 KiB). ``document`` adds the answers
the body guard and the body parser give (408, 413, 422 ``INVALID_BODY``, 401) to the OpenAPI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from orchestrator.api.deps import get_admin, get_caller
from orchestrator.api.schemas import ErrorResponse

KEYED_DEPENDENCIES: frozenset[Callable[..., Any]] = frozenset({get_caller, get_admin})
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    cap: int  # body bytes
    needs_key: bool
    route: Any = None  # the matched route (its ``path`` labels metrics); None: none matched


def flat_routes(routes: Sequence[BaseRoute]) -> list[Any]:
    """Every route of ``app.routes``, included routers expanded. Each has ``matches`` and,
    for a FastAPI route, ``dependant``, ``endpoint``, ``methods``, ``body_field``."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI 0.16x includes lazily
    except ImportError:  # pragma: no cover - older FastAPI: app.routes are flat
        return list(routes)
    return list(iter_route_contexts(routes))


def needs_key(route: Any) -> bool:
    dependant = getattr(route, "dependant", None)
    return isinstance(dependant, Dependant) and _has_keyed(dependant)


def _has_keyed(dependant: Dependant) -> bool:
    return any(d.call in KEYED_DEPENDENCIES or _has_keyed(d) for d in dependant.dependencies)


class RoutePolicies:
    """The policy of every route, computed once; ``match`` runs per request with a body."""

    def __init__(
        self, routes: Sequence[BaseRoute], *, cap: int, caps: Mapping[Callable[..., Any], int]
    ) -> None:
        self.default = RoutePolicy(cap, needs_key=False)
        self.routes = [
            (r, RoutePolicy(caps.get(getattr(r, "endpoint", _no_endpoint), cap), needs_key(r), r))
            for r in flat_routes(routes)
        ]

    def match(self, scope: Scope) -> RoutePolicy:
        for route, policy in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                return policy
        return self.default


def _no_endpoint() -> None:
    """The endpoint of a route that has none (a mount): never in ``caps``."""


def document(app: FastAPI, policies: Callable[[], RoutePolicies]) -> None:
    """Add the guard's and the parser's answers to every operation of ``app.openapi()``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI; adding the answers again changes nothing
        _add_answers(schema, policies())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _add_answers(schema: dict[str, Any], policies: RoutePolicies) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorResponse" not in components:
        error = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error.pop("$defs", {}), ErrorResponse=error)
    for route, policy in policies.routes:
        path = schema["paths"].get(getattr(route, "path_format", None), {})
        for method in getattr(route, "methods", None) or ():
            if (operation := path.get(method.lower())) is not None:
                _add_to_operation(operation, route, policy)


def _add_to_operation(operation: dict[str, Any], route: Any, policy: RoutePolicy) -> None:
    answers = {
        "408": "BODY_TIMEOUT: the body did not arrive within CCTV_HTTP_BODY_TIMEOUT_SECONDS",
        "413": f"BODY_TOO_LARGE: the body is over this route's cap ({policy.cap} bytes)",
    }
    if getattr(route, "body_field", None) is not None:
        answers["422"] = "VALIDATION_ERROR, or INVALID_BODY: the body is not parseable JSON"
    if policy.needs_key:
        answers["401"] = "UNAUTHORIZED: no or unknown API key (answered before the body is read)"
    responses = operation.setdefault("responses", {})
    for status, description in answers.items():
        entry = responses.setdefault(status, {"content": {"application/json": {}}})
        entry["description"] = description
        entry.setdefault("content", {}).setdefault("application/json", {})["schema"] = ERROR_REF
