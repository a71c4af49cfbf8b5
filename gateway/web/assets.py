"""The pages' static files (stylesheet, htmx, icon), served by the gateway itself.

A URL made by `static_url` carries the file's digest (`?v=`): such an answer may be kept
for a year, since a changed file gets another URL. Without it, the browser asks again.
"""

from __future__ import annotations

import mimetypes

from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from gateway.web.pages import STATIC_DIR, PageCall, page, static_version

FOREVER = "public, max-age=31536000, immutable"


class StaticFiles:
    """Mixed into GatewayService."""

    @page("GET", "/static/<path:name>", session=False)
    def web_static_file(self, call: PageCall):
        name = call.path["name"]
        path = safe_join(str(STATIC_DIR), name)
        if path is None or not path.endswith((".css", ".js", ".svg")):
            raise NotFound()
        try:
            with open(path, "rb") as f:
                body = f.read()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound() from None
        mimetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        response = Response(body, mimetype=mimetype)
        fresh = call.request.args.get("v") == static_version(name)
        response.headers["Cache-Control"] = FOREVER if fresh else "no-cache"
        return response
