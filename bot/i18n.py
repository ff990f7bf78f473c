"""Message catalogues: gettext `.po` files in `locales/`, one key per message.

The `.po` files are read with Babel and compiled in memory at start-up, so a fresh clone needs no
build step. A key missing from a locale falls back to the default locale, then to the key itself
(and the catalogue test fails on any such gap).
"""

from __future__ import annotations

import gettext
import io
import string
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "greengrid"
LOCALES: tuple[str, ...] = ("zh_CN", "en")


def _compile(po_path: Path) -> gettext.GNUTranslations:
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=po_path.parent.parent.name)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


class _Lenient(dict[str, object]):
    """Leaves an unknown ``{placeholder}`` visible instead of raising in front of a user."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Catalogues:
    def __init__(self, default_locale: str = "zh_CN", directory: Path = LOCALES_DIR) -> None:
        self.default_locale = default_locale
        self._translations: dict[str, gettext.GNUTranslations] = {
            locale: _compile(directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po")
            for locale in LOCALES
        }

    def resolve(self, locale: str | None) -> str:
        return locale if locale in self._translations else self.default_locale

    def has(self, locale: str, key: str) -> bool:
        return self._translations[locale].gettext(key) != key

    def text(self, locale: str | None, key: str, **values: object) -> str:
        locale = self.resolve(locale)
        message = self._translations[locale].gettext(key)
        if message == key and locale != self.default_locale:
            message = self._translations[self.default_locale].gettext(key)
        if not values:
            return message
        return string.Formatter().vformat(message, (), _Lenient(values))

    def translator(self, locale: str | None) -> Translator:
        return Translator(self, self.resolve(locale))


class Translator:
    """``_("key", name=value)`` bound to one locale; handlers get one per update."""

    def __init__(self, catalogues: Catalogues, locale: str) -> None:
        self.catalogues = catalogues
        self.locale = locale

    def __call__(self, key: str, /, **values: object) -> str:
        return self.catalogues.text(self.locale, key, **values)
