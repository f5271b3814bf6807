/**
 * Seed 002's target schema: four collections `<prefix>_personality`, `_rhetorical`, `_humor`,
 * `_corpus`; every record carries the 8 core and 3 trust fields, plus the 4 fields of its
 * collection. Missing fields get the documented defaults (README "Seed schema").
 */
import type { MetadataValue, RecordMetadata } from './types.ts';

export const COLLECTION_TYPES = ['personality', 'rhetorical', 'humor', 'corpus'] as const;
export type CollectionType = (typeof COLLECTION_TYPES)[number];

type FieldType = 'string' | 'int' | 'score' | 'bool';
interface FieldSpec {
  type: FieldType;
  /** The default for a record that lacks the field (a function of the record where it must be). */
  default: MetadataValue | ((ctx: DefaultContext) => MetadataValue);
}
interface DefaultContext {
  id: string;
  document: string | null;
  sourceCollection: string;
  type: CollectionType;
  prefix: string;
}

export const CORE_FIELDS: Record<string, FieldSpec> = {
  source: { type: 'string', default: (c) => c.sourceCollection },
  source_file: { type: 'string', default: '' },
  source_line: { type: 'int', default: 0 },
  author: { type: 'string', default: 'Unknown' },
  collection_type: { type: 'string', default: (c) => c.type },
  category: { type: 'string', default: 'general' },
  language: { type: 'string', default: 'en' },
  authenticity_score: { type: 'score', default: 0.75 },
};

export const TRUST_FIELDS: Record<string, FieldSpec> = {
  confidence_level: { type: 'string', default: 'medium' },
  disputed: { type: 'bool', default: false },
  if_citation_uri: { type: 'string', default: (c) => `if://citation/${slug(c.prefix)}-${c.type}/${slug(c.id)}` },
};

export const COLLECTION_FIELDS: Record<CollectionType, Record<string, FieldSpec>> = {
  personality: {
    big_five_trait: { type: 'string', default: 'unspecified' },
    trait_score: { type: 'score', default: 0.5 },
    related_frameworks: { type: 'string', default: '' },
    behavioral_examples_count: { type: 'int', default: 0 },
  },
  rhetorical: {
    device_type: { type: 'string', default: 'unspecified' },
    frequency: { type: 'int', default: 0 },
    linguistic_marker: { type: 'string', default: '' },
    usage_context: { type: 'string', default: '' },
  },
  humor: {
    humor_type: { type: 'string', default: 'unspecified' },
    emotional_context: { type: 'string', default: '' },
    target_audience: { type: 'string', default: 'general' },
    effectiveness_rating: { type: 'score', default: 0.5 },
  },
  corpus: {
    document_type: { type: 'string', default: 'text' },
    word_count: { type: 'int', default: (c) => (c.document ? c.document.split(/\s+/).filter(Boolean).length : 0) },
    includes_spanish: { type: 'bool', default: false },
    emotional_intensity: { type: 'score', default: 0.5 },
  },
};

/** Every field a record of `type` must carry, with its type. */
export function requiredFields(type: CollectionType): Record<string, FieldSpec> {
  return { ...CORE_FIELDS, ...TRUST_FIELDS, ...COLLECTION_FIELDS[type] };
}

/** personality | rhetorical | humor | corpus from the record's own `collection_type`, else its collection's name. */
export function inferCollectionType(metadata: RecordMetadata | null, sourceCollection: string): CollectionType {
  const own = metadata?.collection_type;
  if (typeof own === 'string' && (COLLECTION_TYPES as readonly string[]).includes(own)) return own as CollectionType;
  const n = sourceCollection.toLowerCase();
  if (/personal|trait/.test(n)) return 'personality';
  if (/rhetor|device/.test(n)) return 'rhetorical';
  if (/humou?r|joke/.test(n)) return 'humor';
  return 'corpus';
}

/** `sergio` from `sergio_personality`; otherwise the whole name. */
export function inferPrefix(sourceCollection: string): string {
  const m = /^(.*)_(personality|rhetorical|humor|corpus)$/.exec(sourceCollection);
  return m ? m[1]! : sourceCollection;
}

/** The record's metadata in the target schema: its fields kept, the schema's fields defaulted and coerced. */
export function toSeedSchema(
  metadata: RecordMetadata | null,
  ctx: DefaultContext,
): RecordMetadata {
  const out: RecordMetadata = { ...(metadata ?? {}) };
  for (const [name, spec] of Object.entries(requiredFields(ctx.type))) {
    const have = out[name];
    if (have === undefined || have === null || have === '') {
      if (have === '' && spec.type === 'string') continue;
      out[name] = typeof spec.default === 'function' ? spec.default(ctx) : spec.default;
    } else {
      out[name] = coerce(have, spec.type);
    }
  }
  out.collection_type = ctx.type;
  return out;
}

/** Values in the old schema written as strings ("0.9", "true", "12") become the schema's type; others are kept (validate reports them). */
function coerce(v: MetadataValue, type: FieldType): MetadataValue {
  if (typeof v !== 'string') return v;
  const t = v.trim();
  if ((type === 'int' && /^-?\d+$/.test(t)) || (type === 'score' && t !== '' && Number.isFinite(Number(t)))) return Number(t);
  if (type === 'bool' && /^(true|false)$/i.test(t)) return t.toLowerCase() === 'true';
  return v;
}

/** Does `v` have the field's type (and range, for scores)? */
export function fieldProblem(v: MetadataValue | undefined, type: FieldType): 'missing' | 'wrong_type' | 'out_of_range' | null {
  if (v === undefined || v === null) return 'missing';
  switch (type) {
    case 'string': return typeof v === 'string' ? null : 'wrong_type';
    case 'bool': return typeof v === 'boolean' ? null : 'wrong_type';
    case 'int': return typeof v === 'number' && Number.isInteger(v) ? null : 'wrong_type';
    case 'score': return typeof v !== 'number' ? 'wrong_type' : v >= 0 && v <= 1 ? null : 'out_of_range';
  }
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '') || 'x';
}
