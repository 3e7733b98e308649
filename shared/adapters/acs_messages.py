"""ACS senders: texts through SmsClient and emails through EmailClient, carrying our repeatability ids."""

from __future__ import annotations

import json
from contextvars import ContextVar
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from shared.domain.messages import EmailContent, verdict
from shared.ports.notifications import PermanentSendError, Repeatability, TransientSendError

if TYPE_CHECKING:
    import datetime as dt

    from azure.communication.email.aio import EmailClient
    from azure.communication.sms.aio import SmsClient

# The repeatability of the send in progress on this task, for the policy below to apply.
_REPEATABILITY: ContextVar[Repeatability | None] = ContextVar("acs_sms_repeatability", default=None)


def parse_connection_string(value: str) -> tuple[str, str]:
    """(endpoint, access key) of an ACS connection string, the endpoint with its scheme.

    SmsClient.from_connection_string() drops the scheme and then assumes https, so an http endpoint
    (devhost's stand-in on the loopback) could not be reached through it; the constructor keeps it.
    """
    parts = dict(part.split("=", 1) for part in value.split(";") if "=" in part)
    lowered = {key.strip().lower(): item.strip() for key, item in parts.items()}
    endpoint, key = lowered.get("endpoint", ""), lowered.get("accesskey", "")
    if not endpoint or not key:
        raise ValueError("ACS_CONNECTION_STRING needs endpoint=...;accesskey=...")
    return endpoint.rstrip("/"), key


def http_date(moment: dt.datetime) -> str:
    """IMF-fixdate, as Repeatability-First-Sent takes it."""
    return format_datetime(moment, usegmt=True)


class RepeatabilityPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Puts our repeatability id and first-sent time on the recipient of an SMS send.

    SmsClient.send() writes a fresh uuid4 for every call and takes no argument for it, so a resend of
    ours would be a new text to ACS. This runs before the signing policy, so the signature covers it.
    """

    def on_request(self, request: PipelineRequest[Any]) -> None:
        wanted = _REPEATABILITY.get()
        if wanted is None:
            return
        body = json.loads(request.http_request.body)
        for recipient in body.get("smsRecipients", []):
            recipient["repeatabilityRequestId"] = wanted.request_id
            recipient["repeatabilityFirstSent"] = http_date(wanted.first_sent)
        request.http_request.set_json_body(body)


def _retry_after(error: HttpResponseError) -> float | None:
    # The error's response type does not declare headers, though every transport's response has them.
    headers = getattr(error.response, "headers", None) or {}
    value = headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff applies instead


def _classified(error: HttpResponseError) -> Exception:
    """Our error for ACS's answer, without its text: a 400's body can quote the recipient."""
    status = error.status_code or 0
    if verdict(status) == "retry":
        return TransientSendError(status, _retry_after(error))
    return PermanentSendError(status)


def _is_configuration_error(error: HttpResponseError) -> bool:
    # A wrong key or role is ours to fix, not the message's fault: it fails, retries, and is poisoned.
    return error.status_code in (401, 403)


class AcsSmsSender:
    """One text to one number per call. The client is built with retries off: the service retries."""

    def __init__(self, client: SmsClient, sender: str) -> None:
        self._client = client
        self._sender = sender

    async def send(self, to: str, text: str, repeatability: Repeatability, tag: str) -> str:
        token = _REPEATABILITY.set(repeatability)
        try:
            results = await self._client.send(from_=self._sender, to=[to], message=text, tag=tag)
        except HttpResponseError as error:
            if _is_configuration_error(error):
                raise
            raise _classified(error) from None
        except ServiceRequestError:
            raise TransientSendError(None) from None  # never reached ACS
        finally:
            _REPEATABILITY.reset(token)
        result = results[0]
        if result.successful and result.message_id:
            return str(result.message_id)
        status = int(result.http_status_code)
        if verdict(status) == "retry":
            raise TransientSendError(status)
        raise PermanentSendError(status)


class AcsEmailSender:
    """One email per call, started and not awaited: ACS owns delivery once it has accepted the request."""

    def __init__(self, client: EmailClient, sender: str) -> None:
        self._client = client
        self._sender = sender

    async def send(self, to: str, content: EmailContent, repeatability: Repeatability) -> str:
        message = {
            "senderAddress": self._sender,
            "recipients": {"to": [{"address": to}]},
            "content": {"subject": content.subject, "plainText": content.plain_text, "html": content.html},
        }
        # The email SDK takes these as plain headers, unlike SMS; the operation id names the send too.
        headers = {"Repeatability-Request-Id": repeatability.request_id,
                   "Repeatability-First-Sent": http_date(repeatability.first_sent)}
        try:
            await self._client.begin_send(message, operation_id=repeatability.request_id, headers=headers,
                                          polling=False)
        except ResourceExistsError:
            pass  # 409: ACS already has this operation (a repeat of a send it took)
        except HttpResponseError as error:
            if _is_configuration_error(error):
                raise
            raise _classified(error) from None
        except ServiceRequestError:
            raise TransientSendError(None) from None
        return repeatability.request_id
