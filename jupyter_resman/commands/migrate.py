"""``resman migrate [--dry-run] [--source DIR …] [--move] [--namespace NS] [--yes]``.

Imports legacy joblib.Memory and diskcache folders, ``.npy``/``.npz``
embedding caches and CSV datasets into the home (see
:mod:`jupyter_resman.core.migrate`). Without ``--source`` the legacy
locations set in ``RESMAN_LEGACY_DIRS``, ``CLAM_BASE_DIR``,
``CLAM_CACHE_DIR`` and ``JOBLIB_CACHE_DIR`` are searched.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..core.migrate import LEGACY_ENV_VARS, MigrationPlan, MigrationReport, migrate, plan_migration
from ..core.settings import format_size
from .cache import Declined
from .output import Output

_SHOWN_ERRORS = 10


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "migrate", help="import legacy joblib/diskcache caches, .npy/.npz and CSV datasets",
        description="Find legacy caches (joblib.Memory, diskcache, .npy/.npz embedding caches) "
                    "and CSV datasets, show what would be imported (--dry-run), then import "
                    "them into the home. Safe to run again: what was imported is skipped. "
                    "Without --source, the folders in " + ", ".join(LEGACY_ENV_VARS)
                    + " are searched.")
    parser.add_argument("--source", "-s", dest="sources", action="extend", nargs="+",
                        metavar="DIR", help="folders to search (repeatable)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only show what would be imported; change nothing")
    parser.add_argument("--move", action="store_true",
                        help="delete each source entry once its copy is verified "
                             "(asks first on a terminal)")
    parser.add_argument("--namespace", metavar="NS",
                        help="put every cache entry in this namespace instead of joblib, "
                             "diskcache and embeddings")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(handler=migrate_command)


def migrate_command(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    session.log  # noqa: B018 - starts the home's log file, so the migration is on record
    plan = plan_migration(session, args.sources, namespace=args.namespace)
    if args.dry_run:
        return _plan_output(plan, args.move)
    if plan.pending == 0 and not args.move:
        why = ("Nothing to import: everything found was imported before." if plan.entries else
               "Nothing to import: no joblib or diskcache folder, .npy/.npz or CSV file found.")
        return Output(title=_plan_title(plan), table=plan.table(), fields=_plan_fields(plan),
                      message=_join(plan.notes + [why]),
                      data={"plan": plan.to_dict(), "imported": 0})
    if args.move and not args.yes and plan.entries and not ui.confirm(
            f"Import {plan.pending:,} entries ({format_size(plan.pending_bytes)}) and DELETE "
            f"the sources of all {plan.entries:,} once each copy is verified?"):
        raise Declined("Nothing migrated.")
    report = migrate(session, plan, move=args.move)
    return _report_output(report, session)


def _plan_title(plan: MigrationPlan) -> str:
    return (f"{plan.pending:,} of {plan.entries:,} legacy entries to import "
            f"({format_size(plan.pending_bytes)}) from {len(plan.stores)} store(s)")


def _plan_fields(plan: MigrationPlan) -> dict[str, str]:
    return {"searched": ", ".join(str(s) for s in plan.sources) or "(nothing)",
            "from": plan.origin}


def _plan_output(plan: MigrationPlan, move: bool) -> Output:
    notes = list(plan.notes)
    if plan.origin != "--source":
        notes.append(f"No --source given: searched the legacy locations {plan.origin}.")
    notes.append("Dry run: nothing was changed. Run without --dry-run to import"
                 + (" and then delete each source once its copy is verified." if move else "."))
    return Output(title="Migration plan: " + _plan_title(plan), fields=_plan_fields(plan),
                  table=plan.table(), message=_join(notes),
                  data={"dry_run": True, "move": move, **plan.to_dict()})


def _report_output(report: MigrationReport, session: Any) -> Output:
    fields = {
        "imported": f"{report.imported:,} ({format_size(report.total('bytes'))})",
        "already there": f"{report.total('skipped'):,}",
        "failed": f"{report.total('failed'):,}",
        "conflicts": f"{report.total('conflicts'):,}",
    }
    if report.move:
        fields["sources deleted"] = f"{report.total('moved'):,} (each after a verified copy)"
        fields["sources kept"] = f"{report.total('kept'):,} (verification failed)"
    fields["from"] = report.origin
    fields["run"] = report.run_id
    messages = list(report.notes)
    errors = [e for s in report.stores for e in s.errors]
    if errors:
        messages.append("Problems (sources kept; run again to retry):")
        messages.extend(f"  {e}" for e in errors[:_SHOWN_ERRORS])
        if len(errors) > _SHOWN_ERRORS:
            messages.append(f"  ... and {len(errors) - _SHOWN_ERRORS} more")
    messages.append(f"Details: resman log --logger migrate (ledger "
                    f"{session.home.root / 'migrations.sqlite'}).")
    return Output(title=f"Migrated {report.imported:,} entries", fields=fields,
                  table=report.table(), message=_join(messages), data=report.to_dict())


def _join(lines: list[str]) -> str:
    return "\n".join(lines)
