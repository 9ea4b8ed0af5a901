"""``Annotated`` dependency aliases: services from the lifespan, the caller from its key.

An authenticated route takes exactly one dependency (plus its body): ``CallerDep`` or
``AdminDep`` resolves the bearer key and carries the services along, which keeps FastAPI's
per-request dependency solving small on the hot reserve/release path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.auth import Principal
from orchestrator.errors import Forbidden, Unauthorized
from orchestrator.wiring import Services

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    services: Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    services: Services = request.app.state.services
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer API key")
    principal = services.keyring.authenticate(credentials.credentials)
    if principal is None:
        raise Unauthorized("unknown API key")
    return Caller(principal, services)


async def get_caller(request: Request, credentials: Credentials) -> Caller:
    return _authenticate(request, credentials)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_admin(request: Request, credentials: Credentials) -> Caller:
    caller = _authenticate(request, credentials)
    if not caller.principal.is_admin:
        raise Forbidden(f"key {caller.principal.name} is not an admin key")
    return caller


AdminDep = Annotated[Caller, Depends(get_admin)]
