"""What the mail gateway accepts over RPC."""

from __future__ import annotations

from marshmallow import Schema, validate

from contracts.fields import Body, Text


class EditTemplate(Schema):
    """`mailgateway.edit_template`: staff's own subject and body of a notification (the
    kind and language name the template)."""

    subject = Text(required=True, validate=validate.Length(min=1, max=500))
    body = Body(required=True, validate=validate.Length(min=1, max=20000))
