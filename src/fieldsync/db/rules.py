"""SQL forms of the rules that reads share, so that no query writes its own copy:

- ``visible_sql``: ``Principal.sees_report`` (inspectors their own reports, supervisors their
  jurisdiction subtree, admins everything), bound to the caller's ``domain.principals.Visibility``;
- ``possessed_sql``: proof of possession (SPEC §3) — a report's reference to a photo counts only
  once the report's author, or the user who attached it (whoever added rectification evidence),
  uploaded those bytes themselves (``media_uploads``). Knowing a hash grants nothing;
- ``overdue_sql``: ``domain.workflow.is_overdue`` — rectifying past its deadline, by the
  application's clock (a parameter, never SQL ``now()``). ``tests/db/test_rules.py`` holds the
  two forms equal.
"""

from __future__ import annotations


def visible_sql(report: str, path: str, author: str, prefix: str) -> str:
    """The caller may see report alias ``report``, whose jurisdiction path is the column ``path``;
    ``author`` (uuid, NULL for supervisors and admins) and ``prefix`` are placeholders bound to
    the caller's ``Visibility``."""
    return f"(({author}::uuid IS NULL OR {report}.author_id = {author}::uuid) AND {path} LIKE {prefix}::text || '%')"


def path_sql(report: str) -> str:
    """The jurisdiction path of report alias ``report``, looked up once per row. Where a few stored
    pairs drive a query, a join to ``jurisdictions`` filtered by ``path LIKE prefix`` may be planned
    as every jurisdiction times every pair, probing ``reports`` once for each: a scalar subquery
    is never turned into a join."""
    return f"(SELECT jp.path FROM jurisdictions jp WHERE jp.code = {report}.jurisdiction)"


def possessed_sql(rm: str) -> str:
    """The ``report_media`` reference ``rm`` counts: its attacher or its report's author uploaded
    the bytes (an inspector's device may upload the 'after' photo a supervisor attaches)."""
    return (f"EXISTS (SELECT 1 FROM media_uploads mu_p WHERE mu_p.sha256 = {rm}.sha256 "
            f"AND (mu_p.user_id = {rm}.attached_by "
            f"OR mu_p.user_id = (SELECT ra.author_id FROM reports ra WHERE ra.id = {rm}.report_id)))")


def overdue_sql(report: str, now: str) -> str:
    """``domain.workflow.is_overdue`` for report alias ``report`` at the instant ``now`` (never NULL)."""
    return (f"({report}.status = 'rectifying' AND {report}.rectification_deadline IS NOT NULL "
            f"AND {report}.rectification_deadline < {now})")
