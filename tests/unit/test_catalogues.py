"""The catalogues are complete: every key used anywhere exists, translated, in every locale."""

import ast
import re
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALES, LOCALES_DIR, Catalogues
from bot.rules import load_rules
from bot.services.announcements import CancelRefusal, TimeError
from bot.services.claims import ClaimRefusal
from bot.services.invites import InviteRefusal
from bot.services.points import CorrectionRefusal, Kind
from bot.services.points_rules import CheckoutInput
from bot.services.problem_machine import TRANSITIONS, Action, Refusal, Status
from bot.services.problems import ADD_PHOTOS, CATEGORISE
from bot.services.ranking import REASON_KINDS, Code
from bot.services.redemptions import CheckoutRefusal, IssueRefusal
from bot.services.roles import (
    EVERYONE_COMMANDS,
    GROUP_ADMIN_COMMANDS,
    GROUP_COMMANDS,
    MEMBER_COMMANDS,
    ROLE_COMMANDS,
    AreaKind,
    Role,
)
from bot.services.windows import WindowError
from handlers.problem_actions import REASON_ACTIONS, REJECT_PRESETS

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("bot", "handlers", "jobs")


def _catalog(locale: str) -> dict[str, str]:
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "greengrid.po").open("rb") as f:
        catalog = read_po(f, locale=locale)
    for message in catalog:
        assert not message.fuzzy or not message.id, f"{locale}: fuzzy {message.id}"
    return {str(m.id): str(m.string) for m in catalog if m.id}


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for folder in CODE_DIRS:
        for _file, _line, key, _comments, _context in extract_from_dir(
            ROOT / folder,
            method_map=[("**.py", "python")],
            keywords={"_": None, "tr": None, "t": None, "default": None, "reply": (3,)},
        ):
            if isinstance(key, str):
                keys.add(key)
    # Keys built from enums at run time.
    keys |= {f"role.{r.value}" for r in Role}
    keys |= {f"area.kind.{k.value}" for k in AreaKind}
    keys |= {f"invite.refused.{r.value}" for r in InviteRefusal}
    keys |= {f"status.{s.value}" for s in Status}
    keys |= {f"refusal.{r.value}" for r in Refusal}
    keys |= {f"history.{a.value}" for a in Action}
    keys |= {f"history.{extra}" for extra in (CATEGORISE, ADD_PHOTOS)}
    actions = [a.value for a in TRANSITIONS]
    keys |= {f"{prefix}.{a}" for a in actions for prefix in ("done", "reporter", "notice")}
    keys |= {f"group.{a.value}" for a in (Action.assign, Action.reject, Action.pass_check)}
    keys |= {f"reason.ask.{a.value}" for a in REASON_ACTIONS.values()}
    keys |= {f"card.duplicate.{why}" for why in ("same_photo", "nearby")}
    keys |= set(REJECT_PRESETS)
    keys |= {f"rank.code.{c.value}" for c in Code} | {"rank.code.none"}
    keys |= {f"rank.error.{e.value}" for e in WindowError}
    keys |= {f"rank.reason.{k}" for k in REASON_KINDS}
    keys |= {f"export.stage.{s}" for s in ("problems", "ranking", "points", "writing")}
    keys |= {f"export.points_kind.{k.value}" for k in Kind}
    keys |= {f"announce.time.{e.value}" for e in TimeError}
    keys |= {f"announce.cannot_cancel.{r.value}" for r in CancelRefusal}
    keys |= {f"announce.history.{s}" for s in ("released", "dropped", "cancelled")}
    # Points: ledger lines, activities, and every refusal.
    keys |= {f"points.entry.{k.value}" for k in Kind}
    keys |= {f"activity.{a}" for a in load_rules().points.activities}
    keys |= {f"claim.refusal.{r.value}" for r in ClaimRefusal}
    keys |= {f"claim.already.{status}" for status in ("approved", "refused")}
    keys |= {f"adjust.refused.{r.value}" for r in CorrectionRefusal}
    keys |= {f"redeem.refused.{r.value}" for r in IssueRefusal}
    keys |= {f"checkout.input.{r.value}" for r in CheckoutInput}
    keys |= {f"checkout.refused.{r.value}" for r in CheckoutRefusal}
    keys |= _key_shaped_literals()  # keys passed around before they are looked up
    return keys


KEY_SHAPE = re.compile(r"^[a-z_]+(\.[a-z0-9_]+)+$")
# Strings of the same shape that are not message keys: file names, logger names, the
# project's own modules (run with python -m) and matplotlib's settings (rcParams).
NOT_KEYS = re.compile(
    r"\.(json|ya?ml|toml|csv|db|txt|po|py|png|xlsx)$|^(greengrid|bot)\."
    r"|^(axes|font|figure|savefig)\."
)


def _key_shaped_literals() -> set[str]:
    """Every string constant in the code shaped like a key (``report.not_image``), wherever it
    is used: returned from a function, kept in a table, handed to a helper."""
    found: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and KEY_SHAPE.match(node.value)
                    and not NOT_KEYS.search(node.value)
                ):
                    found.add(node.value)
    return found


def _commands() -> set[str]:
    """Every command the bot answers (its CommandHandlers) or lists in a menu."""
    names = set(EVERYONE_COMMANDS) | set(MEMBER_COMMANDS) | set(GROUP_ADMIN_COMMANDS)
    names |= set(GROUP_COMMANDS) | {c for cs in ROLE_COMMANDS.values() for c in cs}
    for path in (ROOT / "handlers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "CommandHandler"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
    return names


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_locale_has_every_key_translated() -> None:
    catalogs = {locale: _catalog(locale) for locale in LOCALES}
    all_keys = set().union(*catalogs.values())
    for locale, catalog in catalogs.items():
        assert all_keys - set(catalog) == set(), f"{locale} lacks keys"
        empty = [k for k, v in catalog.items() if not v.strip()]
        assert empty == [], f"{locale} has untranslated keys"
    for key in all_keys:
        fields = {locale: _fields(catalogs[locale][key]) for locale in LOCALES}
        assert len({frozenset(f) for f in fields.values()}) == 1, (
            f"{key}: placeholders differ {fields}"
        )


def test_every_key_in_code_is_in_the_catalogues() -> None:
    used = _used_keys()
    assert len(used) > 30  # the extractor found the calls
    for locale in LOCALES:
        missing = sorted(used - set(_catalog(locale)))
        assert missing == [], f"{locale} lacks {missing}"


def test_key_shaped_literals_are_found() -> None:
    # A key only ever returned from a function (photo_of's refusals) is checked too.
    assert {"report.not_image", "report.too_big"} <= _key_shaped_literals()
    assert "greengrid.errors" not in _key_shaped_literals()


def test_every_command_has_a_menu_description() -> None:
    commands = _commands()
    assert {"start", "report", "issue", "issues", "rectified", "cancel", "bindgroup"} <= commands
    for locale in LOCALES:
        missing = sorted(c for c in commands if f"cmd.{c}" not in _catalog(locale))
        assert missing == [], f"{locale} has no menu text for {missing}"


def test_chinese_is_chinese_and_english_is_not() -> None:
    han = re.compile(r"[\u4e00-\u9fff]")
    zh, en = _catalog("zh_CN"), _catalog("en")
    for key, text in en.items():
        assert not han.search(text), f"en {key} has Chinese: {text}"
    words = re.compile(r"[A-Za-z]{4}")
    untranslated = [
        k for k, v in zh.items() if v == en[k] and words.search(re.sub(r"\{\w+\}", "", v))
    ]
    assert untranslated == []


def _string_literals(path: Path) -> list[str]:
    """String constants in a module, leaving out docstrings (they are for developers)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_user_text_literals_in_handlers() -> None:
    han = re.compile(r"[\u4e00-\u9fff]")
    for path in (ROOT / "handlers").glob("*.py"):
        chinese = [text for text in _string_literals(path) if han.search(text)]
        assert chinese == [], f"Chinese literal in {path.name}: {chinese}"


@pytest.mark.parametrize("locale", LOCALES)
def test_lookup_and_fallback(locale: str) -> None:
    c = Catalogues("zh_CN")
    assert c.text(locale, "bind.done", area="X").count("X") == 1
    assert c.text("fr", "lang.set") == c.text("zh_CN", "lang.set")  # unknown locale: default
    assert c.text(locale, "bind.done").count("{area}") == 1  # a missing value stays visible
