"""The ``{name:webpath}`` URL convertor: a full path that never reaches into the machines' paths.

Project pages live at ``/<namespace>/<project>`` and below, which would also match the API's,
git's and the registry's paths: those must keep their own 404s and 405s, so this convertor refuses
them before any UI route sees them.
"""

from __future__ import annotations

from starlette.convertors import PathConvertor, register_url_convertor


class WebPathConvertor(PathConvertor):
    regex = r"(?!api/|jwt/|-/|users/|admin/|groups/)[^?#]+"


register_url_convertor("webpath", WebPathConvertor())
