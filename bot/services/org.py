"""The organisation file (YAML or CSV) and its idempotent import into areas."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.roles import AreaKind
from models import Area


class OrgFileError(ValueError):
    """The file cannot be imported; the message says where and why."""


@dataclass(frozen=True)
class AreaSpec:
    kind: AreaKind
    code: str
    name: str
    parent_code: str | None


@dataclass(frozen=True)
class AreaView:
    id: int
    kind: AreaKind
    code: str
    name: str
    parent_id: int | None


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0


def _spec_from_yaml(data: object) -> list[AreaSpec]:
    if not isinstance(data, dict) or not isinstance(data.get("district"), dict):
        raise OrgFileError("expected a top-level 'district: {code, name}' and 'subjects:' list")
    district = data["district"]
    specs = [AreaSpec(AreaKind.district, str(district["code"]), str(district["name"]), None)]
    for subject in data.get("subjects") or []:
        specs.append(
            AreaSpec(AreaKind.subject, str(subject["code"]), str(subject["name"]), specs[0].code)
        )
        for village in subject.get("villages") or []:
            specs.append(
                AreaSpec(
                    AreaKind.village,
                    str(village["code"]),
                    str(village["name"]),
                    str(subject["code"]),
                )
            )
    return specs


def _spec_from_csv(text: str) -> list[AreaSpec]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"kind", "code", "name", "parent_code"} - set(reader.fieldnames or [])
    if missing:
        raise OrgFileError(f"CSV header lacks: {', '.join(sorted(missing))}")
    specs = []
    for line, row in enumerate(reader, start=2):
        try:
            kind = AreaKind(row["kind"].strip())
        except ValueError:
            raise OrgFileError(f"line {line}: kind must be district, subject or village") from None
        specs.append(
            AreaSpec(
                kind,
                row["code"].strip(),
                row["name"].strip(),
                (row["parent_code"] or "").strip() or None,
            )
        )
    return specs


def parse_org_file(path: Path) -> list[AreaSpec]:
    """Areas in parent-before-child order, checked for shape and references."""
    try:
        text = path.read_text(encoding="utf-8-sig")
        specs = (
            _spec_from_csv(text)
            if path.suffix.lower() == ".csv"
            else _spec_from_yaml(yaml.safe_load(text))
        )
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise OrgFileError(f"cannot read {path}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise OrgFileError(f"{path}: missing or malformed field {exc}") from None
    _check(specs)
    return specs


_PARENT_KIND = {AreaKind.subject: AreaKind.district, AreaKind.village: AreaKind.subject}


def _check(specs: list[AreaSpec]) -> None:
    seen: dict[str, AreaSpec] = {}
    for spec in specs:
        if not spec.code or not spec.name:
            raise OrgFileError("every area needs a code and a name")
        if spec.code in seen:
            raise OrgFileError(f"code {spec.code} appears twice")
        if spec.kind is AreaKind.district:
            if spec.parent_code:
                raise OrgFileError(f"district {spec.code} cannot have a parent")
        else:
            parent = seen.get(spec.parent_code or "")
            if parent is None or parent.kind is not _PARENT_KIND[spec.kind]:
                raise OrgFileError(
                    f"{spec.kind} {spec.code}: parent {spec.parent_code!r} must be a "
                    f"{_PARENT_KIND[spec.kind]} listed before it"
                )
        seen[spec.code] = spec
    if sum(1 for s in specs if s.kind is AreaKind.district) != 1:
        raise OrgFileError("exactly one district is expected")


async def import_org(session: AsyncSession, specs: list[AreaSpec]) -> ImportResult:
    """Create or update areas by code. Running it twice gives the same rows; nothing is deleted
    (problems and people keep their areas), so an area left out of the file stays as it was."""
    existing = {a.code: a for a in (await session.scalars(select(Area))).all()}
    result = ImportResult()
    for spec in specs:
        parent_id = existing[spec.parent_code].id if spec.parent_code else None
        area = existing.get(spec.code)
        if area is None:
            area = Area(kind=spec.kind.value, code=spec.code, name=spec.name, parent_id=parent_id)
            session.add(area)
            await session.flush()
            existing[spec.code] = area
            result.created.append(spec.code)
        elif (area.kind, area.name, area.parent_id) != (spec.kind.value, spec.name, parent_id):
            area.kind, area.name, area.parent_id = spec.kind.value, spec.name, parent_id
            result.updated.append(spec.code)
        else:
            result.unchanged += 1
    await session.flush()
    return result


def _view(area: Area) -> AreaView:
    return AreaView(area.id, AreaKind(area.kind), area.code, area.name, area.parent_id)


async def areas_of_kind(session: AsyncSession, kind: AreaKind) -> list[AreaView]:
    rows = await session.scalars(select(Area).where(Area.kind == kind.value).order_by(Area.code))
    return [_view(a) for a in rows]


async def area_by_id(session: AsyncSession, area_id: int) -> AreaView | None:
    area = await session.get(Area, area_id)
    return _view(area) if area else None


async def find_area(session: AsyncSession, text: str) -> AreaView | None:
    """By code (case-insensitive) or exact name."""
    needle = text.strip()
    rows = await session.scalars(select(Area).where(func.upper(Area.code) == needle.upper()))
    area = rows.first() or (await session.scalars(select(Area).where(Area.name == needle))).first()
    return _view(area) if area else None


async def district(session: AsyncSession) -> AreaView | None:
    area = (await session.scalars(select(Area).where(Area.kind == AreaKind.district.value))).first()
    return _view(area) if area else None
