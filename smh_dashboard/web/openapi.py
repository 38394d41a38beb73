"""The OpenAPI description of the JSON API, as this server serves it to this caller."""

from __future__ import annotations

from urllib.parse import unquote

from flask import Blueprint, current_app, url_for
from flask.typing import ResponseReturnValue

from smh_dashboard.domain import inputs, libraries
from smh_dashboard.web import api, auth

bp = Blueprint("openapi", __name__, url_prefix=api.API_ROOT.rstrip("/"))

ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "SMH's error code, or the dashboard's own"},
        "message": {"type": "string"},
        "requestId": {"type": "string", "description": "SMH's request id, when SMH answered"},
    },
}
TASK = {
    "type": "object",
    "required": ["taskId", "status"],
    "properties": {
        "taskId": {"type": "integer"},
        "status": {"type": "integer", "description": "202 running, 200 done, 204 no result, …"},
        "result": {"description": "SMH's result entries, passed through as SMH sent them"},
    },
}


@bp.get("/openapi.json")
def description() -> ResponseReturnValue:
    """Describe the JSON API in OpenAPI 3.1, with this caller's libraries and sign-in."""
    return describe_api()


def describe_api() -> dict:
    """Return the OpenAPI document for the JSON API."""
    # url_for quotes the braces of a path template; the description needs them as they are.
    path = unquote(url_for("api.tasks", library_id="{libraryId}", task_id_list="{taskIdList}"))
    library_id: dict = {"type": "string", "pattern": libraries.LIBRARY_ID.pattern}
    visible = [library.id for library in auth.visible_libraries()]
    if visible:
        library_id["enum"] = visible
    document: dict = {
        "openapi": "3.1.0",
        "info": {
            "title": "SMH task dashboard",
            "version": "1",
            "description": "SMH's task query, answered for the dashboard's libraries without "
            "a token and through its cache. Errors come in SMH's shape, {code, message}.",
        },
        "paths": {path: {"get": _task_query()}},
        "components": {
            "schemas": {"Error": ERROR, "Task": TASK},
            "parameters": {
                "libraryId": {
                    "name": "libraryId",
                    "in": "path",
                    "required": True,
                    "description": "A library configured here and visible to you; "
                    "any other answers 404.",
                    "schema": library_id,
                },
                "taskIdList": {
                    "name": "taskIdList",
                    "in": "path",
                    "required": True,
                    "description": f"Task ids (1 to {inputs.MAX_TASK_ID}) separated by commas, "
                    f"at most {inputs.MAX_IDS_AT_ONCE}.",
                    "schema": {"type": "string", "pattern": f"^{inputs.TASK_ID_LIST.pattern}$"},
                },
            },
        },
    }
    if auth.sign_in_required():
        document["components"]["securitySchemes"] = {"basic": {"type": "http", "scheme": "basic"}}
        document["security"] = [{"basic": []}]
    return document


def _task_query() -> dict:
    max_stale = float(current_app.config["SMH_API_MAX_STALE_SECONDS"])

    def error(description: str) -> dict:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    return {
        "operationId": "queryTasks",
        "summary": "Ask about tasks of a library, as SMH's own task query does",
        "parameters": [
            {"$ref": "#/components/parameters/libraryId"},
            {"$ref": "#/components/parameters/taskIdList"},
        ],
        "responses": {
            "200": {
                "description": "The tasks SMH knows, in the order asked; unknown ids left out. "
                "While SMH fails, tasks under way are answered from the dashboard's record with "
                f"{api.OUTAGE_HEADER} and {api.STALE_HEADER}, for at most "
                f"{max_stale:g} seconds of failure; after that SMH's error is the answer.",
                "headers": {
                    api.OUTAGE_HEADER: {
                        "description": "Only while SMH fails: its error code (such as "
                        "InvalidAccessToken), or BadGateway or GatewayTimeout",
                        "schema": {"type": "string"},
                    },
                    api.STALE_HEADER: {
                        "description": "Only while SMH fails: for how many whole seconds it has "
                        "been failing (the answer is at least this old)",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                },
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}}
                    }
                },
            },
            "4XX": error(
                "A bad task id list (400), sign-in needed (401), an unknown library (404), "
                "too many failed sign-ins or too many calls waiting at once (429, with "
                "Retry-After), or SMH's own refusal passed through"
            ),
            "502": error("SMH failed or answered garbage (with Retry-After)"),
            "504": error("SMH did not answer in time (with Retry-After)"),
        },
    }
