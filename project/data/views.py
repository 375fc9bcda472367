"""What the API shows of a table: a `View` pairs it with its public model (each field a column,
a relationship or a count of referring rows), and from that alone come the statements that read
it, built once per shape, and the JSON-ready dicts and ETags made of their rows."""

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import aliased, configure_mappers
from sqlmodel import SQLModel, col

from project.auth.sessions import live_session
from project.errors import CONFLICT
from project.models import AuthSession, User

Row = tuple[Any, ...]
Select = sa.Select[Any]


@dataclass(frozen=True)
class Filter:
    """A list filter: its condition on a bound value, and how a query's value becomes it."""

    where: Callable[[Any], sa.ColumnElement[bool]]
    prepare: Callable[[Any], Any] = lambda value: value


@dataclass(frozen=True)
class Embedded:
    """A public field that is a relationship: the related rows as their public model."""

    name: str
    model: Any  # a table
    fields: tuple[str, ...]
    many: bool
    key: str | None  # a single row's: the column that names it (a hero's `team_id`)
    order_by: tuple[sa.ColumnElement[Any], ...]

    def of(self, row: Row, at: int) -> dict[str, Any] | None:
        """The embedded row whose columns start at `at`, or None (the outer join's nulls)."""
        values = row[at : at + len(self.fields)]
        if values[self.fields.index("id")] is None:
            return None
        return dict(zip(self.fields, values, strict=True))


def _embedded(model: type[SQLModel], public: type[BaseModel]) -> Iterator[Embedded]:
    """The public fields named like a relationship of `model`."""
    relationships = sa.inspect(model).relationships
    for name, field in public.model_fields.items():
        if (prop := relationships.get(name)) is not None:
            key = None if prop.uselist else next(iter(prop.local_columns)).key
            kinds = (field.annotation, *get_args(field.annotation))
            nested = next(t for t in kinds if isinstance(t, type) and issubclass(t, BaseModel))
            fields = tuple(nested.model_fields)
            yield Embedded(name, prop.mapper.class_, fields, prop.uselist, key, prop.order_by or ())


class View:
    """`model` (a table) as `public` shows it; `sorts` and `filters` are what its lists accept,
    `counts` its count fields (the counted rows' foreign key), `conflict` a unique clash's 409."""

    def __init__(
        self,
        model: type[SQLModel],
        public: type[BaseModel],
        *,
        sorts: Mapping[str, Any],
        filters: Mapping[str, Filter] | None = None,
        counts: Mapping[str, Any] | None = None,
        conflict: str = CONFLICT,
    ) -> None:
        configure_mappers()
        self.model: Any = model
        self.public, self.sorts, self.conflict = public, sorts, conflict
        self.filters, self.counts = dict(filters or {}), dict(counts or {})
        self.name = model.__name__.lower()
        # Rows of an owned table are their owner's; a user is its own.
        self.owner = "owner_id" if "owner_id" in model.model_fields else "id"
        self.embedded = tuple(_embedded(model, public))
        self._embedded_order = [column for e in self.embedded for column in e.order_by]
        # The rows a row names by a foreign key: of another table with owners (the owner's
        # own key aside), whose rows it may only name if they are its owner's too.
        shown = {e.key: e for e in self.embedded if e.key}
        mapper = sa.inspect(model)
        tables = {m.local_table: m.class_ for m in mapper.registry.mappers}
        self.references = tuple(
            shown.get(c.key) or Embedded(c.key, tables[fk.column.table], ("id",), False, c.key, ())
            for c in mapper.local_table.columns
            for fk in c.foreign_keys
            if c.key != self.owner and "owner_id" in fk.column.table.c
        )
        nested = {e.name for e in self.embedded} | set(self.counts)
        self.fields = tuple(f for f in public.model_fields if f not in nested)
        self.versioned = "version" in self.fields
        self._id = self.fields.index("id")
        # Where each public field is in a row, in the order `_select` selects in.
        at: dict[str, tuple[Embedded | None, int]] = {
            name: (None, i) for i, name in enumerate((*self.fields, *self.counts))
        }
        start = len(at)
        for embedded in self.embedded:
            at[embedded.name] = (embedded, start)
            start += len(embedded.fields)
        self._plan = [(name, *at[name]) for name in public.model_fields]

    def _select(self, source: Any, t: Any, *first: Any) -> Select:
        """The columns of `t` (the table, aliased) the public model shows, and what it embeds."""
        columns = [*first, *(getattr(t, field) for field in self.fields)]
        columns += [
            sa.select(sa.func.count()).where(key == t.id).scalar_subquery()
            for key in self.counts.values()
        ]
        columns += [getattr(e.model, field) for e in self.embedded for field in e.fields]
        stmt = sa.select(*columns).select_from(source)
        for embedded in self.embedded:
            stmt = stmt.outerjoin(getattr(t, embedded.name))
        return stmt

    def one(self) -> Select:
        """The caller's superuser flag and the row `:id` if the caller may see it, joined to
        the caller's live session: no row means 401, a row without the target 404."""
        t = aliased(self.model, name="target")  # users are the caller's table too
        visible = (getattr(t, self.owner) == col(User.id)) | col(User.is_superuser)
        callers = sa.orm.join(User, AuthSession, sa.true())
        source = callers.outerjoin(t, (t.id == sa.bindparam("id")) & visible)
        stmt = self._select(source, t, col(User.is_superuser))
        live = live_session(sa.bindparam("sid"), sa.bindparam("uid"))
        return stmt.where(live).order_by(*self._embedded_order)

    def row(self) -> Select:
        """The row `:id`, for whoever has already been let at it."""
        t = aliased(self.model, name="target")
        return self._select(t, t).where(t.id == sa.bindparam("id")).order_by(*self._embedded_order)

    def _where(self, scoped: bool, filters: frozenset[str]) -> list[sa.ColumnElement[bool]]:
        where = [self.filters[name].where(sa.bindparam(name)) for name in sorted(filters)]
        if scoped:
            where.append(getattr(self.model, self.owner) == sa.bindparam("owner"))
        return where

    def page(self, scoped: bool, sort: str, after: bool, filters: frozenset[str]) -> Select:
        """`:limit` rows in `sort` order (`after` the cursor's), each ending with its sort key."""
        key, descending, row_id = self.sorts[sort.lstrip("-")], sort[0] == "-", col(self.model.id)
        inner = sa.select(self.model, key.label("sort_key")).where(*self._where(scoped, filters))
        if after:
            position = sa.tuple_(key, row_id)
            bound = sa.tuple_(
                sa.bindparam("after_key", type_=key.type), sa.bindparam("after_id", type_=sa.Uuid())
            )
            inner = inner.where(position < bound if descending else position > bound)
        order = (key.desc(), row_id.desc()) if descending else (key, row_id)
        limit = sa.bindparam("limit", type_=sa.Integer)
        page = inner.order_by(*order).limit(limit).subquery("page")
        t = aliased(self.model, page)
        ends = [end.desc() if descending else end for end in (page.c.sort_key, page.c.id)]
        stmt = self._select(t, t).add_columns(page.c.sort_key)
        return stmt.order_by(*ends, *self._embedded_order)

    def total(self, scoped: bool, filters: frozenset[str]) -> Select:
        matching = sa.select(col(self.model.id)).where(*self._where(scoped, filters))
        return sa.select(sa.func.count()).select_from(matching.subquery())

    def items(self, rows: Sequence[Row], start: int = 0) -> list[tuple[dict[str, Any], Row]]:
        """Each item with its first row (rows come grouped by item, one per embedded row)."""
        found: list[tuple[dict[str, Any], Row]] = []
        row_id = start + self._id
        for row in rows:
            if row[row_id] is None:
                continue  # the outer join found nothing
            if not found or found[-1][1][row_id] != row[row_id]:
                item = {
                    name: row[start + at] if e is None else [] if e.many else e.of(row, start + at)
                    for name, e, at in self._plan
                }
                found.append((item, row))
            for name, e, at in self._plan:
                if e is not None and e.many and (nested := e.of(row, start + at)) is not None:
                    found[-1][0][name].append(nested)
        return found

    def item(self, row: SQLModel, **embedded: Any) -> dict[str, Any]:
        """A new row's item: nothing refers to it yet, so every count is 0."""
        values = {f: getattr(row, f) for f in self.fields} | dict.fromkeys(self.counts, 0)
        return {name: {**values, **embedded}[name] for name in self.public.model_fields}

    def etag(self, item: Mapping[str, Any]) -> str | None:
        """Its version, the versions of what it embeds and its counts (None: no versions)."""
        if not self.versioned:
            return None
        parts: list[object] = []
        for e in self.embedded:
            value = item[e.name]
            if e.many:
                parts.append([(row["id"], row["version"]) for row in value])
            else:
                parts.append(None if value is None else (value["id"], value["version"]))
        parts += [item[c] for c in self.counts]
        if not parts:
            return f'"{item["version"]}"'
        digest = hashlib.sha256(repr(tuple(parts)).encode()).hexdigest()[:12]
        return f'"{item["version"]}-{digest}"'
