"""LM usage totals per user, in portable SQL over a :class:`~remem.storage.base.Database` (table ``lm_usage``,
migration 14).

One row per user: how many metered operations (``add(infer=True)`` jobs, chat replies) and the LM calls,
prompt/completion tokens and seconds they spent, added to as each operation ends (failed ones included: they
cost too). ``remem stats`` shows the sum over every user; ``forget_user`` erases the user's row with the rest
of the user's data (the table is in :data:`remem.storage.migrations.USER_TABLES`).
"""

from __future__ import annotations

from ..models import LLMUsage, utcnow
from .base import Database


def record_usage(database: Database, user_id: str, usage: LLMUsage) -> None:
    """Add one operation's usage to the user's totals (one upsert; SQLite ≥ 3.24 and Postgres)."""
    with database.transaction() as tx:
        tx.execute(
            "INSERT INTO lm_usage (user_id, operations, calls, prompt_tokens, completion_tokens, seconds, updated_at)"
            " VALUES (?, 1, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
            " operations = lm_usage.operations + 1, calls = lm_usage.calls + excluded.calls,"
            " prompt_tokens = lm_usage.prompt_tokens + excluded.prompt_tokens,"
            " completion_tokens = lm_usage.completion_tokens + excluded.completion_tokens,"
            " seconds = lm_usage.seconds + excluded.seconds, updated_at = excluded.updated_at",
            (user_id, usage.calls, usage.prompt_tokens, usage.completion_tokens, float(usage.seconds),
             utcnow().isoformat()),
        )


def usage_totals(database: Database, user_id: str | None = None) -> LLMUsage:
    """The summed usage of one user, or of every user (``None``)."""
    sql = "SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)," \
          " COALESCE(SUM(seconds), 0) FROM lm_usage"
    args: tuple[str, ...] = ()
    if user_id is not None:
        sql += " WHERE user_id=?"
        args = (user_id,)
    with database.read() as tx:
        row = tx.fetchone(sql, args)
    if row is None:
        return LLMUsage()
    calls, prompt, completion, seconds = row
    return LLMUsage(calls=int(calls), prompt_tokens=int(prompt), completion_tokens=int(completion),
                    seconds=round(float(seconds), 6))
