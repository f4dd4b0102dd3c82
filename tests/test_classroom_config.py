"""The classroom hub's configuration files, loaded as JupyterHub and nbgrader load them.

Fast checks of what the end-to-end test (test_classroom_e2e.py, slow, root)
relies on, and of the errors a wrong start gets: no hub, no users, no browser.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config.loader import PyFileConfigLoader

REPO = Path(__file__).resolve().parents[1]
HUB = REPO / "deploy" / "jupyterhub"
sys.path.insert(0, str(HUB))
import classroom  # noqa: E402


def load(path: Path):
    return PyFileConfigLoader(path.name, str(path.parent)).load_config()


def settings(tmp_path: Path) -> Path:
    """The classroom.json setup() writes, for a class of two in tmp_path."""
    room = classroom.Classroom(state=tmp_path, students=2, port=18000, hub_port=18081,
                               proxy_api_port=18001, server_bin=tmp_path / "server-env" / "bin",
                               weights_dir=tmp_path / "weights")
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "password").write_text("a-demo-password\n")
    room.settings_file.write_text(json.dumps(room.settings(tmp_path / "student-env" / "bin" / "python")))
    return room.settings_file


def test_hub_config_listens_on_loopback_with_the_listed_users(tmp_path, monkeypatch):
    monkeypatch.setenv("FR_CLASSROOM_SETTINGS", str(settings(tmp_path)))
    c = load(HUB / "jupyterhub_config.py")
    assert c.JupyterHub.bind_url == "http://127.0.0.1:18000"
    assert c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:18001"
    assert c.Authenticator.allowed_users == {"fr-instructor", "fr-student1", "fr-student2"}
    assert c.Authenticator.admin_users == set()
    assert c.SharedPasswordAuthenticator.user_password == "a-demo-password"
    assert c.Spawner.cmd == [str(tmp_path / "server-env" / "bin" / "jupyterhub-singleuser")]
    assert "PYTHONPATH" not in c.Spawner.env_keep
    assert c.Spawner.environment["FR_EXCHANGE_ROOT"] == str(tmp_path / "exchange")
    assert c.Spawner.environment["JUPYTER_CONFIG_PATH"] == str(tmp_path / "etc" / "jupyter")


@pytest.mark.parametrize("user, student", [("fr-student2", True), ("fr-instructor", False)])
def test_only_students_get_the_student_kernel(tmp_path, monkeypatch, user, student):
    monkeypatch.setenv("FR_CLASSROOM_SETTINGS", str(settings(tmp_path)))
    c = load(HUB / "jupyterhub_config.py")
    spawner = SimpleNamespace(user=SimpleNamespace(name=user), environment=dict(c.Spawner.environment))
    c.Spawner.pre_spawn_hook(spawner)
    if student:
        assert spawner.environment["JUPYTER_PATH"] == str(tmp_path / "share" / "jupyter")
        assert "FR_WEIGHTS_DIR" not in spawner.environment  # theirs are in the student environment
    else:
        assert "JUPYTER_PATH" not in spawner.environment
        assert spawner.environment["FR_WEIGHTS_DIR"] == str(tmp_path / "weights")


def test_hub_config_without_settings_says_how_to_start(monkeypatch, tmp_path):
    monkeypatch.setenv("FR_CLASSROOM_SETTINGS", str(tmp_path / "missing.json"))
    with pytest.raises(SystemExit, match="missing.json.*make classroom"):
        load(HUB / "jupyterhub_config.py")


def test_hub_wide_nbgrader_config_names_course_and_exchange(monkeypatch, tmp_path):
    monkeypatch.setenv("FR_EXCHANGE_ROOT", str(tmp_path / "exchange"))
    c = load(HUB / "nbgrader_config.py")
    assert c.CourseDirectory.course_id == "facenet"
    assert c.Exchange.root == str(tmp_path / "exchange")


def test_hub_wide_nbgrader_config_refuses_to_guess_the_exchange(monkeypatch):
    monkeypatch.delenv("FR_EXCHANGE_ROOT", raising=False)
    with pytest.raises(RuntimeError, match="FR_EXCHANGE_ROOT is not set"):
        load(HUB / "nbgrader_config.py")


def test_start_before_setup_names_the_missing_settings(tmp_path, capsys):
    assert classroom.main(["start", "--state", str(tmp_path)]) == 1
    assert str(tmp_path / "hub" / "classroom.json") in capsys.readouterr().err


def test_a_class_needs_a_student(capsys):
    with pytest.raises(SystemExit):
        classroom.main(["setup", "--students", "0"])
    assert "--students must be at least 1, not 0" in capsys.readouterr().err


def test_names_and_places():
    room = classroom.Classroom(state=Path("/srv/x"), students=3, prefix="fr-", home_root=Path("/home"))
    assert room.users == ["fr-instructor", "fr-student1", "fr-student2", "fr-student3"]
    assert room.course == Path("/home/fr-instructor/facenet")
    assert room.exchange == Path("/srv/x/exchange")
    assert room.url == "http://127.0.0.1:8000/"
