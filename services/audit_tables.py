"""One read-model table compared with its replayed copy, row by row, inside PostgreSQL.

Both sides are read in one query (`EXCEPT ALL` each way, every column as text), so equal
tables cost one pass over each and send nothing back; only differing rows leave the
database. Order does not matter. Rows are paired by the table's primary key (else a unique
index on NOT NULL columns): a row on both sides with other values is listed column by
column, a row with no partner as being on one side only. Columns the two tables do not
share are a difference of their own; the shared ones are still compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

# rows listed per table and side; the rest are counted
DETAIL_LIMIT = 200
VALUE_WIDTH = 120


@dataclass
class TableDiff:
    table: str
    key: tuple[str, ...] = ()
    rows: int = 0  # rows of the live table
    missing: str | None = None  # "live" or "replayed": the table is not there
    columns_only_live: list[str] = field(default_factory=list)
    columns_only_replayed: list[str] = field(default_factory=list)
    # (key values, [(column, live value, replayed value)])
    changed: list[tuple[tuple, list[tuple[str, str | None, str | None]]]] = field(
        default_factory=list
    )
    only_live: list[dict] = field(default_factory=list)
    only_replayed: list[dict] = field(default_factory=list)
    unlisted: int = 0  # differing rows beyond DETAIL_LIMIT

    @property
    def count(self) -> int:
        """How many differences: each column set, changed row and one-sided row is one."""
        return (
            (1 if self.missing else 0)
            + (1 if self.columns_only_live or self.columns_only_replayed else 0)
            + len(self.changed)
            + len(self.only_live)
            + len(self.only_replayed)
            + self.unlisted
        )

    def lines(self) -> list[str]:
        """The differences, one line each, for a person to read."""
        t = self.table
        out: list[str] = []
        if self.missing:
            out.append(f"table {t}: no such table in the {self.missing} model")
        if self.columns_only_live:
            out.append(f"table {t}: columns only live: {', '.join(self.columns_only_live)}")
        if self.columns_only_replayed:
            out.append(f"table {t}: columns only replayed: {', '.join(self.columns_only_replayed)}")
        for key, columns in self.changed:
            for column, live, replayed in columns:
                out.append(
                    f"table {t} [{_key_text(self.key, key)}] {column}: "
                    f"live {_value(live)}, replayed {_value(replayed)}"
                )
        for side, rows in (("live", self.only_live), ("replayed", self.only_replayed)):
            for row in rows:
                where = f" [{_key_text(self.key, tuple(row[k] for k in self.key))}]"
                values = ", ".join(f"{c}={_value(v)}" for c, v in row.items() if c not in self.key)
                out.append(f"table {t}{where if self.key else ''} row only {side}: {values}")
        if self.unlisted:
            out.append(f"table {t}: {self.unlisted} more differing rows not listed")
        return out


def _value(value: str | None) -> str:
    if value is None:
        return "NULL"
    text = repr(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def _key_text(names: tuple[str, ...], values: tuple) -> str:
    return ", ".join(
        f"{n}={v if v is not None else 'NULL'}" for n, v in zip(names, values, strict=True)
    )


def _relation(curs, schema: str, table: str) -> int | None:
    curs.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text))::oid", (schema, table))
    return curs.fetchone()[0]


def _columns(curs, oid: int) -> list[str]:
    curs.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        (oid,),
    )
    return [r[0] for r in curs.fetchall()]


def key_columns(curs, oid: int) -> tuple[str, ...]:
    """The primary key's columns, else those of a unique index on NOT NULL columns, else ()."""
    curs.execute(
        "SELECT i.indisprimary,"
        " array_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum)),"
        " bool_and(a.attnotnull)"
        " FROM pg_index i JOIN pg_attribute a"
        "  ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey::int2[])"
        " WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL"
        "  AND i.indexprs IS NULL"
        " GROUP BY i.indexrelid, i.indisprimary"
        " ORDER BY i.indisprimary DESC, count(*), i.indexrelid",
        (oid,),
    )
    for primary, names, not_null in curs.fetchall():
        if primary or not_null:
            return tuple(names)
    return ()


def count_rows(curs, schema: str, table: str) -> int:
    curs.execute(
        sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    )
    return curs.fetchone()[0]


def compare_table(curs, live_schema: str, replay_schema: str, table: str) -> TableDiff:
    """`table` in `live_schema` against the same table in `replay_schema`, read by `curs`
    (a tuple-row cursor; in the caller's transaction, whose snapshot both sides are read in).
    """
    diff = TableDiff(table)
    live_oid = _relation(curs, live_schema, table)
    replay_oid = _relation(curs, replay_schema, table)
    if live_oid is None and replay_oid is not None:
        # a live model that never started has no tables: as empty as the replay up to 0
        if count_rows(curs, replay_schema, table) == 0:
            return diff
    if live_oid is None or replay_oid is None:
        diff.missing = "live" if live_oid is None else "replayed"
        return diff
    live_columns = _columns(curs, live_oid)
    replay_columns = _columns(curs, replay_oid)
    diff.columns_only_live = [c for c in live_columns if c not in replay_columns]
    diff.columns_only_replayed = [c for c in replay_columns if c not in live_columns]
    columns = [c for c in live_columns if c in replay_columns]
    diff.rows = count_rows(curs, live_schema, table)
    if not columns:
        return diff
    key = key_columns(curs, live_oid) or key_columns(curs, replay_oid)
    diff.key = key = tuple(k for k in key if k in columns)

    select = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)
    live = sql.SQL("SELECT {} FROM {}.{}").format(
        select, sql.Identifier(live_schema), sql.Identifier(table)
    )
    replayed = sql.SQL("SELECT {} FROM {}.{}").format(
        select, sql.Identifier(replay_schema), sql.Identifier(table)
    )
    order = sql.SQL(", ").join(sql.Literal(columns.index(k) + 2) for k in key) if key else None
    query = sql.SQL(
        "SELECT * FROM (SELECT 'live' AS side, d.* FROM ({live} EXCEPT ALL {replayed}) d"
        " UNION ALL SELECT 'replayed', d.* FROM ({replayed} EXCEPT ALL {live}) d) x"
    ).format(live=live, replayed=replayed)
    if order is not None:
        query += sql.SQL(" ORDER BY {}, 1").format(order)
    curs.execute(query)
    sides: dict[str, list[dict]] = {"live": [], "replayed": []}
    for side, *values in curs:
        if len(sides[side]) < DETAIL_LIMIT:
            sides[side].append(dict(zip(columns, values, strict=True)))
        else:
            diff.unlisted += 1
    _pair(diff, columns, sides["live"], sides["replayed"])
    return diff


def _pair(diff: TableDiff, columns: list[str], live: list[dict], replayed: list[dict]) -> None:
    """Rows with the same key on both sides become column differences."""
    if not diff.key:
        diff.only_live, diff.only_replayed = live, replayed
        return
    by_key = {tuple(r[k] for k in diff.key): r for r in replayed}
    for row in live:
        key = tuple(row[k] for k in diff.key)
        other = by_key.pop(key, None)
        if other is None:
            diff.only_live.append(row)
            continue
        diff.changed.append((key, [(c, row[c], other[c]) for c in columns if row[c] != other[c]]))
    diff.only_replayed = list(by_key.values())
