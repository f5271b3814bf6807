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
  /** cutting: journaled, renames may be half done; done: cut over; undone: reversed by --undo; finalized: previous versions dropped. */
  state: 'cutting' | 'done' | 'undoing' | 'undone' | 'finalized';
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

/** Cut over (or finish an interrupted cutover): per collection, NAME aside to its previous name and staging to NAME (rename), or the alias NAME switched to staging. */
export async function cutOver(sink: RenamingSink, store: CutoverJournalStore, j: CutoverJournal, e: CutoverEntry): Promise<void> {
  await store.mark(j, e, 'cutting'); // on disk before the first rename
  for (const c of e.collections) {
    if (sink.cutoverKind === 'alias') {
      if ((await sink.aliasTarget!(c.name)) !== c.staging) await sink.switchAlias!(c.name, c.staging);
      continue;
    }
    const have = await present(sink, [c.name, c.staging, c.previous]);
    if (!have.has(c.staging)) {
      if (!have.has(c.name)) throw new Error(`cutover of ${c.name}: neither ${c.name} nor its staging collection ${c.staging} exists on ${sink.label}`);
      continue; // this one is cut over already
    }
    if (have.has(c.name)) {
      if (!c.previous || have.has(c.previous)) {
        throw new Error(`cutover of ${c.name}: ${c.name} exists on ${sink.label} but was ${c.previous ? `already set aside as ${c.previous}` : 'absent when the run was staged'} (someone wrote it meanwhile); nothing renamed for it`);
      }
      await sink.renameCollection!(c.name, c.previous);
    }
    await sink.renameCollection!(c.staging, c.name);
  }
  await store.mark(j, e, 'done');
}

/** The cutover `--undo` reverses: the newest of `target` (any target when absent) that is cut over. */
export function lastCutover(j: CutoverJournal, target?: string): CutoverEntry | undefined {
  const mine = j.entries.filter((e) => target === undefined || e.target === target);
  return [...mine].reverse().find((e) => e.state !== 'undone' && e.state !== 'finalized');
}

/** Reverse a cutover: NAME back to its staging name and the previous version back to NAME (rename), or the alias back to the previous collection (alias). */
export async function undoCutover(sink: RenamingSink, store: CutoverJournalStore, j: CutoverJournal, e: CutoverEntry): Promise<void> {
  await store.mark(j, e, 'undoing');
  for (const c of [...e.collections].reverse()) {
    if (sink.cutoverKind === 'alias') {
      if ((await sink.aliasTarget!(c.name)) !== c.previous) await sink.switchAlias!(c.name, c.previous);
      continue;
    }
    const have = await present(sink, [c.name, c.staging, c.previous]);
    if (have.has(c.name) && !have.has(c.staging) && (!c.previous || have.has(c.previous))) {
      await sink.renameCollection!(c.name, c.staging);
      have.delete(c.name);
    }
    if (c.previous && have.has(c.previous) && !have.has(c.name)) await sink.renameCollection!(c.previous, c.name);
  }
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
async function liveBehindAlias(sink: RenamingSink, collection: string, j: CutoverJournal): Promise<boolean> {
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
