"""The phase a board page asks for, with its challenge, its board counter and the reader's team, in one query."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Model

from competitions.models import Challenge, Phase
from leaderboard.models import BoardVersion
from teams.models import Membership, Team


def board_phase(*, challenge_slug: str = "", phase_slug: str = "", phase_id: int | None = None,
                viewer_id: int | None = None) -> Phase | None:
    """The phase (by slugs or id) with its challenge and its board counter (``board_number``), in one query;
    with ``viewer_id``, also that user's team in the challenge (``viewer_team``: its id and name, or None).

    Raw SQL, its text written once per process from the models' metadata: the ORM expresses the same in one
    query too (``Phase.objects.select_related("challenge")`` with two subqueries), but building and compiling
    it on every request costs more than all the rest of a cached read (docs/performance.md, "One query per
    cached read"). ``test_board_phase_reads_what_the_orm_reads_in_one_query`` holds the two equal."""
    by_id, with_viewer = phase_id is not None, viewer_id is not None
    params: list[Any] = [viewer_id] if with_viewer else []
    params += [phase_id] if by_id else [challenge_slug, phase_slug]
    with connection.cursor() as cursor:
        cursor.execute(_board_phase_sql(by_id, with_viewer), params)
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(Phase._meta.concrete_fields)
    phase = _from_row(Phase, row[:split])
    end = split + len(Challenge._meta.concrete_fields)
    phase.challenge = _from_row(Challenge, row[split:end])
    phase.board_number = row[end] or 0
    if with_viewer:
        team_id, team_name = row[end + 1:end + 3]
        phase.viewer_team = (Team.from_db(connection.alias, ["id", "challenge_id", "name"],
                                          [team_id, phase.challenge_id, team_name]) if team_id is not None else None)
    return phase


@functools.cache
def _board_phase_sql(by_id: bool, with_viewer: bool) -> str:
    quote = connection.ops.quote_name
    phase_columns = ", ".join(f"p.{quote(f.column)}" for f in Phase._meta.concrete_fields)
    challenge_columns = ", ".join(f"c.{quote(f.column)}" for f in Challenge._meta.concrete_fields)
    where = f"p.{quote('id')} = %s" if by_id else f"c.{quote('slug')} = %s AND p.{quote('slug')} = %s"
    viewer_columns = viewer_joins = ""
    if with_viewer:  # one team per user per challenge: a unique constraint on the membership
        viewer_columns = f", t.{quote('id')}, t.{quote('name')}"
        viewer_joins = (
            f" LEFT JOIN {quote(Membership._meta.db_table)} m ON m.{quote('challenge_id')} = p.{quote('challenge_id')}"
            f" AND m.{quote('user_id')} = %s"
            f" LEFT JOIN {quote(Team._meta.db_table)} t ON t.{quote('id')} = m.{quote('team_id')}")
    # Only names from the models' metadata go into the text; the slugs and ids are parameters.
    return (f"SELECT {phase_columns}, {challenge_columns}, v.{quote('number')}{viewer_columns}"  # noqa: S608
            f" FROM {quote(Phase._meta.db_table)} p"
            f" JOIN {quote(Challenge._meta.db_table)} c ON c.{quote('id')} = p.{quote('challenge_id')}"
            f" LEFT JOIN {quote(BoardVersion._meta.db_table)} v ON v.{quote('phase_id')} = p.{quote('id')}"
            f"{viewer_joins} WHERE {where}")


@functools.cache
def _converters(model: type[Model]) -> list[tuple[Any, list[Callable[..., Any]]]]:
    """Per concrete field, the converters the ORM applies to a value read from this database (JSON text,
    SQLite's dates and booleans)."""
    found = []
    for model_field in model._meta.concrete_fields:
        column = model_field.get_col(model._meta.db_table)
        found.append((column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)))
    return found


def _from_row(model: type[Model], values: tuple[Any, ...]) -> Any:
    converted = []
    for value, (column, converters) in zip(values, _converters(model), strict=True):
        for convert in converters:
            value = convert(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f in model._meta.concrete_fields], converted)
