/**
 * The transform phase: each source record becomes zero or more records of target collections.
 * `none` copies; `seed-schema` maps to seed 002's four collections; a user transform is a module
 * (`./file.ts` or `.js`) whose default export (or `transform` export) is a `RecordTransform`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { UserError } from '../common/errors.ts';
import { inferCollectionType, inferPrefix, requiredFields, toSeedSchema, type CollectionType } from './seed-schema.ts';
import type { CollectionInfo, MigrationRecord, RecordMetadata } from './types.ts';

export interface TransformContext {
  /** The source collection the record comes from. */
  collection: CollectionInfo;
}

export interface TransformedRecord {
  /** Target collection name. */
  collection: string;
  record: MigrationRecord;
}

/** A user transform: one function, from a source record to target record(s); null drops it. */
export type RecordTransform = (record: MigrationRecord, ctx: TransformContext) => TransformedRecord | TransformedRecord[] | null | Promise<TransformedRecord | TransformedRecord[] | null>;

export interface Transform {
  readonly name: string;
  apply(record: MigrationRecord, source: CollectionInfo): Promise<TransformedRecord[]>;
  /** Metadata of a target collection created from `source` (before its records arrive). */
  targetCollection(name: string, source: CollectionInfo): Pick<CollectionInfo, 'name' | 'metadata' | 'space' | 'hnsw'>;
  /** Required metadata fields of a target collection's records, when the transform has a schema. */
  schemaOf(target: string): ReturnType<typeof requiredFields> | null;
  /**
   * The target collection of a source collection that has no records (created empty), or null
   * when the transform cannot say (a module without `emptyCollection`: the collection is left out).
   */
  emptyTarget(source: CollectionInfo): string | null;
}

export const noneTransform: Transform = {
  name: 'none',
  async apply(record, source) {
    return [{ collection: source.name, record }];
  },
  targetCollection: (name, source) => ({ name, metadata: source.metadata, space: source.space, hnsw: source.hnsw }),
  schemaOf: () => null,
  emptyTarget: (source) => source.name,
};

export function seedSchemaTransform(prefix?: string): Transform {
  const typeOf = new Map<string, CollectionType>();
  return {
    name: 'seed-schema',
    async apply(record, source) {
      const type = inferCollectionType(record.metadata, source.name);
      const p = prefix ?? inferPrefix(source.name);
      const target = `${p}_${type}`;
      typeOf.set(target, type);
      const metadata = toSeedSchema(record.metadata, { id: record.id, document: record.document, sourceCollection: source.name, type, prefix: p });
      return [{ collection: target, record: { ...record, metadata } }];
    },
    targetCollection: (name, source) => ({
      name, space: source.space, hnsw: source.hnsw, metadata: { collection_type: typeOf.get(name) ?? 'corpus', migrated_from: source.name } as RecordMetadata,
    }),
    schemaOf: (target) => {
      const t = typeOf.get(target);
      return t ? requiredFields(t) : null;
    },
    emptyTarget: (source) => {
      const type = inferCollectionType(null, source.name);
      const target = `${prefix ?? inferPrefix(source.name)}_${type}`;
      if (!typeOf.has(target)) typeOf.set(target, type);
      return target;
    },
  };
}

/** Load `--transform none | seed-schema | ./file.ts`. */
export async function loadTransform(spec: string, o: { prefix?: string } = {}): Promise<Transform> {
  if (spec === 'none') return noneTransform;
  if (spec === 'seed-schema') return seedSchemaTransform(o.prefix);
  const file = path.resolve(spec);
  if (!fs.existsSync(file)) throw new UserError(`--transform ${spec}: no such file; use none, seed-schema or a path to a .ts/.js module`);
  let mod: Record<string, unknown>;
  try {
    // tsx's loader, scoped to this import: a .ts transform loads as ESM wherever it lives.
    mod = /\.[cm]?ts$/.test(file)
      ? ((await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>)
      : ((await import(pathToFileURL(file).href)) as Record<string, unknown>);
  } catch (e) {
    throw new UserError(`--transform ${spec}: the module does not load (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
  }
  // A .ts file outside an ESM package loads as CommonJS: its exports sit under `default`.
  const exportsOf = (m: Record<string, unknown>) => (typeof m.default === 'function' ? m.default : m.transform);
  const inner = mod.default && typeof mod.default === 'object' ? (mod.default as Record<string, unknown>) : undefined;
  const fn = (exportsOf(mod) ?? (inner ? exportsOf(inner) : undefined)) as RecordTransform | undefined;
  if (typeof fn !== 'function') throw new UserError(`--transform ${spec}: the module exports no function (export default function transform(record, ctx) { ... })`);
  // Optional: `export function emptyCollection(ctx)` names the target of a source collection without records.
  const emptyFn = (mod.emptyCollection ?? inner?.emptyCollection) as ((ctx: TransformContext) => string | null) | undefined;
  return {
    name: path.basename(spec),
    async apply(record, source) {
      let out: Awaited<ReturnType<RecordTransform>>;
      try {
        out = await fn(structuredClone(record), { collection: source });
      } catch (e) {
        throw new UserError(`--transform ${spec} threw on record ${record.id} of ${source.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (out === null || out === undefined) return [];
      const list = Array.isArray(out) ? out : [out];
      for (const t of list) {
        if (!isTransformed(t)) {
          throw new UserError(`--transform ${spec} returned the wrong shape for record ${record.id} of ${source.name}: expected { collection: string, record: { id, embedding, document, metadata } } (or a list of them, or null)`);
        }
      }
      return list;
    },
    targetCollection: (name, source) => ({ name, metadata: source.metadata, space: source.space, hnsw: source.hnsw }),
    schemaOf: () => null,
    emptyTarget: (source) => {
      if (typeof emptyFn !== 'function') return null;
      const name = emptyFn({ collection: source });
      return typeof name === 'string' && name ? name : null;
    },
  };
}

function isTransformed(t: unknown): t is TransformedRecord {
  if (!t || typeof t !== 'object') return false;
  const { collection, record } = t as Partial<TransformedRecord>;
  if (typeof collection !== 'string' || !collection || !record || typeof record !== 'object') return false;
  return typeof record.id === 'string' && (record.embedding === null || Array.isArray(record.embedding)) &&
    (record.document === null || typeof record.document === 'string') && (record.metadata === null || typeof record.metadata === 'object');
}

/** `--rename a=b`: the transform's target collection a is written as b (everything else unchanged). */
export function withRenames(t: Transform, renames: Record<string, string>): Transform {
  if (Object.keys(renames).length === 0) return t;
  const back = new Map(Object.entries(renames).map(([a, b]) => [b, a]));
  const to = (name: string) => renames[name] ?? name;
  const from = (name: string) => back.get(name) ?? name;
  return {
    name: t.name,
    async apply(record, source) {
      return (await t.apply(record, source)).map((x) => ({ ...x, collection: to(x.collection) }));
    },
    targetCollection: (name, source) => ({ ...t.targetCollection(from(name), source), name }),
    schemaOf: (target) => t.schemaOf(from(target)),
    emptyTarget: (source) => {
      const name = t.emptyTarget(source);
      return name === null ? null : to(name);
    },
  };
}
