"""Schemathesis hooks for sessiond's contract test.

Requests whose header lines are not valid HTTP/1.1 (a field name that is not an RFC 9110 token, or a
value with control characters or characters outside Latin-1) never reach sessiond's API layer: the
HTTP/1.1 parser refuses them with a bare 400 and closes the connection. They test the parser, not
the contract, so they are not generated.

An attribute name is at most 128 bytes of UTF-8; JSON Schema can only count characters
(`maxLength: 128`), so a name within 128 characters but over 128 bytes is valid to the schema and
refused by sessiond (400 invalid_attribute_name, which ErrorTests and SessionLimitsTests check).
Such bodies are not generated either.

`GET /v1/events?wait=N` may take N seconds (up to 30) by design, longer than the run's request
timeout: valid waits over 2 s are sent as 2 s (out-of-range waits are sent as generated, for their
400). Every other generated request, valid or invalid, is sent.
"""
import re

import schemathesis

FIELD_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _valid_value(value: object) -> bool:
    text = str(value)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return all(character == "\t" or (" " <= character and character != "\x7f") for character in text)


@schemathesis.hook
def filter_headers(context, headers):
    if not headers:
        return True
    return all(FIELD_NAME.match(str(name)) and _valid_value(value) for name, value in headers.items())


NAME_BYTES = 128


def _names_fit(members: object) -> bool:
    if not isinstance(members, dict):
        return True
    return all(len(str(name).encode("utf-8", "surrogatepass")) <= NAME_BYTES for name in members)


@schemathesis.hook
def filter_body(context, body):
    operation = context.operation
    if operation.method.upper() == "POST" and operation.path == "/v1/sessions":
        return not isinstance(body, dict) or _names_fit(body.get("data"))
    if (operation.method.upper(), operation.path) in {("PATCH", "/v1/session"), ("PUT", "/v1/session/data")}:
        return _names_fit(body)
    return True


LONGEST_WAIT = 2


@schemathesis.hook
def map_query(context, query):
    if context.operation.path == "/v1/events" and isinstance(query, dict):
        wait = query.get("wait")
        if isinstance(wait, int) and not isinstance(wait, bool) and LONGEST_WAIT < wait <= 30:
            query["wait"] = LONGEST_WAIT
    return query
