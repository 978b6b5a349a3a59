"""The owner edits the rules in a real browser (Debian's Chromium, Playwright): the YAML editor
checks as one types, tries a message against the draft beside the rules in force, publishes,
and a customer's SMS gets the new answer within 2 s; an older version restored brings the old
answer back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests import loopback
from tests.conftest import RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.test_admin_browser import browser, page, quick_polling, screenshots, sign_in

__all__ = ["browser", "page", "quick_polling", "screenshots"]  # fixtures shared with the inbox's

CUSTOMER = "584121112233"


@pytest.fixture
def owner_shop(
    start_app: Callable[..., RunningApp], bundled: Path, massiva: tuple[FakeMassiva, str]
) -> RunningApp:
    """The bundled rules and templates, on Monday at 10:00 in Caracas (open)."""
    fake, url = massiva
    return start_app(
        RESPONDER_RULES=str(bundled / "rules.yaml"),
        RESPONDER_TEMPLATES=str(bundled / "templates"),
        **massiva_env(url, fake),
    )


def customer_gets(
    shop: RunningApp, fake: FakeMassiva, text: str, phone: str, within: float = 2.0
) -> str:
    """What the customer's SMS `text` is answered, waiting at most `within` seconds."""
    before = len(fake.sent)
    response = loopback.get(shop.webhook(), params={"msg": text, "phone": phone})
    assert response.status_code == 200
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        answers = [s.text for s in fake.sent[before:] if s.phone == phone]
        if answers:
            return answers[0]
        time.sleep(0.05)
    raise AssertionError(f"no answer to {text!r} within {within} s")


def test_the_yaml_editor_checks_tries_publishes_and_restores(
    page: Page,
    owner_shop: RunningApp,
    massiva: tuple[FakeMassiva, str],
    screenshots: Path,
    bundled: Path,
) -> None:
    fake, _ = massiva
    before = customer_gets(owner_shop, fake, "horario", "584121000001")
    assert "8:00 a 17:00" in before
    sign_in(page, owner_shop, "/admin/rules/editor")
    expect(page.get_by_role("heading", name="Editor de reglas")).to_be_visible()
    expect(page.locator("#findings")).to_contain_text("Sin errores ni avisos")
    editor = page.get_by_label("rules.yaml")
    text = editor.input_value()

    # A reply with ': ' left unquoted breaks the YAML: shown at once, on its line, in Spanish.
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("    reply: ")) + 1
    lines[at - 1] = "    reply: Horario: de 8 a 5"
    editor.fill("\n".join(lines) + "\n")
    expect(page.locator("#findings .problem")).to_contain_text(f"Línea {at}:")
    expect(page.locator("#findings .problem")).to_contain_text("comillas")
    expect(page.locator("#gutter .problem")).to_have_text(str(at))
    # A rule below the closed-hours rule: the warning says it never answers while closed.
    delivery = (
        "  - name: delivery\n    keywords: [delivery, envio]\n"
        '    reply: "Hacemos delivery en la zona."\n'
    )
    assert "  - name: otro\n" in text  # the fallback, after the closed-hours rule
    edited = text.replace('"08:00-17:00"', '"09:00-18:00"', 1).replace(
        "  - name: otro\n", delivery + "  - name: otro\n"
    )
    editor.fill(edited)
    expect(page.locator("#findings .warning").filter(has_text="delivery")).to_be_visible()
    expect(page.locator("#findings .problem")).to_have_count(0)

    # The try box: the draft beside the rules in force.
    page.get_by_label("Mensaje").fill("¿a qué hora abren?")
    page.get_by_role("button", name="Probar").click()
    trial = page.locator("#trial")
    expect(trial.locator(".result").first).to_contain_text("9:00 a 18:00")
    expect(trial.locator(".result").last).to_contain_text("8:00 a 17:00")
    page.set_viewport_size({"width": 1100, "height": 900})
    page.screenshot(path=str(screenshots / "rules-editor.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshots / "rules-editor-phone.png"))
    page.set_viewport_size({"width": 1100, "height": 720})

    page.get_by_label("Nota de la versión").fill("horario de diciembre")
    page.get_by_role("button", name="Publicar").click()
    expect(page.locator(".notice")).to_contain_text("Versión 2 publicada")
    expect(page.locator("pre.diff ins").first).to_be_visible()
    published = time.monotonic()
    answer = customer_gets(owner_shop, fake, "horario", "584121000002")
    assert "9:00 a 18:00" in answer and time.monotonic() - published < 2.0
    assert (bundled / "rules.yaml").read_text(encoding="utf-8") == edited
    page.screenshot(path=str(screenshots / "rules-version.png"), full_page=True)

    # Restoring version 1 brings the old answer back.
    page.get_by_role("link", name="Versiones").click()
    versions = page.locator("#versions")
    expect(versions).to_contain_text("horario de diciembre")
    versions.locator("tr", has_text="archivo").get_by_role("button", name="Restaurar").click()
    expect(page.locator(".notice")).to_contain_text("Versión 1 restaurada como versión 3")
    assert customer_gets(owner_shop, fake, "horario", "584121000003") == before


def test_an_owner_edits_answers_hours_and_a_new_rule_with_forms_then_restores(
    page: Page,
    owner_shop: RunningApp,
    massiva: tuple[FakeMassiva, str],
    screenshots: Path,
) -> None:
    fake, _ = massiva
    before = customer_gets(owner_shop, fake, "horario", "584121000011")
    sign_in(page, owner_shop, "/admin/rules")
    notice = page.locator("p.notice[role=status]")

    # The `horario` answer, in its own form.
    page.get_by_role("link", name="Editar la regla horario").click()
    reply = page.locator("#rule-reply")
    reply.fill("Le esperamos {{ hours.week }}.")
    expect(page.locator("#rule-reply-counter")).to_contain_text("caracteres")
    page.locator("#rule-submit").click()
    expect(notice).to_contain_text("versión 2")

    # The hours, in one form: Monday to Friday 9:00 to 18:00.
    for day in ("mon", "tue", "wed", "thu", "fri"):
        page.locator(f"#hours-{day}-from").fill("09:00")
        page.locator(f"#hours-{day}-to").fill("18:00")
    page.locator("#hours-submit").click()
    expect(notice).to_contain_text("versión 3")

    # A delivery rule placed below the closed-hours rule: the warning says so.
    page.locator("#rule-name").fill("delivery")
    page.locator("#rule-keywords").fill("delivery, envio")
    page.locator("#rule-reply").fill("Hacemos delivery en toda la ciudad.")
    page.locator("#rule-position").select_option(label="antes de «otro»")
    page.locator("#rule-submit").click()
    expect(notice).to_contain_text("versión 4")
    warning = page.locator("#rule-warnings li", has_text="delivery")
    expect(warning).to_contain_text("fuera_de_horario")
    page.screenshot(path=str(screenshots / "rules-forms.png"), full_page=False)
    # Moved above it: the warning goes away.
    page.get_by_role("button", name="Subir la regla delivery").click()
    expect(notice).to_contain_text("versión 5")
    expect(page.locator("#rule-warnings li", has_text="delivery")).to_have_count(0)
    names = page.locator(".rule-name code").all_inner_texts()
    assert names.index("delivery") < names.index("fuera_de_horario")

    published = time.monotonic()
    answer = customer_gets(owner_shop, fake, "horario", "584121000012")
    assert time.monotonic() - published < 2.0
    assert answer.startswith("Le esperamos lunes a viernes de 9:00 a 18:00")
    assert customer_gets(owner_shop, fake, "delivery", "584121000013") == (
        "Hacemos delivery en toda la ciudad."
    )

    # The previous version comes back in one click.
    page.goto(owner_shop.url + "/admin/rules/versions")
    page.locator("#versions tr", has_text="archivo").get_by_role("button", name="Restaurar").click()
    expect(page.locator(".notice")).to_contain_text("restaurada como versión 6")
    assert customer_gets(owner_shop, fake, "horario", "584121000014") == before
