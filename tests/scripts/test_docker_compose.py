"""docker-compose.yml names only commands the amur CLI has, and its dashboard needs a token."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline.app.cli import app
from pipeline.core.topology import roles

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_every_amur_service_runs_a_real_command_and_the_dashboard_needs_a_token():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    commands = {name: service["command"] for name, service in services.items() if service.get("image") == "amur:latest"}
    assert {tuple(command) for name, command in commands.items() if name != "web"} == {("run", role) for role in roles()}
    assert commands["web"][:1] == ["serve"]
    assert CliRunner().invoke(app, [*commands["web"], "--help"]).exit_code == 0
    assert "AMUR_SERVE_TOKEN" in services["web"]["environment"]
    assert services["web"]["ports"] == ["127.0.0.1:8080:8080"]
