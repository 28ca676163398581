"""Schemathesis hooks for sessiond's contract test.

Requests whose header lines are not valid HTTP/1.1 (a field name that is not an RFC 9110 token, or a
value with control characters or characters outside Latin-1) never reach sessiond's API layer: the
HTTP/1.1 parser refuses them with a bare 400 and closes the connection. They test the parser, not
the contract, so they are not generated. Every other generated request, valid or invalid, is sent.
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
