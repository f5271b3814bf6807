/**
 * The validate phase: per record, what is wrong with it, each problem naming the field and the
 * rule. Records with a problem are not imported; the run stops before any write when the valid
 * share is under `--min-valid`. The target's own rules (lib/migrate/target-rules.ts: metadata
 * types, lists, key names, sizes) are applied here, so a record the target would refuse never
 * reaches the import.
 */
import { fieldProblem, type requiredFields } from './seed-schema.ts';
import type { TargetRules } from './target-rules.ts';
import type { MigrationRecord } from './types.ts';

export type Schema = ReturnType<typeof requiredFields>;

/** One problem of one record: `issue` is what is counted (`rule` or `rule:field`). */
export interface RecordIssue {
  issue: string;
  rule: string;
  field?: string;
  text: string;
}

/** Ids kept per issue, for the summary and the refusal (`nested_object:tags: 3 (e.g. r1, r7)`). */
const EXAMPLE_IDS = 3;

export class RecordValidator {
  /** Issue name -> records with it. */
  readonly issues = new Map<string, number>();
  /** Issue name -> the first ids of records with it. */
  readonly examples = new Map<string, string[]>();
  total = 0;
  valid = 0;
  private readonly dims = new Map<string, number>();

  /** The record's problems (empty: valid). The first valid embedding fixes a collection's dimension. */
  check(collection: string, r: MigrationRecord, schema: Schema | null, rules?: TargetRules | null): RecordIssue[] {
    const found: RecordIssue[] = [];
    // The counted issue names the metadata field (`wrong_type:author`); record-level ones are the rule alone.
    const add = (rule: string, text: string, field?: string, keyed = field !== undefined) => found.push({ issue: keyed ? `${rule}:${field}` : rule, rule, field, text });
    if (typeof r.id !== 'string' || r.id === '') add('missing_id', 'the record has no id');
    const emb = r.embedding;
    if (!emb || emb.length === 0) add('missing_embedding', 'the record has no embedding', 'embedding', false);
    else if (emb.some((v) => typeof v !== 'number' || !Number.isFinite(v))) add('nan_or_inf_in_embedding', 'the embedding holds NaN, Infinity or a non-number', 'embedding', false);
    else {
      const want = this.dims.get(collection);
      if (want === undefined) this.dims.set(collection, emb.length);
      else if (want !== emb.length) add('inconsistent_dimension', `the embedding has ${emb.length} values, the collection's others ${want}`, 'embedding', false);
    }
    if (r.metadata !== null && (typeof r.metadata !== 'object' || Array.isArray(r.metadata))) {
      add('metadata_not_object', `the metadata is a ${Array.isArray(r.metadata) ? 'list' : typeof r.metadata}, not an object of fields`, 'metadata', false);
    } else {
      if (schema) {
        for (const [name, spec] of Object.entries(schema)) {
          const p = fieldProblem(r.metadata?.[name], spec.type);
          if (p === 'missing') add('missing_field', `required field ${name} is missing`, name);
          else if (p === 'out_of_range') add('out_of_range', `${name} = ${JSON.stringify(r.metadata?.[name])} is outside 0..1`, name);
          else if (p) add('wrong_type', `${name} = ${JSON.stringify(r.metadata?.[name])} is not of type ${spec.type}`, name);
        }
      }
      for (const p of rules?.recordProblems(r) ?? []) add(p.rule, p.text, p.field);
    }
    this.total++;
    if (found.length === 0) this.valid++;
    for (const issue of new Set(found.map((f) => f.issue))) {
      this.issues.set(issue, (this.issues.get(issue) ?? 0) + 1);
      const ids = this.examples.get(issue) ?? [];
      if (ids.length < EXAMPLE_IDS) ids.push(String(r.id));
      this.examples.set(issue, ids);
    }
    return found;
  }

  dimensionOf(collection: string): number | null {
    return this.dims.get(collection) ?? null;
  }

  get validShare(): number {
    return this.total === 0 ? 1 : this.valid / this.total;
  }

  /** Issues, most frequent first, each with the first ids of the records that have it. */
  ranked(): { issue: string; records: number; ids: string[] }[] {
    return [...this.issues]
      .map(([issue, records]) => ({ issue, records, ids: this.examples.get(issue) ?? [] }))
      .sort((a, b) => b.records - a.records || (a.issue < b.issue ? -1 : 1));
  }
}

/** One line per issue for summaries and refusals: `nested_object:tags (3 records, e.g. r1, r7)`. */
export function describeIssue(i: { issue: string; records: number; ids?: string[] }): string {
  return `${i.issue} (${i.records} record${i.records === 1 ? '' : 's'}${i.ids?.length ? `, e.g. ${i.ids.join(', ')}` : ''})`;
}
