/**
 * The validate phase: per record, what is wrong with it. Records with an issue are not imported;
 * the run stops before any write when the valid share is under `--min-valid`.
 */
import { fieldProblem, type requiredFields } from './seed-schema.ts';
import type { MigrationRecord } from './types.ts';

export type Schema = ReturnType<typeof requiredFields>;

export class RecordValidator {
  /** Issue name -> records with it. */
  readonly issues = new Map<string, number>();
  total = 0;
  valid = 0;
  private readonly dims = new Map<string, number>();

  /** The record's issues (empty: valid). The first valid embedding fixes a collection's dimension. */
  check(collection: string, r: MigrationRecord, schema: Schema | null): string[] {
    const found: string[] = [];
    if (typeof r.id !== 'string' || r.id === '') found.push('missing_id');
    const emb = r.embedding;
    if (!emb || emb.length === 0) found.push('missing_embedding');
    else if (emb.some((v) => typeof v !== 'number' || !Number.isFinite(v))) found.push('nan_or_inf_in_embedding');
    else {
      const want = this.dims.get(collection);
      if (want === undefined) this.dims.set(collection, emb.length);
      else if (want !== emb.length) found.push('inconsistent_dimension');
    }
    if (schema) {
      for (const [name, spec] of Object.entries(schema)) {
        const p = fieldProblem(r.metadata?.[name], spec.type);
        if (p) found.push(`${p === 'out_of_range' ? 'out_of_range' : p === 'missing' ? 'missing_field' : 'wrong_type'}:${name}`);
      }
    }
    this.total++;
    if (found.length === 0) this.valid++;
    for (const f of new Set(found)) this.issues.set(f, (this.issues.get(f) ?? 0) + 1);
    return found;
  }

  dimensionOf(collection: string): number | null {
    return this.dims.get(collection) ?? null;
  }

  get validShare(): number {
    return this.total === 0 ? 1 : this.valid / this.total;
  }

  /** Issues, most frequent first. */
  ranked(): { issue: string; records: number }[] {
    return [...this.issues].map(([issue, records]) => ({ issue, records })).sort((a, b) => b.records - a.records || (a.issue < b.issue ? -1 : 1));
  }
}
