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

/** A sink that can rename a collection (Chroma: collection modify), so imports are staged and cut over. */
export interface RenamingSink extends MigrationSink {
  renameCollection(from: string, to: string): Promise<void>;
}

export function canStage(sink: MigrationSink | undefined): sink is RenamingSink {
  return typeof (sink as Partial<RenamingSink> | undefined)?.renameCollection === 'function';
}
