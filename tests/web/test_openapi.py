"""A generated-input run against the JSON API's OpenAPI description (schemathesis)."""

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from werkzeug.security import generate_password_hash

from smh_dashboard.web import throttle

OPERATOR = ("ana", "ana-s3cret")
# Task id values (1 to 2**63-1, at most 100) are in the description's words, not its pattern, so
# schema-valid input may still be refused with a 400: that check alone is left out.
CHECKS_LEFT_OUT = [schemathesis.checks.positive_data_acceptance]


@pytest.fixture
def settings(settings, tmp_path):
    path = tmp_path / "users.toml"
    password_hash = generate_password_hash(OPERATOR[1], "pbkdf2:sha256:1000")
    path.write_text(f'[[user]]\nname = "ana"\nrole = "operator"\npassword_hash = "{password_hash}"')
    settings["SMH_USERS_FILE"] = str(path)
    return settings


@pytest.fixture
def api_schema(app, sim):
    for _ in range(3):
        sim.add_task("lib1", run_seconds=600)
    # Given as the description's security scheme, so negative runs may also leave it out.
    username, password = OPERATOR
    config = schemathesis.Config.from_dict(
        {"auth": {"openapi": {"basic": {"username": username, "password": password}}}}
    )
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app, auth=OPERATOR, config=config)


def test_the_description_names_the_route_and_sign_in(client):
    document = client.get("/api/openapi.json", auth=OPERATOR).get_json()
    assert list(document["paths"]) == ["/api/v1/task/{libraryId}/{taskIdList}"]
    assert document["security"] == [{"basic": []}]
    parameters = document["components"]["parameters"]
    assert parameters["libraryId"]["schema"]["enum"] == ["lib1"]


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_generated_calls_answer_2xx_or_a_json_4xx(api_schema, clock, mode):
    statuses = set()
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=50,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        def call(case):
            # Schemathesis re-sends each 2xx call with a wrong password to see it refused; a
            # sign-in slow-down window apart, those never add up to a 429.
            clock.advance(throttle.FAILURE_WINDOW_SECONDS)
            response = case.call_and_validate(excluded_checks=CHECKS_LEFT_OUT)
            statuses.add(response.status_code)
            assert response.status_code < 500
            if response.status_code >= 400:
                assert set(response.json()) >= {"code", "message"}

        call()
    if mode is schemathesis.GenerationMode.POSITIVE:
        assert 200 in statuses


def test_without_users_the_description_asks_for_no_sign_in(make_app):
    app = make_app(SMH_USERS_FILE=None)
    document = app.test_client().get("/api/openapi.json").get_json()
    assert "security" not in document
    assert "securitySchemes" not in document["components"]
