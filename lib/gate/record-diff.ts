/**
 * How a record of the new database differs from its expected record (the old record through the
 * migration's transform): its document, each metadata key's presence, type and value, and its
 * embedding (within a tolerance). A key whose value is null counts as absent (Chroma stores no
 * null: it drops the key).
 */
import type { RecordMetadata } from '../migrate/types.ts';

export const DIFFERENCE_KINDS = [
  'missing', 'extra', 'document_changed', 'metadata_value_changed', 'metadata_type_changed',
  'metadata_key_removed', 'metadata_key_added', 'embedding_changed',
] as const;

export type DifferenceKind = (typeof DIFFERENCE_KINDS)[number];

/** The relative tolerance of an embedding value. */
export const EMBEDDING_TOLERANCE = 1e-6;

export interface ComparedRecord {
  id: string;
  document: string | null;
  metadata: RecordMetadata | null;
  embedding: ArrayLike<number> | null;
}

/** One difference of one record: its kind and what it is, for the report's details. */
export interface Difference {
  kind: DifferenceKind;
  /** The metadata key, for the metadata kinds. */
  key?: string;
  what: string;
}

/** A metadata value's type as the gate tells them apart: 0.99 and "0.99" differ, so do 1 and true. */
export function valueType(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** The document and metadata differences of `got` against `want` (embedding: see embeddingDifference). */
export function contentDifferences(want: ComparedRecord, got: ComparedRecord): Difference[] {
  const out: Difference[] = [];
  if ((want.document ?? null) !== (got.document ?? null)) {
    out.push({ kind: 'document_changed', what: `document ${show(got.document ?? null)}, expected ${show(want.document ?? null)}` });
  }
  const a = want.metadata ?? {};
  const b = got.metadata ?? {};
  // Keys in sorted order: a server need not keep the order they were written in.
  for (const key of Object.keys(a).sort()) {
    const v = a[key];
    if (v === null || v === undefined) continue;
    const w = b[key];
    if (w === null || w === undefined) out.push({ kind: 'metadata_key_removed', key, what: `${key} removed (expected ${show(v)})` });
    else if (valueType(v) !== valueType(w)) out.push({ kind: 'metadata_type_changed', key, what: `${key} = ${show(w)} (${valueType(w)}), expected ${show(v)} (${valueType(v)})` });
    else if (!sameValue(v, w)) out.push({ kind: 'metadata_value_changed', key, what: `${key} = ${show(w)}, expected ${show(v)}` });
  }
  for (const key of Object.keys(b).sort()) {
    const w = b[key];
    if (w === null || w === undefined) continue;
    if (a[key] === null || a[key] === undefined) out.push({ kind: 'metadata_key_added', key, what: `${key} = ${show(w)} added` });
  }
  return out;
}

/** Why the embedding of `got` is not the expected one (dimension, NaN/Inf, a value off), or null. */
export function embeddingDifference(want: ArrayLike<number> | null, got: ArrayLike<number> | null): string | null {
  const a = want ?? [];
  const b = got ?? [];
  if (a.length !== b.length) return `dimension ${b.length}, expected ${a.length}`;
  for (let k = 0; k < b.length; k++) {
    const y = b[k]!;
    const x = a[k]!;
    if (!Number.isFinite(y)) return `value ${k} is ${y}`;
    if (Math.abs(y - x) > EMBEDDING_TOLERANCE * Math.max(1, Math.abs(x))) return `value ${k} is ${y}, the source has ${x}`;
  }
  return null;
}
