"""``/api/v1/schedules``: cron-driven runs over HTTP (:mod:`mloop.services.schedules` behind it).

::

    GET    /schedules                      every schedule, with its next fire times (?workflow=)
    POST   /schedules                      create one {"workflow", "cron", "timezone"?, "params"?, "name"?, "catchup"?}
    GET    /schedules/{name}               one schedule, with its next fire times
    POST   /schedules/{name}/pause         stop firing it
    POST   /schedules/{name}/resume        fire it again, from the next fire time after now
    DELETE /schedules/{name}               remove it and its fire history (its runs stay)
    GET    /schedules/{name}/fires         its latest fires, newest first (?limit=)
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, Optional

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from mloop.context import Context
from mloop.server.app import backend_of
from mloop.services.schedules import (
    create_schedule,
    delete_schedule,
    get_schedule,
    list_fires,
    list_schedules,
    next_fire_times,
    pause_schedule,
    resume_schedule,
)
from mloop.store.schedules import ScheduleFireRecord, ScheduleRecord

router = APIRouter(tags=["schedules"])


class CreateSchedule(BaseModel):
    workflow: str = Field(max_length=200, description="a released workflow")
    cron: str = Field(max_length=200, description="five-field cron expression, e.g. '0 3 * * 1-5'")
    timezone: str = Field("UTC", max_length=64, description="IANA zone the expression is read in, e.g. Asia/Shanghai")
    params: dict[str, Any] = Field(default_factory=dict, description="placeholder values of each run")
    name: Optional[str] = Field(None, max_length=64,
                                description="1-64 letters, digits, '-' or '_' (default: WORKFLOW-N)")
    catchup: Literal["skip", "one", "all"] = Field("one", description="what to do with fire times missed while "
                                                                     "no server ran")
    paused: bool = False


class ScheduleOut(ScheduleRecord):
    upcoming: list[datetime] = Field(default_factory=list, description="the next fire times (UTC)")


class SchedulesOut(BaseModel):
    schedules: list[ScheduleOut]


class FiresOut(BaseModel):
    fires: list[ScheduleFireRecord]


def _backend(request: Request) -> Context:
    return backend_of(request.app)


def _out(rec: ScheduleRecord, n: int = 3) -> ScheduleOut:
    upcoming = [] if rec.paused else next_fire_times(rec, datetime.now(timezone.utc), n)
    return ScheduleOut(**rec.model_dump(), upcoming=upcoming)


@router.get("/schedules", response_model=SchedulesOut)
def list_all(request: Request, workflow: Optional[str] = None) -> SchedulesOut:
    return SchedulesOut(schedules=[_out(s, 1) for s in list_schedules(_backend(request), workflow)])


@router.post("/schedules", status_code=201, response_model=ScheduleOut)
def create(request: Request, body: CreateSchedule) -> ScheduleOut:
    rec = create_schedule(_backend(request), body.workflow, body.cron, tz=body.timezone, params=body.params,
                          name=body.name, catchup=body.catchup, paused=body.paused)
    return _out(rec)


@router.get("/schedules/{name}", response_model=ScheduleOut)
def show(request: Request, name: str) -> ScheduleOut:
    return _out(get_schedule(_backend(request), name), 5)


@router.post("/schedules/{name}/pause", response_model=ScheduleOut)
def pause(request: Request, name: str) -> ScheduleOut:
    return _out(pause_schedule(_backend(request), name))


@router.post("/schedules/{name}/resume", response_model=ScheduleOut)
def resume(request: Request, name: str) -> ScheduleOut:
    return _out(resume_schedule(_backend(request), name))


@router.delete("/schedules/{name}", response_model=ScheduleOut)
def delete(request: Request, name: str) -> ScheduleOut:
    rec = delete_schedule(_backend(request), name)
    return ScheduleOut(**rec.model_dump())


@router.get("/schedules/{name}/fires", response_model=FiresOut)
def fires(request: Request, name: str, limit: int = Query(20, ge=1, le=1000)) -> FiresOut:
    return FiresOut(fires=list_fires(_backend(request), name, limit))
