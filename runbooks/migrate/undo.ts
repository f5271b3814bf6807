/**
 * `migrate --undo` and `migrate --finalize`, from the cutover journal in the checkpoint dir
 * (lib/migrate/cutover.ts): undo renames the last cutover back (the migrated collections return
 * to their staging names, the previous versions to the live names); finalize drops the previous
 * versions that are kept (all of them, or all but the newest `--keep-previous` runs').
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../lib/common/errors.ts';
import { CutoverJournalStore, dropRetained, lastCutover, liveBehindAlias, undoCutover, type CutoverEntry } from '../../lib/migrate/cutover.ts';
import { endpointKind, openTarget, type Endpoint } from '../../lib/migrate/endpoints.ts';
import { canStage, type RenamingSink } from '../../lib/migrate/staging.ts';

export interface CutoverCommandResult {
  ok: true;
  action: 'undo' | 'finalize';
  runId?: string;
  target?: string;
  /** undo: live names given back their previous versions; finalize: collections dropped. */
  collections: string[];
  journal: string;
}

async function journalOf(checkpointDir: string): Promise<{ store: CutoverJournalStore; journal: Awaited<ReturnType<CutoverJournalStore['load']>> }> {
  const dir = path.resolve(checkpointDir);
  const store = new CutoverJournalStore(dir);
  if (!(await fs.stat(store.file).then(() => true, () => false))) {
    throw new UserError(`--checkpoint-dir ${dir}: no cutover journal there (${path.basename(store.file)}); pass the --checkpoint-dir of the migration that cut over`);
  }
  return { store, journal: await store.load() };
}

async function withTarget<T>(e: CutoverEntry, f: (sink: RenamingSink) => Promise<T>): Promise<T> {
  const t = await openTarget(e.target, { resume: true, dryRun: false, scope: e.targetScope });
  const sink: Endpoint = t.endpoint;
  try {
    if (!canStage(sink)) throw new UserError(`${e.target}: this target has no renames; nothing was cut over there`);
    return await f(sink);
  } finally {
    await sink.close().catch(() => undefined);
  }
}

export async function runUndo(o: { checkpointDir: string }): Promise<CutoverCommandResult> {
  const { store, journal } = await journalOf(o.checkpointDir);
  const e = lastCutover(journal);
  if (!e) throw new UserError(`--undo: no cutover to reverse in ${store.file} (the last one is undone or finalized already)`);
  await withTarget(e, (sink) => undoCutover(sink, store, journal, e));
  return { ok: true, action: 'undo', runId: e.runId, target: e.target, collections: e.collections.map((c) => c.name), journal: store.file };
}

export async function runFinalize(o: { checkpointDir: string; keepPrevious?: number }): Promise<CutoverCommandResult> {
  const { store, journal } = await journalOf(o.checkpointDir);
  const targets = [...new Set(journal.entries.map((e) => e.target))];
  const dropped: string[] = [];
  for (const target of targets) {
    const any = [...journal.entries].reverse().find((e) => e.target === target)!;
    dropped.push(...(await withTarget(any, (sink) => dropRetained(sink, store, journal, o.keepPrevious ?? 0, target))));
  }
  return { ok: true, action: 'finalize', collections: dropped, journal: store.file };
}

export function formatCutoverCommand(r: CutoverCommandResult): string {
  if (r.action === 'undo') return `UNDONE  cutover of run ${r.runId} on ${r.target}: ${r.collections.join(', ')} are the previous versions again (journal ${r.journal})`;
  return `FINALIZED  ${r.collections.length ? `dropped ${r.collections.join(', ')}` : 'no previous versions to drop'} (journal ${r.journal})`;
}

/**
 * After `validate --auto-rollback` restored a staged migration's backup onto the target: the
 * cutover of that run (found by the backup's run dir, `<checkpoint dir>/<run id>/backup.jsonl`)
 * is retired, its previous versions (the same records the restore just put back) dropped, so
 * the target is exactly as before the migration. Nothing happens when no cutover is journaled.
 */
export async function retireCutoverAfterRestore(backup: string): Promise<string[]> {
  const runId = path.basename(path.dirname(path.resolve(backup)));
  const store = new CutoverJournalStore(path.dirname(path.dirname(path.resolve(backup))));
  if (!(await fs.stat(store.file).then(() => true, () => false))) return [];
  const journal = await store.load();
  const e = journal.entries.find((x) => x.runId === runId && x.state === 'done');
  if (!e) return [];
  return withTarget(e, async (sink) => {
    if (sink.cutoverKind !== 'rename') return []; // an alias's previous collection is no copy of what the restore put back
    const drop = e.collections.map((c) => c.previous).filter((n): n is string => n !== null);
    const have = await sink.existing(drop);
    for (const n of have.keys()) await sink.deleteCollection(n);
    await store.mark(journal, e, 'finalized');
    return [...have.keys()];
  });
}

/** What `undoAliasCutover` did: each alias and the collection it points at again (null: removed), and the run's collections dropped. */
export interface AliasCutoverUndone {
  runId: string;
  aliases: { alias: string; collection: string | null }[];
  dropped: string[];
}

/**
 * `validate --auto-rollback` of a staged migration into Qdrant (an alias target): the run's
 * cutover (found by the backup's run dir, as above) is undone, each alias back on the collection
 * it pointed at before the run (removed when there was none), and the run's run-stamped
 * collections, which failed the gate, are dropped: the target is as before the run, and no
 * restore writes a real collection under an alias's name. null when it does not apply (no
 * journal, no cutover of that run on `targetUrl`, or a rename target): then the backup is restored.
 */
export async function undoAliasCutover(backup: string, targetUrl: string): Promise<AliasCutoverUndone | null> {
  const found = await cutoverOfBackup(backup, targetUrl);
  if (!found) return null;
  const { store, journal, entry: e } = found;
  const runId = e.runId;
  return withTarget(e, async (sink) => {
    if (sink.cutoverKind !== 'alias') return null;
    await undoCutover(sink, store, journal, e);
    const staging = e.collections.map((c) => c.staging);
    const have = await sink.existing(staging);
    const dropped: string[] = [];
    for (const n of staging) {
      if (!have.has(n) || (await liveBehindAlias(sink, n, journal))) continue;
      await sink.deleteCollection(n);
      dropped.push(n);
    }
    await store.mark(journal, e, 'finalized');
    return { runId, aliases: e.collections.map((c) => ({ alias: c.name, collection: c.previous })), dropped };
  });
}

/** The journaled cutover of the run whose backup is `backup` on `targetUrl` that a rollback would undo; null when none. Reads only. */
async function cutoverOfBackup(backup: string, targetUrl: string) {
  const runId = path.basename(path.dirname(path.resolve(backup)));
  const store = new CutoverJournalStore(path.dirname(path.dirname(path.resolve(backup))));
  if (!(await fs.stat(store.file).then(() => true, () => false))) return null;
  const journal = await store.load();
  const entry = journal.entries.find((x) => x.runId === runId && x.target === targetUrl && ['cutting', 'done', 'reversed', 'undoing', 'undone'].includes(x.state));
  return entry ? { store, journal, entry } : null;
}

/** `validate --plan`: what a rollback by undoing an alias cutover would do (null: the backup would be restored). Reads only. */
export async function plannedAliasUndo(backup: string, targetUrl: string): Promise<string | null> {
  if (endpointKind('--new-db-url', targetUrl, { side: 'target' }) !== 'qdrant') return null;
  const e = (await cutoverOfBackup(backup, targetUrl))?.entry;
  if (!e) return null;
  return `undo the alias cutover of run ${e.runId}: ${e.collections.map((c) => (c.previous ? `alias ${c.name} back to ${c.previous}` : `alias ${c.name} removed`)).join(', ')}; ` +
    `drop ${e.collections.map((c) => c.staging).join(', ')} (no restore)`;
}
