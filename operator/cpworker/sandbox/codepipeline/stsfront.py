"""An STS front for moto that turns away what `Identities` says AWS would.

moto's STS lets any role be assumed ("the role does not need to exist", moto/sts/models.py) and
accepts any credentials, so a worker whose `spec.roleArn` cannot be assumed, or an operator
whose own session expired, cannot be shown against it alone. The front forwards every request
to moto unchanged, except:

- a request signed with an access key `Identities` marks expired: `400 ExpiredToken` "The
  security token included in the request is expired"; revoked: `403 InvalidClientTokenId`
  "The security token included in the request is invalid." (what STS answers);
- `AssumeRole` of a role `Identities` refuses: `403 AccessDenied` "User: <caller> is not
  authorized to perform: sts:AssumeRole on resource: <role>", STS's answer both for a missing
  role and for a trust policy that does not name the caller (it reveals neither).

Answers are STS's Query-protocol XML `ErrorResponse`, which botocore parses into
`ClientError` codes as from AWS.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from aiohttp import web

from cpworker.sandbox.codepipeline.identities import Identities, KeyState
from cpworker.sandbox.codepipeline.s3guard import Front, signing_key_id

STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


def error_response(status: int, code: str, message: str) -> web.Response:
    body = (
        f'<ErrorResponse xmlns="{STS_NAMESPACE}"><Error><Type>Sender</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return web.Response(status=status, text=body, content_type="text/xml")


class StsFront(Front):
    def __init__(self, upstream: str, identities: Identities, account_id: str) -> None:
        super().__init__(upstream)
        self._identities = identities
        self._account_id = account_id

    def refusal(self, request: web.Request, body: bytes) -> web.Response | None:
        key_id = signing_key_id(request)
        state = self._identities.key_state(key_id)
        if state is KeyState.EXPIRED:
            return error_response(
                400, "ExpiredToken", "The security token included in the request is expired"
            )
        if state is KeyState.REVOKED:
            return error_response(
                403,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            )
        form = parse_qs(body.decode("utf-8", errors="replace")) if body else {}
        query = {**{k: [v] for k, v in request.query.items()}, **form}
        role = (query.get("RoleArn") or [""])[0]
        if (query.get("Action") or [""])[0] == "AssumeRole" and self._identities.role_refused(role):
            caller = f"arn:aws:iam::{self._account_id}:user/{key_id or 'anonymous'}"
            return error_response(
                403,
                "AccessDenied",
                f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role}",
            )
        return None
