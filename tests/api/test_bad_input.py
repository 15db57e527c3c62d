"""Client mistakes get a JSON error with the right status: never HTML, a traceback or a 500."""

from __future__ import annotations

import pytest

from tests.api.conftest import Instance, api_settings, running


def assert_json_error(body_bytes: bytes, content_type: str) -> None:
    assert content_type.startswith("application/json"), content_type
    text = body_bytes.decode()
    assert "<html" not in text.lower() and "Traceback" not in text


async def call(api: Instance, method: str, path: str, **kwargs):
    response = await api.client.open(path, method=method, **kwargs)
    data = await response.get_data()
    assert_json_error(data, response.headers["Content-Type"])
    body = await response.get_json()
    assert set(body) == {"error", "detail"}
    return response.status_code, body


@pytest.fixture
async def api(redis_env, sqlite_url):
    async with running(api_settings(redis_env, sqlite_url, max_value_bytes=1024)) as instance:
        yield instance


def fields(body) -> set[str]:
    return {problem["field"] for problem in body["detail"]}


async def test_malformed_json_is_400(api):
    status, body = await call(
        api,
        "POST",
        "/api/v1/data",
        data=b'{"key": "a", "value": ',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and body["error"] == "malformed_json"


async def test_wrong_content_type_is_415(api):
    status, _ = await call(
        api,
        "POST",
        "/api/v1/data",
        data=b'{"key": "a", "value": "b"}',
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415
    status, _ = await call(api, "POST", "/api/v1/data", form={"key": "a", "value": "b"})
    assert status == 415


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"value": "v"}, "key"),
        ({"key": "", "value": "v"}, "key"),
        ({"key": "has space", "value": "v"}, "key"),
        ({"key": "x" * 257, "value": "v"}, "key"),
        ({"key": "a/b", "value": "v"}, "key"),
        ({"key": 12, "value": "v"}, "key"),
        ({"key": "k"}, "value"),
        ({"key": "k", "value": 5}, "value"),
        ({"key": "k", "value": None}, "value"),
        ({"key": "k", "value": "v", "ttl": 0}, "ttl"),
        ({"key": "k", "value": "v", "ttl": -5}, "ttl"),
        ({"key": "k", "value": "v", "ttl": 30 * 86400 + 1}, "ttl"),
        ({"key": "k", "value": "v", "ttl": "60"}, "ttl"),
        ({"key": "k", "value": "v", "ttl": 1.5}, "ttl"),
        ({"key": "k", "value": "v", "ttl": True}, "ttl"),
        ({"key": "k", "value": "v", "tll": 60}, "tll"),
    ],
)
async def test_schema_violations_are_422_naming_the_field(api, payload, field):
    status, body = await call(api, "POST", "/api/v1/data", json=payload)
    assert status == 422 and body["error"] == "validation_error"
    assert field in fields(body), body


async def test_non_object_body_is_422(api):
    for payload in ([1, 2], "text", 5, None):
        status, _ = await call(api, "POST", "/api/v1/data", json=payload)
        assert status == 422, payload


async def test_value_over_max_value_bytes_is_422_naming_value(api):
    # 400 two-byte characters = 800 bytes: fits; 600 of them = 1200 bytes > 1024.
    assert (await api.post("fits", "é" * 400)).status_code == 201
    assert (await api.post("exact", "x" * 1024)).status_code == 201
    status, body = await call(api, "POST", "/api/v1/data", json={"key": "big", "value": "é" * 600})
    assert status == 422 and fields(body) == {"value"}
    assert "MAX_VALUE_BYTES" in body["detail"][0]["message"]


async def test_body_over_limit_is_413(api):
    limit = api.app.config["MAX_CONTENT_LENGTH"]
    status, body = await call(
        api,
        "POST",
        "/api/v1/data",
        data=b'{"key": "k", "value": "' + b"x" * limit + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 413 and body["error"] == "request_entity_too_large"


async def test_invalid_key_in_path_is_422(api):
    status, body = await call(api, "GET", "/api/v1/data/" + "k" * 257)
    assert status == 422 and fields(body) == {"key"}
    status, _ = await call(api, "DELETE", "/api/v1/data/bad%20key")
    assert status == 422


async def test_unknown_route_is_404(api):
    for path in ("/nope", "/api/v1/data/a/b", "/api/v2/data/x", "/api/v1/"):
        status, body = await call(api, "GET", path)
        assert status == 404 and body["error"] == "not_found", path


async def test_wrong_method_is_405_with_allow(api):
    response = await api.client.put("/api/v1/data")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    status, body = await call(api, "PATCH", "/api/v1/data/k")
    assert status == 405 and body["error"] == "method_not_allowed"
    status, _ = await call(api, "POST", "/health/live")
    assert status == 405


async def test_unexpected_error_is_generic_500_and_logged(api, caplog):
    async def boom():
        raise RuntimeError("internal detail that must stay server-side")

    api.app.add_url_rule("/boom", "boom", boom)
    status, body = await call(api, "GET", "/boom")
    assert status == 500
    assert body == {"error": "internal_error", "detail": "internal server error"}
    assert any(
        record.exc_info and "internal detail" in str(record.exc_info[1])
        for record in caplog.records
    )
