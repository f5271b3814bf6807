/**
 * What a target database accepts, checked in the validate phase before anything is written:
 * collection names, metadata keys and values, and the size of one record. A record that breaks a
 * rule is counted invalid with the field and the rule (so `--min-valid` decides); a collection
 * name that breaks one is refused (exit 2) before the first write.
 *
 * Chroma (checked against the server the `chromadb` npm package ships, 1.0.0, and read from
 * chroma-core/chroma `rust/types/src/validators.rs`):
 * - names: 3-512 characters from [a-zA-Z0-9._-], starting and ending with [a-zA-Z0-9], no `..`,
 *   not an IPv4 address (`1.2.3.4`; `01.2.3.4` is not one);
 * - metadata values: string, integer, float, boolean; a list of one of those types (non-empty)
 *   only from Chroma 1.5 on (the 1.0 server answers 422 to any list); no nested object, no null
 *   (422 on add; on upsert the key is silently dropped);
 * - metadata keys: non-empty, not starting with `#` or `$` (refused by current servers; reserved
 *   for `#document`, `#embedding` and the `$` operators) and not starting with `chroma:` (the
 *   1.0 server turns `chroma:document` into the record's document, drops other `chroma:` keys
 *   and, for a non-string `chroma:document`, stops writing altogether until restarted);
 * - sizes: none on a self-hosted server (a 40 MB document and a 40 MB metadata string are stored).
 *
 * Qdrant (read from qdrant/qdrant `lib/common/common/src/validation.rs` and the collection
 * creation request): names of 1-255 characters without `< > : " / \ | ? *`, NUL or U+001F;
 * payload values may be any JSON (nested objects, lists, null); one point must fit a request
 * (`service.max_request_size_mb`, 32 MiB by default); a vector size is needed to create a
 * collection.
 */
import type { MigrationRecord } from './types.ts';

/** One broken rule of a record: the field it concerns (a metadata key, `id`, `record`) and the rule's name. */
export interface RuleProblem {
  field: string;
  rule: string;
  /** What is wrong and what the rule is, for log lines and refusals. */
  text: string;
}

export interface TargetRules {
  /** Who the rules are of (messages say "not a valid Chroma collection name"). */
  readonly target: string;
  /** Why the name cannot be a collection name on this target, or null. */
  collectionNameProblem(name: string): string | null;
  /** Every rule the record's metadata and size break (empty: the target can store it). */
  recordProblems(record: MigrationRecord): RuleProblem[];
  /** The target needs a vector size to create a collection (an empty one has none from its records). */
  readonly needsVectorSize: boolean;
}

/** A target that stores whatever JSON can hold (a .jsonl export). */
export const ANY_JSON: TargetRules = {
  target: 'export file',
  collectionNameProblem: (name) => (name === '' ? 'the name is empty' : null),
  recordProblems: () => [],
  needsVectorSize: false,
};

const CHROMA_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$/;
const IPV4_OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = new RegExp(`^${IPV4_OCTET}(\\.${IPV4_OCTET}){3}$`);

export function chromaCollectionNameProblem(name: string): string | null {
  if (!CHROMA_NAME.test(name)) {
    return 'Chroma wants 3-512 characters from [a-zA-Z0-9._-], starting and ending with a letter or digit';
  }
  if (name.includes('..')) return 'Chroma refuses two consecutive periods (..)';
  if (IPV4.test(name)) return 'Chroma refuses a name that is an IPv4 address';
  return null;
}

/** Chroma's rules; `lists`: the server stores lists of one scalar type as metadata values (1.5+). */
export function chromaRules(o: { lists: boolean; version?: string }): TargetRules {
  return {
    target: `Chroma${o.version ? ` ${o.version}` : ''}`,
    collectionNameProblem: chromaCollectionNameProblem,
    needsVectorSize: false,
    recordProblems(r) {
      const out: RuleProblem[] = [];
      for (const [key, value] of Object.entries(r.metadata ?? {})) {
        const k = chromaKeyProblem(key);
        if (k) out.push(k);
        const v = chromaValueProblem(key, value as unknown, o);
        if (v) out.push(v);
      }
      return out;
    },
  };
}

function chromaKeyProblem(key: string): RuleProblem | null {
  if (key === '') return { field: key, rule: 'key_empty', text: 'a metadata key is empty (Chroma wants a non-empty key)' };
  if (key.startsWith('#') || key.startsWith('$')) {
    return { field: key, rule: 'key_reserved', text: `metadata key "${key}" starts with "${key[0]}" (Chroma reserves keys starting with # and $)` };
  }
  if (key.startsWith('chroma:')) {
    return { field: key, rule: 'key_reserved', text: `metadata key "${key}" starts with "chroma:" (Chroma's own keys: chroma:document becomes the document, others are dropped)` };
  }
  return null;
}

function chromaValueProblem(key: string, v: unknown, o: { lists: boolean }): RuleProblem | null {
  if (v === null || v === undefined) return { field: key, rule: 'null_value', text: `metadata ${key} is null (Chroma stores no null: leave the key out)` };
  if (typeof v === 'string' || typeof v === 'boolean') return null;
  if (typeof v === 'number') return Number.isFinite(v) ? null : { field: key, rule: 'not_finite', text: `metadata ${key} is ${v} (Chroma stores finite numbers)` };
  if (Array.isArray(v)) {
    if (!o.lists) return { field: key, rule: 'list_value', text: `metadata ${key} is a list (this Chroma server stores lists from version 1.5 on; join it into a string with a --transform)` };
    if (v.length === 0) return { field: key, rule: 'list_empty', text: `metadata ${key} is an empty list (Chroma wants a non-empty list)` };
    const t = typeof v[0];
    if (!v.every((x) => (typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x))) && typeof x === t)) {
      return { field: key, rule: 'list_mixed', text: `metadata ${key} is a list that is not all strings, all numbers or all booleans (Chroma wants one scalar type)` };
    }
    return null;
  }
  return { field: key, rule: 'nested_object', text: `metadata ${key} is a nested object (Chroma stores strings, numbers, booleans${o.lists ? ' and lists of one of them' : ''}; flatten it with a --transform)` };
}

/** Qdrant's default request size limit (`service.max_request_size_mb`). */
export const QDRANT_MAX_REQUEST_BYTES = 32 * 1024 * 1024;
const QDRANT_BAD_NAME_CHARS = ['<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0', '\u001f'];

export const QDRANT_RULES: TargetRules = {
  target: 'Qdrant',
  collectionNameProblem(name) {
    if (name.length < 1 || name.length > 255) return 'Qdrant wants 1-255 characters';
    const bad = QDRANT_BAD_NAME_CHARS.find((c) => name.includes(c));
    return bad !== undefined ? `Qdrant refuses the character ${JSON.stringify(bad)} in a name` : null;
  },
  needsVectorSize: true,
  recordProblems(r) {
    const out: RuleProblem[] = [];
    for (const [key, value] of Object.entries(r.metadata ?? {})) {
      if (typeof value === 'number' && !Number.isFinite(value)) out.push({ field: key, rule: 'not_finite', text: `metadata ${key} is ${value} (JSON has no such number)` });
    }
    const bytes = Buffer.byteLength(JSON.stringify(r));
    if (bytes > QDRANT_MAX_REQUEST_BYTES) {
      out.push({ field: 'record', rule: 'too_large', text: `the record is ${bytes} bytes as JSON, over Qdrant's request limit of ${QDRANT_MAX_REQUEST_BYTES} bytes` });
    }
    return out;
  },
};

/** `1.5.0` >= `1.5.0`: numeric parts compared in order (a missing part is 0). */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.replace(/^v/, '').split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const b = min.split('.').map(Number);
  for (let i = 0; i < b.length; i++) {
    if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) > b[i]!;
  }
  return true;
}
