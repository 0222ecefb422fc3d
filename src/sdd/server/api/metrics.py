from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from sdd.server.api.deps import Ctx, user_from_token
from sdd.server.services.errors import Forbidden
from sdd.server.services.metrics import render_metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(ctx: Ctx, request: Request) -> Response:
    """Prometheus metrics. Send `Authorization: Bearer <SDD_METRICS_TOKEN>`, or an admin's login token."""
    presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    expected = ctx.settings.metrics_token
    if not (expected and presented and hmac.compare_digest(presented, expected.get_secret_value())):
        user = await user_from_token(ctx, presented or None)
        if user.role != "admin":
            raise Forbidden("metrics are for admins and for the scraper holding SDD_METRICS_TOKEN")
    return Response(await render_metrics(ctx), media_type="text/plain; version=0.0.4; charset=utf-8")
