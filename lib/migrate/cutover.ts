/**
 * The cutover journal and the renames it records (README "Staged import and cutover").
 *
 * A cutover is written to `cutover-journal.json` in the checkpoint dir (atomically) before the
 * first rename, so an interrupted one is finished by `migrate --resume`; every step below is
 * idempotent: it looks at which of NAME, its staging and its previous name exist and does only
 * what is left. `migrate --undo` reverses the last cutover by renames; previous versions are
 * dropped by `migrate --finalize` or once more than `--keep-previous` cutovers are newer.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { writeJsonAtomic } from '../engine/atomic-file.ts';
import type { ScopeChoice } from '../chroma/database-scope.ts';
import { UserError } from '../common/errors.ts';
import type { RenamingSink } from './staging.ts';

export const CUTOVER_FILE = 'cutover-journal.json';

export interface CutoverCollection {
  /** The live name applications use. */
  name: string;
  /** Where the migrated records were imported (and where they go back on --undo). */
  staging: string;
  /** Where the live NAME is set aside; null when NAME did not exist before. */
  previous: string | null;
}

export interface CutoverEntry {
  runId: string;
  target: string;
  targetScope?: ScopeChoice;
  /**
   * cutting: journaled, renames may be half done; done: cut over; reversed: could not complete and
   * was renamed back (--resume tries again); undoing/undone: --undo under way/done; finalized:
   * previous versions dropped.
   */
  state: 'cutting' | 'done' | 'reversed' | 'undoing' | 'undone' | 'finalized';
  collections: CutoverCollection[];
  at: string;
}

export interface CutoverJournal {
  version: 1;
  entries: CutoverEntry[];
}

export class CutoverJournalStore {
  readonly file: string;
  constructor(dir: string) {
    this.file = path.join(dir, CUTOVER_FILE);
  }

  async load(): Promise<CutoverJournal> {
    try {
      const j = JSON.parse(await fs.readFile(this.file, 'utf8')) as CutoverJournal;
      if (j.version === 1 && Array.isArray(j.entries)) return j;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${this.file} is not a cutover journal (${(e as Error).message})`);
    }
    return { version: 1, entries: [] };
  }

  async save(j: CutoverJournal): Promise<void> {
    await writeJsonAtomic(this.file, j);
  }

  /** Set the entry's state (and time) and write the journal before the caller goes on. */
  async mark(j: CutoverJournal, e: CutoverEntry, state: CutoverEntry['state']): Promise<void> {
    e.state = state;
    e.at = new Date().toISOString();
    await this.save(j);
  }
}

async function present(sink: RenamingSink, names: (string | null)[]): Promise<Set<string>> {
  return new Set((await sink.existing(names.filter((n): n is string => n !== null))).keys());
}

/** What NAME is set aside as when `runId` cuts over: rename, its previous name (NAME exists) or null; alias, the collection it points to now (or null). Refused when NAME cannot be cut over. */
export async function previousOf(sink: RenamingSink, name: string, previous: string): Promise<string | null> {
  if (sink.cutoverKind === 'alias') {
    const now = await sink.aliasTarget!(name);
    if (now === null && (await sink.existing([name])).has(name)) {
      throw new UserError(
        `${name} on ${sink.label} is a collection, not an alias: a staged migration switches the alias ${name} to its run-stamped collection, ` +
          `and Qdrant cannot put an alias over a collection; migrate into another name (--rename ${name}=NEW) or delete ${name} first`,
      );
    }
    return now;
  }
  return (await sink.existing([name])).has(name) ? previous : null;
}

/**
 * Where one collection of a cutover stands on the target (read from the target, not the journal):
 * cut over; set aside (rename: NAME renamed to its previous name, staging not yet to NAME);
 * pending (nothing renamed for it yet); or a conflict that rules out cutting it over.
 */
type Stand = { kind: 'cut' } | { kind: 'aside' } | { kind: 'pending' } | { kind: 'conflict'; why: string };

async function standOf(sink: RenamingSink, c: CutoverCollection): Promise<Stand> {
  if (sink.cutoverKind === 'alias') {
    if ((await sink.aliasTarget!(c.name)) === c.staging) return { kind: 'cut' };
    if ((await sink.existing([c.staging])).has(c.staging)) return { kind: 'pending' };
    return { kind: 'conflict', why: `its run-stamped collection ${c.staging} is gone from ${sink.label}` };
  }
  const have = await present(sink, [c.name, c.staging, c.previous]);
  if (!have.has(c.staging)) {
    return have.has(c.name) ? { kind: 'cut' } : { kind: 'conflict', why: `neither ${c.name} nor its staging collection ${c.staging} exists on ${sink.label}` };
  }
  if (!have.has(c.name)) return c.previous && have.has(c.previous) ? { kind: 'aside' } : c.previous ? { kind: 'conflict', why: `${c.name} is gone from ${sink.label} (it was to be set aside as ${c.previous})` } : { kind: 'pending' };
  if (c.previous && !have.has(c.previous)) return { kind: 'pending' };
  return { kind: 'conflict', why: `${c.name} exists on ${sink.label} but was ${c.previous ? `already set aside as ${c.previous}` : 'absent when the run was staged'} (someone wrote it meanwhile)` };
}

/** The renames left to cut one collection over from where it stands. */
async function forward(sink: RenamingSink, c: CutoverCollection, stand: Stand): Promise<void> {
  if (stand.kind === 'cut' || stand.kind === 'conflict') return;
  if (sink.cutoverKind === 'alias') return sink.switchAlias!(c.name, c.staging);
  if (stand.kind === 'pending' && c.previous) await sink.renameCollection!(c.name, c.previous);
  await sink.renameCollection!(c.staging, c.name);
}

/** One collection back to before the cutover from wherever it stands: NAME to its staging name, the previous version to NAME (or the alias back). */
async function backward(sink: RenamingSink, c: CutoverCollection): Promise<void> {
  if (sink.cutoverKind === 'alias') {
    if ((await sink.aliasTarget!(c.name)) !== c.previous) await sink.switchAlias!(c.name, c.previous);
    return;
  }
  const have = await present(sink, [c.name, c.staging, c.previous]);
  if (have.has(c.name) && !have.has(c.staging) && (!c.previous || have.has(c.previous))) {
    await sink.renameCollection!(c.name, c.staging);
    have.delete(c.name);
  }
  if (c.previous && have.has(c.previous) && !have.has(c.name)) await sink.renameCollection!(c.previous, c.name);
}

/** Every collection of `e` back to before its cutover, newest rename first. */
async function reverseAll(sink: RenamingSink, e: CutoverEntry): Promise<void> {
  for (const c of [...e.collections].reverse()) await backward(sink, c);
}

/** A cutover that could not complete and was reversed (target as before it); `--resume` tries it again. */
export class CutoverReversed extends Error {}

/**
 * Cut over (or finish an interrupted cutover) as one unit: all of the entry's collections, or none.
 *
 * What the target holds decides, not the journal: every collection's stand is read first; when
 * one of them cannot be cut over (its staging collection gone, NAME written meanwhile) nothing
 * is renamed and what an interrupted run had cut over is reversed. A rename that fails part-way
 * reverses the renames made. Either way the entry ends 'reversed' and CutoverReversed says why;
 * when the reversal fails too the entry stays 'cutting' for `--resume` or `--undo`.
 */
export async function cutOver(sink: RenamingSink, store: CutoverJournalStore, j: CutoverJournal, e: CutoverEntry): Promise<void> {
  await store.mark(j, e, 'cutting'); // on disk before the first rename
  const stands: Stand[] = [];
  for (const c of e.collections) stands.push(await standOf(sink, c));
  const conflict = e.collections.findIndex((_, i) => stands[i]!.kind === 'conflict');
  let cause: string;
  if (conflict < 0) {
    try {
      for (const [i, c] of e.collections.entries()) await forward(sink, c, stands[i]!);
      await store.mark(j, e, 'done');
      return;
    } catch (err) {
      cause = `a rename failed (${err instanceof Error ? err.message : String(err)})`;
    }
  } else {
    const c = e.collections[conflict]!;
    cause = `${c.name} cannot be cut over: ${(stands[conflict] as { why: string }).why}`;
  }
  const all = e.collections.map((c) => c.name).join(', ');
  try {
    await reverseAll(sink, e);
  } catch (err) {
    throw new Error(`cutover of run ${e.runId} (${all}) is half done: ${cause}, and reversing it failed (${err instanceof Error ? err.message : String(err)}); ` +
      'run migrate --resume to finish it or migrate --undo to reverse it');
  }
  await store.mark(j, e, 'reversed');
  throw new CutoverReversed(`cutover of run ${e.runId} reversed, none of ${all} cut over: ${cause}; the live collections are as before it (migrate --resume tries again)`);
}

/** The cutover `--undo` reverses: the newest of `target` (any target when absent) that is cut over, or was interrupted or reversed (then it is reconciled). */
export function lastCutover(j: CutoverJournal, target?: string): CutoverEntry | undefined {
  const mine = j.entries.filter((e) => target === undefined || e.target === target);
  return [...mine].reverse().find((e) => e.state !== 'undone' && e.state !== 'finalized');
}

/** A cutover left half done (killed, or its reversal failed) in this journal for `target`: finished by --resume or reversed by --undo first. */
export function unfinishedCutover(j: CutoverJournal, target: string): CutoverEntry | undefined {
  return j.entries.find((e) => e.target === target && (e.state === 'cutting' || e.state === 'undoing'));
}

/** Refuse a new run (not --resume) while a cutover of the same target in `dir`'s journal is half done. */
export async function refuseUnfinishedCutover(dir: string, target: string): Promise<void> {
  const store = new CutoverJournalStore(dir);
  const e = unfinishedCutover(await store.load(), target);
  if (e) {
    throw new UserError(`--checkpoint-dir ${dir}: the cutover of run ${e.runId} on ${target} was interrupted (${e.collections.map((c) => c.name).join(', ')}); ` +
      'finish it with migrate --resume or reverse it with migrate --undo before a new run');
  }
}

/** Reverse a cutover (done, interrupted or reversed): every collection back to before it, from what the target holds. */
export async function undoCutover(sink: RenamingSink, store: CutoverJournalStore, j: CutoverJournal, e: CutoverEntry): Promise<void> {
  await store.mark(j, e, 'undoing');
  await reverseAll(sink, e);
  await store.mark(j, e, 'undone');
}

/**
 * The collections to drop so at most `keep` cut-over runs keep their previous versions (the newest
 * ones); an undone run's migrated collections (under their staging names) go too.
 */
export function retained(j: CutoverJournal, keep: number, target: string): { entry: CutoverEntry; drop: string[] }[] {
  const out: { entry: CutoverEntry; drop: string[] }[] = [];
  const mine = j.entries.filter((e) => e.target === target);
  const done = mine.filter((e) => e.state === 'done');
  for (const entry of done.slice(0, Math.max(0, done.length - keep))) {
    out.push({ entry, drop: entry.collections.map((c) => c.previous).filter((n): n is string => n !== null) });
  }
  for (const entry of mine.filter((e) => e.state === 'undone')) out.push({ entry, drop: entry.collections.map((c) => c.staging) });
  return out;
}

/** Drop what `retained` names (only collections this tool renamed or created; a missing one is skipped). */
export async function dropRetained(sink: RenamingSink, store: CutoverJournalStore, j: CutoverJournal, keep: number, target: string): Promise<string[]> {
  const dropped: string[] = [];
  for (const { entry, drop } of retained(j, keep, target)) {
    const have = await present(sink, drop);
    for (const n of drop) {
      if (!have.has(n) || (await liveBehindAlias(sink, n, j)) || !createdHere(sink, n, j)) continue;
      await sink.deleteCollection(n);
      dropped.push(n);
    }
    await store.mark(j, entry, 'finalized');
  }
  return dropped;
}

/** alias: a collection some journaled alias points at now is live, never dropped. */
export async function liveBehindAlias(sink: RenamingSink, collection: string, j: CutoverJournal): Promise<boolean> {
  if (sink.cutoverKind !== 'alias') return false;
  for (const name of new Set(j.entries.flatMap((e) => e.collections.map((c) => c.name)))) {
    if ((await sink.aliasTarget!(name)) === collection) return true;
  }
  return false;
}

/**
 * alias: only a collection some journaled run imported into (its staging name) is ours to drop; a
 * collection the user had behind the alias before the first migration is kept. rename: the
 * previous versions are the user's NAME set aside by a cutover, dropped as --finalize and
 * --keep-previous say.
 */
function createdHere(sink: RenamingSink, collection: string, j: CutoverJournal): boolean {
  if (sink.cutoverKind !== 'alias') return true;
  return j.entries.some((e) => e.collections.some((c) => c.staging === collection));
}
