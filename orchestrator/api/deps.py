"""``Annotated`` dependency aliases: services from the lifespan, the caller from its key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orchestrator.auth import Principal
from orchestrator.errors import Forbidden, Unauthorized
from orchestrator.wiring import Services

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer <key>`")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer API key")
    principal = services.keyring.authenticate(credentials.credentials)
    if principal is None:
        raise Unauthorized("unknown API key")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden(f"key {principal.name} is not an admin key")
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]
