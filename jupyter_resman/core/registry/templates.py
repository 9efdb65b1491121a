"""Templates: reusable definitions to create standard resources from.

A template stores a resource's definition (kind, class, attributes,
quantities, dimensions) plus a description, tags, a version, its creator and
the overrides every user must supply (``"name"``, ``"attributes.lot"``...).

>>> import tempfile, jupyter_resman as rm
>>> from jupyter_resman.core.registry import Grid
>>> with rm.Session(home=tempfile.mkdtemp()) as s:
...     t = s.registry.create_template(
...         Grid(name="plate", resource_class="plate", rows=8, columns=12),
...         "plate96", required_overrides=["name"], tags=["plate"])
...     p = s.registry.create_from_template("plate96", name="assay plate 1")
...     (p.rows, p.columns, p.name)
(8, 12, 'assay plate 1')
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..errors import ResourceNotFoundError, TemplateError
from ._core import RegistryCore
from .resources import Resource, kind_class, resource_from_dict, to_datetime
from .schema import templates as templates_table

if TYPE_CHECKING:
    import pandas

__all__ = ["Template", "TemplateOps"]

_FIELDS = ("name", "resource_class", "owner", "attributes")
_MAX_NAME = 200


@dataclasses.dataclass(frozen=True)
class Template:
    """A stored template (see :meth:`TemplateOps.create_template`)."""

    name: str
    kind: str
    definition: dict[str, Any]
    description: str = ""
    required_overrides: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    version: str = "1.0.0"
    created_by: str | None = None
    created: float = 0.0
    updated: float = 0.0

    @property
    def created_at(self) -> _dt.datetime:
        return to_datetime(self.created)  # type: ignore[return-value]

    @property
    def updated_at(self) -> _dt.datetime:
        return to_datetime(self.updated)  # type: ignore[return-value]

    def resource(self) -> Resource:
        """A new, unsaved resource with the template's definition."""
        return resource_from_dict(self.definition)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what ``template_info`` returns)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "required_overrides": list(self.required_overrides),
            "tags": list(self.tags),
            "version": self.version,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "definition": dict(self.definition),
        }


def _template(row: Any) -> Template:
    return Template(
        name=row.name, kind=row.kind, definition=dict(row.definition),
        description=row.description or "", required_overrides=tuple(row.required_overrides),
        tags=tuple(row.tags), version=row.version, created_by=row.created_by,
        created=row.created_at, updated=row.updated_at,
    )


def _check_paths(kind: str, paths: Iterable[str]) -> tuple[str, ...]:
    """Validate required-override paths: a field of the kind or ``attributes.<key>``."""
    cls = kind_class(kind)
    allowed = set(_FIELDS) | set(cls.extra_fields)
    out = []
    for path in paths:
        if not isinstance(path, str):
            raise TemplateError(f"required override {path!r} must be a string like 'name'")
        head, _, rest = path.partition(".")
        if head not in allowed or (rest and head != "attributes"):
            raise TemplateError(
                f"required override {path!r}: use a field of a {kind} "
                f"({', '.join(sorted(allowed))}) or 'attributes.<key>'"
            )
        out.append(path)
    return tuple(dict.fromkeys(out))


def _apply(
    definition: dict[str, Any], overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    """Apply overrides (nested ``attributes`` dict or ``attributes.key`` paths); returns
    the new definition and the set of paths that were given."""
    kind = str(definition.get("kind"))
    allowed = set(_FIELDS) | set(kind_class(kind).extra_fields)
    result = dict(definition)
    result["attributes"] = dict(definition.get("attributes") or {})
    given: set[str] = set()
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if key == "attributes":
            if not isinstance(value, Mapping):
                raise TemplateError("overrides['attributes'] must be a dict; it is merged in")
            result["attributes"].update(value)
            given.update(f"attributes.{k}" for k in value)
            given.add("attributes")
        elif head == "attributes" and rest:
            result["attributes"][rest] = value
            given.add(key)
        elif key not in allowed:
            raise TemplateError(
                f"{key!r} cannot be overridden in a {kind}; use one of "
                f"{', '.join(sorted(allowed))} or 'attributes.<key>'"
            )
        else:
            result[key] = value
            given.add(key)
    return result, given


class TemplateOps(RegistryCore):
    """Resource templates (mixed into Registry)."""

    def create_template(
        self,
        resource: Resource | str,
        name: str,
        *,
        description: str = "",
        required_overrides: Iterable[str] = (),
        tags: Iterable[str] = (),
        version: str = "1.0.0",
        created_by: str | None = None,
        replace: bool = False,
    ) -> Template:
        """Store ``resource``'s definition (an object, or the id of a stored one) as a template.

        ``required_overrides`` lists what every user must supply, e.g.
        ``["name", "attributes.sample_id"]``. An existing template of that
        name is a :class:`TemplateError` unless ``replace=True``.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
            raise TemplateError(f"template name {name!r}: use a non-empty name of at most "
                                f"{_MAX_NAME} characters")
        source = resource if isinstance(resource, Resource) else self._read(
            lambda conn: self._fetch(conn, resource))
        definition = source.definition()
        required = _check_paths(source.kind, required_overrides)
        tag_list = sorted({str(t) for t in tags})

        def apply(conn: sa.Connection) -> Template:
            now = self._now()
            exists = conn.execute(sa.select(templates_table.c.name)
                                  .where(templates_table.c.name == name)).first()
            values = {
                "kind": source.kind, "definition": definition, "description": description,
                "required_overrides": list(required), "tags": tag_list, "version": str(version),
                "created_by": created_by, "updated_at": now,
            }
            if exists is not None:
                if not replace:
                    raise TemplateError(
                        f"a template named {name!r} exists; pick another name, update it with "
                        "update_template(), or pass replace=True"
                    )
                conn.execute(templates_table.update().where(templates_table.c.name == name)
                             .values(created_at=now, **values))
            else:
                conn.execute(templates_table.insert().values(name=name, created_at=now, **values))
            return self._get_template(conn, name)

        return self._write(apply)

    def create_from_template(
        self,
        template: str | Template,
        *,
        overrides: Mapping[str, Any] | None = None,
        parent: Resource | str | None = None,
        key: Any = None,
        token: str | None = None,
        **fields: Any,
    ) -> Resource:
        """Add a new resource built from a template, with ``overrides`` applied.

        Overrides are fields (``name="Plate #2"``, ``quantity=500``) given as
        keywords or in ``overrides``; ``overrides={"attributes": {...}}``
        merges into the template's attributes, ``"attributes.lot": "L7"`` sets
        one. Every required override must be given (:class:`TemplateError`
        lists the missing ones).
        """
        tpl = template if isinstance(template, Template) else self.get_template(template)
        wanted = {**dict(overrides or {}), **fields}
        definition, given = _apply(tpl.definition, wanted)
        missing = [p for p in tpl.required_overrides if p not in given]
        if missing:
            example = ", ".join(f"{p.split('.')[-1]}=..." for p in missing)
            raise TemplateError(
                f"template {tpl.name!r} needs overrides for {', '.join(missing)}; e.g. "
                f"create_from_template({tpl.name!r}, {example}) (attributes via "
                "overrides={'attributes': {...}})"
            )
        try:
            resource = resource_from_dict(definition)
        except TypeError as exc:
            raise TemplateError(f"template {tpl.name!r}: bad override ({exc})") from None
        resource.attributes.setdefault("template", tpl.name)
        resource.attributes.setdefault("template_version", tpl.version)
        return self.add(resource, parent=parent, key=key, token=token)  # type: ignore[attr-defined]

    def get_template(self, name: str) -> Template:
        """The template called ``name`` (:class:`ResourceNotFoundError` if none)."""
        return self._read(lambda conn: self._get_template(conn, name))

    def _get_template(self, conn: sa.Connection, name: str) -> Template:
        row = conn.execute(sa.select(templates_table).where(templates_table.c.name == name)).first()
        if row is None:
            raise ResourceNotFoundError(
                f"no template named {name!r}; list them with registry.list_templates()"
            )
        return _template(row)

    def template_info(self, name: str) -> dict[str, Any]:
        """A template's metadata and definition as a JSON-able dict."""
        return self.get_template(name).to_dict()

    def list_templates(
        self,
        *,
        kind: str | None = None,
        tags: Iterable[str] | None = None,
        created_by: str | None = None,
        as_frame: bool = False,
    ) -> list[Template] | pandas.DataFrame:
        """Templates by name; ``tags`` keeps those carrying *all* the tags given."""
        t = templates_table.c
        query = sa.select(templates_table).order_by(t.name)
        if kind is not None:
            query = query.where(t.kind == kind_class(kind).kind)
        if created_by is not None:
            query = query.where(t.created_by == created_by)
        rows = self._read(lambda conn: conn.execute(query).all())
        found = [_template(row) for row in rows]
        if tags is not None:
            wanted = set(tags)
            found = [tpl for tpl in found if wanted <= set(tpl.tags)]
        if not as_frame:
            return found
        import pandas as pd

        records = [tpl.to_dict() for tpl in found]
        columns = ["name", "kind", "description", "required_overrides", "tags", "version",
                   "created_by", "created_at", "updated_at"]
        return pd.DataFrame([{c: r[c] for c in columns} for r in records], columns=columns)

    def templates_by_kind(self) -> dict[str, list[str]]:
        """``{kind: [template names]}``, for menus."""
        out: dict[str, list[str]] = {}
        for tpl in self.list_templates():  # type: ignore[union-attr]
            out.setdefault(tpl.kind, []).append(tpl.name)
        return out

    def update_template(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        required_overrides: Iterable[str] | None = None,
        created_by: str | None = None,
        **definition: Any,
    ) -> Template:
        """Change a template's metadata and/or definition fields.

        Definition keywords follow the override rules: ``attributes={...}``
        merges, ``quantity=...`` replaces.
        """

        def apply(conn: sa.Connection) -> Template:
            current = self._get_template(conn, name)
            values: dict[str, Any] = {"updated_at": self._now()}
            if definition:
                new_def, _ = _apply(current.definition, definition)
                try:
                    resource_from_dict(new_def).validate()
                except TypeError as exc:
                    raise TemplateError(f"template {name!r}: bad field ({exc})") from None
                values["definition"] = new_def
            if description is not None:
                values["description"] = description
            if tags is not None:
                values["tags"] = sorted({str(t) for t in tags})
            if version is not None:
                values["version"] = str(version)
            if required_overrides is not None:
                values["required_overrides"] = list(_check_paths(current.kind, required_overrides))
            if created_by is not None:
                values["created_by"] = created_by
            conn.execute(templates_table.update().where(templates_table.c.name == name)
                         .values(**values))
            return self._get_template(conn, name)

        return self._write(apply)

    def delete_template(self, name: str) -> bool:
        """Delete a template for good; returns whether one existed."""
        stmt = templates_table.delete().where(templates_table.c.name == name)
        return bool(self._write(lambda conn: conn.execute(stmt).rowcount))

