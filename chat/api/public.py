"""Public chat API: POST /api/v1/chat."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import IO, Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.chat_api import chat_api_turn, chat_api_turn_cache_keys, conversation_token_issue
from chat.engine import answer_cache_key_guess
from netia import ratelimits
from netia.errors import PermissionDenied, ValidationFailed, json_served_directly
from netia.openapi import error_responses
from netia.serializers import StrictSerializer
from netia.versioned_cache import Prefetched
from tenants.authentication import ChatTokenAuthentication, chat_token_authenticate
from tenants.models import Tenant
from tenants.selectors import (
    tenant_chat_token_guess,
    tenant_chat_turns_per_hour,
    tenant_lookup_cache_keys,
    tenant_origin_allowed,
)

# Set on the request when the view accepted the browser's Origin (read by `cors_allowed` below).
_CORS_FLAG = "netia_cors_allowed"
# Requests served without DRF's wrapping: a JSON body (as DRF's JSONParser reads it: UTF-8) and an Accept header
# DRF's negotiation answers with plain JSON. Any other request is DRF's to negotiate (406, 415, indented JSON).
_DIRECT_CONTENT_TYPES = frozenset(
    ["application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"]
)
_JSON_ACCEPTED = frozenset(["*/*", "application/*", "application/json"])


class ChatMessageCreateApi(APIView):
    """A visitor's message to the tenant's bot; answers synchronously with the bot's reply.

    Authenticate with `Authorization: Bearer <chat token>` (the tenant's public chat token). The first turn
    creates a conversation (optionally named by a `session_id`) and returns a signed `conversation_token`;
    send it instead of `session_id` to continue (a `session_id` that already has a conversation is 409).
    `message_id` is the id of the stored visitor message. When a human has taken over the conversation,
    `reply` is null and `handoff` true. A browser's `Origin` must be one of the tenant's allowed origins
    when it has set any (403 `origin_not_allowed`).
    """

    authentication_classes = [ChatTokenAuthentication]
    prefetched: Prefetched  # by `initial`, on DRF's path

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ChatMessageCreateInput"

        class Visitor(StrictSerializer):
            name = serializers.CharField(max_length=200, required=False, allow_blank=True)
            email = serializers.EmailField(required=False, allow_blank=True)

        session_id = serializers.CharField(
            min_length=1, max_length=128, required=False, help_text="Names a new conversation (first turn only)."
        )
        conversation_token = serializers.CharField(
            min_length=1, max_length=512, required=False, help_text="From the first turn's answer: continues it."
        )
        message = serializers.CharField(min_length=1, max_length=4000)
        visitor = Visitor(required=False)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "session_id" in attrs and "conversation_token" in attrs:
                raise serializers.ValidationError("Send either session_id (new) or conversation_token (continue).")
            return attrs

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ChatMessageCreateOutput"

        class SourceRef(serializers.Serializer):
            id = serializers.IntegerField()
            title = serializers.CharField()

        conversation_id = serializers.UUIDField()
        conversation_token = serializers.CharField(help_text="Send it with the next message of this conversation.")
        message_id = serializers.UUIDField()
        reply = serializers.CharField(allow_null=True)
        intent = serializers.CharField(allow_blank=True)
        handoff = serializers.BooleanField()
        lead_captured = serializers.BooleanField()
        sources = SourceRef(many=True)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """A plain JSON POST (the hot path) is served without DRF's request wrapping, content negotiation and
        template response, answering byte for byte what DRF would; other requests go through DRF."""
        if not (_served_directly(request) and _configured_as_served_directly(self)):
            return super().dispatch(request, *args, **kwargs)
        return json_served_directly(lambda: _answer(*_admit_directly(request)), allow=", ".join(self.allowed_methods))

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        _limit_per_ip_and_token(request._request)
        super().initial(request, *args, **kwargs)
        self.prefetched = _admit(request._request, request.auth)  # type: ignore[arg-type]  # ChatTokenAuthentication

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 402, 403, 409, 413, 429)},
        operation_id="chat_message_create",
    )
    def post(self, request: Request) -> Response:
        tenant: Tenant = request.auth  # type: ignore[assignment]  # ChatTokenAuthentication
        return Response(_answer(tenant, chat_input_validate(request.data), self.prefetched))


def _served_directly(request: HttpRequest) -> bool:
    """Whether DRF would treat the request as plain JSON in, plain JSON out (no `?format=` either)."""
    meta = request.META
    if request.method != "POST" or meta.get("QUERY_STRING"):
        return False
    # A media type and its parameters' names and charset values are case-insensitive (RFC 9110).
    if meta.get("CONTENT_TYPE", "").lower() not in _DIRECT_CONTENT_TYPES:
        return False
    accept = meta.get("HTTP_ACCEPT")
    # A parameter (`indent`, a version) changes what DRF renders or whether it can.
    return accept is None or (";" not in accept and any(media.strip() in _JSON_ACCEPTED for media in accept.split(",")))


def _configured_as_served_directly(view: APIView) -> bool:
    """Whether the view's DRF configuration is exactly what the direct path reproduces without `initial()`:
    only ChatTokenAuthentication, no permission or throttle classes, no versioning, JSON in and out with
    DRF's own negotiation. Anything else set on the view (or in REST_FRAMEWORK) sends every request to DRF."""
    return (
        list(view.authentication_classes) == [ChatTokenAuthentication]
        and not view.permission_classes
        and not view.throttle_classes
        and view.versioning_class is None
        and view.content_negotiation_class is DefaultContentNegotiation
        and list(view.renderer_classes) == [JSONRenderer]
        and list(view.parser_classes) == [JSONParser]
    )


def _limit_per_ip_and_token(
    request: HttpRequest, *, read: list[str] | None = None, guard: ratelimits.Guard | None = None
) -> dict[str, Any]:
    """The per-IP and per-token limits, counted before authentication so guessing tokens is throttled too;
    what the round trip read of `read` (cache keys)."""
    return ratelimits.enforce_all(
        request,
        [
            ("chat:ip", ratelimits.client_ip, settings.CHAT_RATE_PER_IP),
            ("chat:token", ratelimits.bearer_token, settings.CHAT_RATE_PER_TOKEN),
        ],
        read=read or (),
        guard=guard,
    )


def _tenant_cap(tenant: Tenant) -> ratelimits.Limit:
    """Whatever the IPs and tokens used, a tenant's anonymous turns are capped per hour."""
    return "chat:tenant", lambda group, req: str(tenant.pk), f"{tenant_chat_turns_per_hour(tenant=tenant)}/h"


def _origin_allowed(request: HttpRequest, tenant: Tenant) -> bool:
    origin = request.META.get("HTTP_ORIGIN")
    return origin is None or tenant_origin_allowed(tenant=tenant, origin=origin)


def _admit(request: HttpRequest, tenant: Tenant) -> Prefetched:
    """Refuse a browser on an origin the tenant does not allow, then count the tenant's hourly cap, reading
    what the turn needs from the cache in the same round trip."""
    _check_origin(request, tenant)
    keys = chat_api_turn_cache_keys(tenant=tenant)
    return Prefetched(keys, ratelimits.enforce_all(request, [_tenant_cap(tenant)], read=keys))


def _check_origin(request: HttpRequest, tenant: Tenant) -> None:
    """PermissionDenied for a browser on an origin the tenant does not allow; CORS headers for one it does."""
    if not _origin_allowed(request, tenant):
        raise PermissionDenied("This website may not use this chat token.", extra={"reason": "origin_not_allowed"})
    if "HTTP_ORIGIN" in request.META:
        setattr(request, _CORS_FLAG, True)


def _admit_directly(request: HttpRequest) -> tuple[Tenant, ChatInput, Prefetched]:
    """The limits, the token's tenant, the origin check, the tenant's cap and the body's check, in DRF's order
    (`initial`, then `post`), with one cache round trip when this process knows the token's tenant.

    The tenant's cap is then counted with the IP and token limits, on condition that the tenant cache's version
    is still the one the guess was current for (so only for the tenant the token authenticates) and only when
    the origin is allowed; the same round trip reads what the turn reads first, the answer cache's entry for
    a new session's question included (only when that cap is counted: else the turn reads them itself).

    Unlike DRF's path, the body (at most API_MAX_BODY_BYTES) is parsed and checked before the IP and
    token limits are counted, even for a request they then refuse: the answer cache's key is the question's,
    read in the limits' round trip. Its errors are raised in their turn, after the limits' and the token's.
    """
    try:
        data: ChatInput | None = chat_input_validate(_parsed(request))
        invalid: Exception | None = None
    except Exception as exc:
        data, invalid = None, exc
    tenant_keys = tenant_lookup_cache_keys()
    header = request.META.get("HTTP_AUTHORIZATION", "")
    guess = tenant_chat_token_guess(token=header[7:].strip()) if header.startswith("Bearer ") else None
    guard, turn_keys = None, []
    if guess is not None and _origin_allowed(request, guess.tenant):
        guessed = guess.tenant
        turn_keys = chat_api_turn_cache_keys(tenant=guessed)
        if data is not None and not data.conversation_token:
            answer_key = answer_cache_key_guess(schema=guessed.schema_name, question=data.message)
            turn_keys += [answer_key] if answer_key else []
        guard = ratelimits.Guard(
            key=guess.version_key, value=guess.version, limits=[_tenant_cap(guessed)], read=turn_keys
        )
    found = _limit_per_ip_and_token(request, read=tenant_keys, guard=guard)
    tenant = chat_token_authenticate(request, prefetched=Prefetched(tenant_keys, found), guess=guess)
    # What DRF's authentication leaves on the request.
    request.user, request.auth = None, tenant  # type: ignore[assignment,attr-defined]
    if guard is not None and guard.failed_open:
        # The round trip failed and the limits failed open; its script may have counted the tenant's cap
        # before the reply was lost, so the cap is not counted again (one request, counted once at most).
        _check_origin(request, tenant)
        prefetched = Prefetched([], {})
    elif guard is None or not guard.counted:
        prefetched = _admit(request, tenant)
    else:
        _check_origin(request, tenant)
        if guard.exceeded is not None:
            raise guard.exceeded
        prefetched = Prefetched(turn_keys, found)
    if invalid is not None:
        raise invalid
    assert data is not None  # noqa: S101 - for mypy
    return tenant, data, prefetched


def _parsed(request: HttpRequest) -> Any:
    """The JSON body exactly as DRF's Request.data reads it: {} when empty, its JSONParser's ParseError."""
    meta = request.META
    try:
        length = int(meta.get("CONTENT_LENGTH", meta.get("HTTP_CONTENT_LENGTH", 0)))
    except (ValueError, TypeError):
        length = 0
    if length == 0:
        return {}
    # DRF reads the request as a stream unless something read its body already.
    stream = cast(IO[bytes], io.BytesIO(request.body) if request._read_started else request)  # type: ignore[attr-defined]
    return JSONParser().parse(stream, "application/json", {"encoding": request.encoding or settings.DEFAULT_CHARSET})


def _answer(tenant: Tenant, data: ChatInput, prefetched: Prefetched) -> dict[str, Any]:
    """Run the turn; the answer in OutputSerializer's shape (tests check the two agree)."""
    message, result = chat_api_turn(
        tenant=tenant,
        session_id=data.session_id,
        conversation_token=data.conversation_token,
        text=data.message,
        visitor_name=data.visitor_name,
        visitor_email=data.visitor_email,
        prefetched=prefetched,
    )
    return {
        "conversation_id": str(result.conversation.public_id),
        "conversation_token": conversation_token_issue(tenant=tenant, conversation=result.conversation),
        "message_id": str(message.public_id),
        "reply": result.reply.content if result.reply and not result.reply.private else None,
        "intent": result.intent,
        "handoff": result.handoff,
        "lead_captured": result.lead_captured,
        "sources": [{"id": int(s["id"]), "title": str(s["title"])} for s in result.sources],
    }


# --- The body, checked as InputSerializer checks it (same errors, same messages; tests compare the two) ----------
@dataclass(frozen=True)
class ChatInput:
    message: str
    session_id: str = ""
    conversation_token: str = ""
    visitor_name: str = ""
    visitor_email: str = ""


class _FieldInvalid(Exception):
    def __init__(self, errors: Any) -> None:
        self.errors = errors


_EMAIL = EmailValidator()
_NOT_A_STRING = "Expected a string."
_NOT_NULL = "This field may not be null."


@dataclass(frozen=True)
class _StringField:
    """What `_text` checks of a CharField (EmailField) of InputSerializer or its Visitor."""

    name: str
    max_length: int | None
    min_length: int | None
    allow_blank: bool
    required: bool
    email: bool


def _string_fields(serializer: type[serializers.Serializer]) -> tuple[_StringField, ...]:
    """The serializer's string fields, read from its declaration (so a limit changed there is checked here)."""
    return tuple(
        _StringField(
            name=name,
            max_length=field.max_length,
            min_length=field.min_length,
            allow_blank=field.allow_blank,
            required=field.required,
            email=isinstance(field, serializers.EmailField),
        )
        for name, field in serializer().fields.items()
        if isinstance(field, serializers.CharField)
    )


# InputSerializer's string fields and Visitor's (tests check that these are all their fields, as checked here).
_TOP = _string_fields(ChatMessageCreateApi.InputSerializer)
_VISITOR = _string_fields(ChatMessageCreateApi.InputSerializer.Visitor)


def _text(value: Any, field: _StringField) -> str:
    """A present CharField (EmailField) value of a right JSON type: DRF's CharField.run_validation."""
    if value is None:
        raise _FieldInvalid([_NOT_NULL])
    max_length, min_length = field.max_length, field.min_length
    if value == "" or value.strip() == "":
        if not field.allow_blank:
            raise _FieldInvalid(["This field may not be blank."])
        return ""
    value = value.strip()
    errors = []
    if max_length is not None and len(value) > max_length:
        errors.append(f"Ensure this field has no more than {max_length} characters.")
    if min_length is not None and len(value) < min_length:
        errors.append(f"Ensure this field has at least {min_length} characters.")
    if "\x00" in value:
        errors.append("Null characters are not allowed.")
    surrogate = next((ord(ch) for ch in value if 0xD800 <= ord(ch) <= 0xDFFF), None)
    if surrogate is not None:
        errors.append(f"Surrogate characters are not allowed: U+{surrogate:X}.")
    if field.email:
        try:
            _EMAIL(value)
        except DjangoValidationError:
            errors.append("Enter a valid email address.")
    if errors:
        raise _FieldInvalid(errors)
    return value


def _visitor(value: Any) -> dict[str, str]:
    """The nested Visitor serializer's run_validation for a present value that is null or an object."""
    if value is None:
        raise _FieldInvalid([_NOT_NULL])
    wrong = {f.name: [_NOT_A_STRING] for f in _VISITOR if f.name in value and not isinstance(value[f.name], str | None)}
    if wrong:
        raise _FieldInvalid(wrong)
    out, errors = _texts(value, _VISITOR)
    if errors:
        raise _FieldInvalid(errors)
    return out


def _texts(data: dict[str, Any], fields: tuple[_StringField, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each of `fields` checked in `data` (missing, then `_text`): the values and the errors, by field name."""
    errors: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for field in fields:
        if field.name not in data:
            if field.required:
                errors[field.name] = ["This field is required."]
            continue
        try:
            out[field.name] = _text(data[field.name], field)
        except _FieldInvalid as invalid:
            errors[field.name] = invalid.errors
    return out, errors


def chat_input_validate(data: Any) -> ChatInput:
    """The chat body (decoded JSON) checked as `ChatMessageCreateApi.InputSerializer` checks it, without its
    per-request field copies; ValidationFailed with the same `fields` errors."""
    if data is None:
        raise ValidationFailed(extra={"fields": {"non_field_errors": ["No data provided"]}})
    if not isinstance(data, dict):
        message = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
        raise ValidationFailed(extra={"fields": {"non_field_errors": [message]}})
    # StrictSerializer: JSON types first.
    wrong = {f.name: [_NOT_A_STRING] for f in _TOP if f.name in data and not isinstance(data[f.name], str | None)}
    if "visitor" in data and not isinstance(data["visitor"], dict | None):
        wrong["visitor"] = ["Expected an object."]
    if wrong:
        raise ValidationFailed(extra={"fields": wrong})
    out, errors = _texts(data, _TOP)
    visitor: dict[str, str] = {}
    if "visitor" in data:
        try:
            visitor = _visitor(data["visitor"])
        except _FieldInvalid as invalid:
            errors["visitor"] = invalid.errors
    if errors:
        raise ValidationFailed(extra={"fields": errors})
    if "session_id" in out and "conversation_token" in out:
        message = "Send either session_id (new) or conversation_token (continue)."
        raise ValidationFailed(extra={"fields": {"non_field_errors": [message]}})
    return ChatInput(
        message=out["message"],
        session_id=out.get("session_id", ""),
        conversation_token=out.get("conversation_token", ""),
        visitor_name=visitor.get("name", ""),
        visitor_email=visitor.get("email", ""),
    )


def cors_allowed(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    """django-cors-headers' `check_request_enabled` hook: only for the chat API (CORS_URLS_REGEX).

    A preflight carries no credentials, so it is answered for any origin; the real request then gets CORS
    headers only if the view accepted its Origin for the token's tenant (else the view refused it with 403).
    The hook also decides whether CORS applies to a path at all, hence the path check.
    """
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    if request.method == "OPTIONS":
        return True
    return bool(getattr(request, _CORS_FLAG, False))
