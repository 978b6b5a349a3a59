"""Settings: defaults, validation with one line naming the variable, documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from responder.config import SETTINGS, Settings, StartupError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def load(**env: str) -> Settings:
    return load_settings(env, env_file="/nonexistent")


def test_defaults_use_the_sandbox() -> None:
    settings = load()
    assert settings.database == "responder.db"
    assert settings.rules == Path("rules.yaml")
    assert settings.templates == Path("templates")
    assert settings.provider == "sandbox"
    assert settings.providers == ("sandbox",)
    assert settings.massiva is None and settings.massms is None


def test_first_configured_provider_is_the_default() -> None:
    settings = load(
        MASSMS_API_ID="empresa", MASSMS_USER="u", MASSMS_PASSWORD="p",
        MASSIVA_USER="a@b.c", MASSIVA_PASSWORD="x",
    )  # fmt: skip
    assert settings.provider == "massiva"
    assert settings.providers == ("massiva", "massms")
    assert settings.massiva is not None
    assert settings.massiva.url == "https://sistema.massivamovil.com/webservices"
    assert settings.massiva.batch_size == 50
    assert settings.massms is not None
    assert settings.massms.url == "https://www.markettext.com/massms/api"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RESPONDER_PROVIDER": "twilio"}, "RESPONDER_PROVIDER"),
        ({"RESPONDER_PROVIDER": "massiva"}, "RESPONDER_PROVIDER"),
        ({"MASSIVA_USER": "a@b.c"}, "MASSIVA_PASSWORD"),
        ({"MASSMS_API_ID": "x", "MASSMS_USER": "u"}, "MASSMS_PASSWORD"),
        (
            {"MASSIVA_USER": "a", "MASSIVA_PASSWORD": "b", "MASSIVA_BATCH_SIZE": "0"},
            "MASSIVA_BATCH_SIZE",
        ),
        (
            {"MASSIVA_USER": "a", "MASSIVA_PASSWORD": "b", "MASSIVA_BATCH_SIZE": "x"},
            "MASSIVA_BATCH_SIZE",
        ),
        ({"MASSIVA_USER": "a", "MASSIVA_PASSWORD": "b", "MASSIVA_URL": "ftp://x"}, "MASSIVA_URL"),
        ({"RESPONDER_ADMIN_TOKEN": "short"}, "RESPONDER_ADMIN_TOKEN"),
        ({"RESPONDER_WEBHOOK_TOKEN": "has spaces in it, sixteen+"}, "RESPONDER_WEBHOOK_TOKEN"),
        ({"RESPONDER_PUBLIC_URL": "example.com"}, "RESPONDER_PUBLIC_URL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(StartupError) as error:
        load(**env)
    message = str(error.value)
    assert message.startswith(variable)
    assert "\n" not in message


MASSMS = {"MASSMS_API_ID": "empresa", "MASSMS_USER": "u", "MASSMS_PASSWORD": "p"}


@pytest.mark.parametrize(
    "sender", ["Mi Tienda", "0Tienda", "Tienda.", "Peñaloza", "AB", "TiendaGrande1"]
)
def test_bad_sender_ids_stop_start_up(sender: str) -> None:
    with pytest.raises(StartupError, match=r"^MASSMS_SENDER_ID: 3 to 11"):
        load(**MASSMS, MASSMS_SENDER_ID=sender)


@pytest.mark.parametrize("sender", ["MiTienda", "ABC", "Tienda2026", "58412123456"])
def test_good_sender_ids(sender: str) -> None:
    settings = load(**MASSMS, MASSMS_SENDER_ID=sender)
    assert settings.massms is not None and settings.massms.sender_id == sender


def test_env_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("RESPONDER_DATABASE=/tmp/x.db\n", encoding="utf-8")
    assert load_settings({}, env_file=str(env_file)).database == "/tmp/x.db"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in readme]
    assert missing == []
