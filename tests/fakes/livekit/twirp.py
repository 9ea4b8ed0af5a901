"""The Twirp HTTP layer in front of the RPC table.

Order as on the real server: the API-key middleware (401 text/plain), then Twirp routing
(POST only, known path, content type), decoding (`malformed`), then the handler (grant checks
and semantics). Success is `200 application/protobuf`, or `application/json` with proto field
names and defaults for JSON requests; every error is Twirp JSON with the status of its code
(`resource_exhausted` is 429, `deadline_exceeded` 408). A scripted fault (`RpcFaults`)
answers after routing and decoding, before or after the call; a `NoResponse` (an RPC no node
claims) answers only after `Timing.no_response_seconds`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from .auth import authenticate
from .errors import AuthFailure, NoResponse, TwirpFailure, bad_route
from .faults import RpcFaults, Timing
from .rpc import UNIMPLEMENTED, Rpc

PREFIX = "/twirp/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def twirp_handler(
    api_key: str,
    api_secret: str,
    rpcs: dict[str, Rpc],
    calls: list[str],
    faults: RpcFaults,
    timing: Timing,
) -> Handler:
    """An aiohttp handler for `/twirp/{path}`; `calls` records each routed method."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            claims = authenticate(
                request.headers.get("Authorization"),
                request.query.get("access_token"),
                api_key,
                api_secret,
            )
        except AuthFailure as exc:
            return web.Response(status=401, text=exc.text)
        try:
            rpc, is_json = _route(request, rpcs)
            name = request.path[len(PREFIX) :]
            calls.append(name)
            message = _decode(rpc, await request.read(), is_json)
            fault = faults.take(name)
            if fault is not None and not fault.after:
                raise faults.failure(fault)
            response = rpc.call(claims, message)
            if fault is not None:
                raise faults.failure(fault)
            return _encode(response, is_json)
        except TwirpFailure as exc:
            if isinstance(exc, NoResponse):
                await asyncio.sleep(timing.no_response_seconds)
            return web.json_response(exc.body(), status=exc.status)

    return handle


def _route(request: web.Request, rpcs: dict[str, Rpc]) -> tuple[Rpc, bool]:
    method, path = request.method, request.path
    if method != "POST":
        raise bad_route(
            f"unsupported method {json.dumps(method)} (only POST is allowed)", method, path
        )
    name = path[len(PREFIX) :]
    rpc = rpcs.get(name)
    if rpc is None:
        if name in UNIMPLEMENTED:
            raise TwirpFailure("unimplemented", f"{name} is not implemented by the fake LiveKit")
        raise bad_route(f"no handler for path {json.dumps(path)}", method, path)
    content_type = request.headers.get("Content-Type", "")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/protobuf":
        return rpc, False
    if kind == "application/json":
        return rpc, True
    raise bad_route(f"unexpected Content-Type: {json.dumps(content_type)}", method, path)


def _decode(rpc: Rpc, body: bytes, is_json: bool) -> Message:
    message = rpc.request()
    try:
        if is_json:
            json_format.Parse(body, message, ignore_unknown_fields=True)
        else:
            message.ParseFromString(body)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        what = "json" if is_json else "protobuf"
        raise TwirpFailure("malformed", f"the {what} request could not be decoded") from exc
    return message


def _encode(message: Message, is_json: bool) -> web.Response:
    if is_json:
        text = json_format.MessageToJson(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            indent=None,
        )
        return web.Response(text=text, content_type="application/json")
    return web.Response(body=message.SerializeToString(), content_type="application/protobuf")
