/**
 * Names of the collections a staged migration works with (README "Staged import and cutover"):
 * the records are imported into `NAME__ferry_<run id>`, a name no application uses; at cutover
 * an existing NAME is renamed aside to `NAME__ferry_prev_<run id>` and the staging one to NAME.
 */
import type { MigrationSink } from './types.ts';

/** The staging collection of target collection `name` in run `runId`. */
export function stagingName(name: string, runId: string): string {
  return `${name}__ferry_${runId}`;
}

/** The name the live collection `name` is set aside under when run `runId` cuts over. */
export function previousName(name: string, runId: string): string {
  return `${name}__ferry_prev_${runId}`;
}

/**
 * A sink whose imports are staged and cut over:
 * - 'rename' (Chroma): NAME is a collection; the staging collection is renamed to it (collection modify);
 * - 'alias' (Qdrant): NAME is an alias; the collections carry run-stamped names and the alias is switched.
 */
export interface RenamingSink extends MigrationSink {
  readonly cutoverKind: 'rename' | 'alias';
  /** rename: NAME -> `to` in place. */
  renameCollection?(from: string, to: string): Promise<void>;
  /** alias: the collection alias `name` points to; null when `name` is no alias. */
  aliasTarget?(name: string): Promise<string | null>;
  /** alias: point `name` at `collection` (null: remove the alias) in one atomic request. */
  switchAlias?(name: string, collection: string | null): Promise<void>;
}

export function canStage(sink: MigrationSink | undefined): sink is RenamingSink {
  const k = (sink as Partial<RenamingSink> | undefined)?.cutoverKind;
  return k === 'rename' || k === 'alias';
}
