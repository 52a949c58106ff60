"""The citizen site's pages for an address it does not have (404) and for a failure (500),
in Chinese and in the site's style where Starlette's own would be English text."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

# status -> (heading, what the citizen reads); nothing of the failure itself is shown.
PAGES = {
    404: ("页面不存在", "您访问的页面不存在，请检查网址是否正确。"),
    500: ("系统出错了", "系统暂时出现故障，请稍后再试。您也可以拨打12345热线反映诉求。"),
}


def error_page(templates: Jinja2Templates, request: Request, status: int) -> Response:
    """The page for ``status`` (any other than 404 reads as a failure)."""
    heading, message = PAGES.get(status, PAGES[500])
    return templates.TemplateResponse(
        request,
        "error.html",
        {"heading": heading, "message": message},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )
