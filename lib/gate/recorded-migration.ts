/**
 * The migration the gate validates, as the migration recorded it: the transform (spec, module
 * path and sha256, prefix, renames) from the backup's header (`--backup FILE`) and from the
 * checkpoint (`--checkpoint-dir DIR`), and the backup a rollback restores. A `--transform` or
 * `--prefix` that contradicts the record is refused before anything is read or written: a gate
 * run through another transform FAILS a correct migration, and its rollback would delete it.
 */
import path from 'node:path';
import { UserError } from '../common/errors.ts';
import { CheckpointStore } from '../migrate/checkpoint.ts';
import { JsonlEndpoint } from '../migrate/jsonl-endpoint.ts';
import { fileSha256, isBuiltinTransform, transformLabel, type TransformRecord } from '../migrate/transform-record.ts';

/** The transform the gate runs, and where it came from. */
export interface GateTransform {
  /** none | seed-schema | an absolute module path. */
  spec: string;
  prefix?: string;
  renames: Record<string, string>;
  /** flag: --transform as given (agreeing with the record, if any); recorded: the migration's; default: none. */
  source: 'flag' | 'recorded' | 'default';
  /** The file the migration's record was read from. */
  recordedIn: string | null;
}

export interface GateMigration {
  transform: GateTransform;
  /** The backup a rollback restores: --backup, else the one the migration's checkpoint names. */
  backup: string | null;
  notes: string[];
}

export interface GateMigrationFlags {
  oldUrl: string;
  newUrl: string;
  transform?: string;
  prefix?: string;
  backup?: string;
  /** explicit: --checkpoint-dir was given (a missing or foreign checkpoint is refused, not skipped). */
  checkpoint?: { dir: string; explicit: boolean };
}

interface Found {
  record: TransformRecord;
  file: string;
}

export async function resolveGateMigration(f: GateMigrationFlags): Promise<GateMigration> {
  const notes: string[] = [];
  const found: Found[] = [];
  let backup = f.backup ? path.resolve(f.backup) : null;
  if (backup) {
    const file = new JsonlEndpoint(backup);
    await file.openForReading('--backup');
    const header = await file.header();
    if (header?.transform) found.push({ record: header.transform, file: backup });
  }
  if (f.checkpoint) {
    const store = new CheckpointStore(path.resolve(f.checkpoint.dir));
    const cp = await store.load();
    const flag = `--checkpoint-dir ${f.checkpoint.dir}`;
    if (!cp) {
      if (f.checkpoint.explicit) throw new UserError(`${flag}: no migrate checkpoint (${path.basename(store.file)}) there; pass the --checkpoint-dir the migration used`);
    } else if (cp.source !== f.oldUrl || cp.target !== f.newUrl) {
      const what = `the checkpoint in ${store.file} is of a migration ${cp.source} -> ${cp.target}`;
      if (f.checkpoint.explicit) throw new UserError(`${flag}: ${what}, not --old-db-url ${f.oldUrl} -> --new-db-url ${f.newUrl}; pass the same URLs as the migration, or that migration's --checkpoint-dir`);
      notes.push(`${what}: not this one, not used`);
    } else {
      found.push({ record: cp.transformRecord ?? { spec: cp.transform, prefix: null, renames: {} }, file: store.file });
      if (!backup && cp.backupFile) backup = cp.backupFile;
    }
  }
  if (found.length === 2 && !sameRecord(found[0]!.record, found[1]!.record)) {
    throw new UserError(`--backup ${f.backup} is of a migration with --transform ${describe(found[0]!.record)}, the checkpoint ${found[1]!.file} records --transform ${describe(found[1]!.record)}: pass the backup of that migration`);
  }
  return { transform: await reconcile(f, found[0]), backup, notes };
}

/** --transform / --prefix against the record: the same transform, or the recorded one when omitted. */
async function reconcile(f: GateMigrationFlags, found: Found | undefined): Promise<GateTransform> {
  if (!found) {
    return { spec: f.transform ?? 'none', prefix: f.prefix, renames: {}, source: f.transform === undefined ? 'default' : 'flag', recordedIn: null };
  }
  const { record, file } = found;
  const label = transformLabel(record);
  if (f.transform !== undefined && !(await sameTransform(f.transform, record))) {
    throw new UserError(`the migration used --transform ${label} (recorded in ${file}); pass --transform ${label} or omit it`);
  }
  if (record.module) {
    const now = await fileSha256(record.module.path);
    if (f.transform === undefined && now === null) {
      throw new UserError(`the migration used --transform ${label} (recorded in ${file}), which is no longer there; put the module back or pass --transform with a copy of it`);
    }
    const given = f.transform === undefined ? now : await fileSha256(path.resolve(f.transform));
    if (record.module.sha256 && given !== record.module.sha256) {
      throw new UserError(`--transform ${f.transform ?? label}: the module is not the one the migration ran (sha256 ${short(given)}, recorded in ${file}: ${short(record.module.sha256)}); validate with the module the migration used`);
    }
  }
  if (record.prefix !== null && f.prefix !== undefined && f.prefix !== record.prefix) {
    throw new UserError(`the migration used --prefix ${record.prefix} (recorded in ${file}); pass --prefix ${record.prefix} or omit it`);
  }
  return {
    spec: f.transform === undefined ? label : isBuiltinTransform(f.transform) ? f.transform : path.resolve(f.transform),
    prefix: f.prefix ?? record.prefix ?? undefined,
    renames: record.renames,
    source: f.transform === undefined ? 'recorded' : 'flag',
    recordedIn: file,
  };
}

/**
 * A built-in by name; a module by content when the record has its sha256 (a copy elsewhere is the
 * same transform; the same path edited since is checked by the caller), else by resolved path.
 */
async function sameTransform(given: string, record: TransformRecord): Promise<boolean> {
  if (isBuiltinTransform(given) || !record.module) return given === record.spec;
  const file = path.resolve(given);
  if (file === record.module.path) return true;
  return record.module.sha256 !== null && (await fileSha256(file)) === record.module.sha256;
}

function sameRecord(a: TransformRecord, b: TransformRecord): boolean {
  if (a.module && b.module) {
    if (a.module.sha256 && b.module.sha256 ? a.module.sha256 !== b.module.sha256 : a.module.path !== b.module.path) return false;
  } else if (a.spec !== b.spec) {
    return false;
  }
  return (a.prefix === null || b.prefix === null || a.prefix === b.prefix) && JSON.stringify(a.renames) === JSON.stringify(b.renames);
}

function describe(r: TransformRecord): string {
  return `${transformLabel(r)}${r.prefix !== null ? ` --prefix ${r.prefix}` : ''}`;
}

function short(sha: string | null): string {
  return sha ? sha.slice(0, 12) : 'unreadable';
}
