"""The JSON API's routes, one module per domain, mixed into `gateway.service.GatewayService`.

Each module holds a mixin class of `@route` methods (see `gateway.http`); what they
share (role sets, the page schema, list answers) is in `gateway.api.common`.
"""
