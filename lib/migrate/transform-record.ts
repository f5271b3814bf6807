/**
 * What a migration records about its transform (in its checkpoint and in its backup's header), so
 * that the validation gate reads the old database through the same one: the spec, for a module its
 * resolved path and the sha256 of the file when the migration ran, the seed-schema prefix and the
 * renames.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export interface TransformRecord {
  /** none | seed-schema | the module path as given to migrate. */
  spec: string;
  /** A user module: its absolute path and the sha256 of the file (null when unreadable). */
  module?: { path: string; sha256: string | null };
  /** --prefix as given (null: inferred from each source collection's name). */
  prefix: string | null;
  /** --rename a=b. */
  renames: Record<string, string>;
}

export const BUILTIN_TRANSFORMS = ['none', 'seed-schema'];

export function isBuiltinTransform(spec: string): boolean {
  return BUILTIN_TRANSFORMS.includes(spec);
}

export async function fileSha256(file: string): Promise<string | null> {
  try {
    return crypto.createHash('sha256').update(await fs.readFile(file)).digest('hex');
  } catch {
    return null;
  }
}

export async function recordTransform(spec: string, o: { prefix?: string; renames?: Record<string, string> } = {}): Promise<TransformRecord> {
  const record: TransformRecord = { spec, prefix: o.prefix ?? null, renames: o.renames ?? {} };
  if (!isBuiltinTransform(spec)) {
    const file = path.resolve(spec);
    record.module = { path: file, sha256: await fileSha256(file) };
  }
  return record;
}

/** How the transform is named to the user: a module by its absolute path. */
export function transformLabel(r: TransformRecord): string {
  return r.module?.path ?? r.spec;
}
