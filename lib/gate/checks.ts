/**
 * The eight checks of the validation gate (seed 004), fed record by record while the expected
 * records (the old database through the migration's transform) are compared with the new
 * database, one target collection at a time. Each ends PASSED, WARNING or FAILED with figures.
 */
import { fieldProblem, type requiredFields } from '../migrate/seed-schema.ts';
import type { DistanceSpace, MetadataValue, MigrationRecord } from '../migrate/types.ts';
import { offerRecord, TopK } from './exact-search.ts';

/** A query vector of the semantic check, run on the records of one target collection. */
export interface GateQuery {
  label: string;
  embedding: number[];
  k: number;
  where?: Record<string, unknown>;
}

export type CheckStatus = 'PASSED' | 'WARNING' | 'FAILED';

export interface CheckResult {
  id: number;
  name: string;
  status: CheckStatus;
  figures: Record<string, number | string>;
  details: string[];
}

export type Schema = ReturnType<typeof requiredFields>;

export const CHECK_NAMES = [
  'count_verification', 'embedding_integrity', 'metadata_completeness', 'semantic_search_equivalence',
  'collection_distribution', 'duplicate_detection', 'field_type_validation', 'citation_references',
] as const;

/** Seed 004's rollback reasons, by check. */
export const ROLLBACK_REASONS: Record<string, string> = {
  count_verification: 'Chunk Count Mismatch',
  embedding_integrity: 'Embedding Corruption',
  metadata_completeness: 'Schema Violation',
  semantic_search_equivalence: 'Search Results Diverged',
  collection_distribution: 'Collection Distribution Mismatch',
  duplicate_detection: 'Duplicate IDs Found',
  field_type_validation: 'Field Type Mismatch',
  citation_references: 'Citation References Invalid',
};

export const CITATION_RE = /^if:\/\/[A-Za-z0-9._-]+\/\S+$/;
const MAX_DETAILS = 20;

function note(list: string[], line: string): void {
  if (list.length < MAX_DETAILS) list.push(line);
}

export class GateChecker {
  // 1. counts
  readonly counts = new Map<string, { expected: number; actual: number; missing: number; extra: number }>();
  /** Expected collections the new database does not have at all (an empty one included). */
  readonly absentCollections: string[] = [];
  // 2. embeddings
  embeddingsCompared = 0;
  embeddingsBad = 0;
  readonly embeddingDetails: string[] = [];
  // 3, 7, 8. metadata
  recordsChecked = 0;
  missingFields = 0;
  readonly missingFieldRecords = new Map<string, number>();
  wrongTypes = 0;
  readonly wrongTypeFields = new Map<string, number>();
  citationsRequired = 0;
  citationsBad = 0;
  readonly metadataDetails: string[] = [];
  readonly citationDetails: string[] = [];
  // 5. distribution: target -> category -> [expected, actual]
  readonly distribution = new Map<string, Map<string, [number, number]>>();
  // 6. duplicates
  private readonly idOwner = new Map<string, string>();
  duplicateIdsAcross = 0;
  readonly duplicateDetails: string[] = [];
  duplicateDocsExpected = 0;
  duplicateDocsActual = 0;
  // 4. semantic
  queries = 0;
  divergenceSum = 0;
  readonly semanticDetails: string[] = [];

  constructor(private readonly sample: number | undefined) {}

  /**
   * One target collection: its expected records (streamed) against the records the new database
   * holds (`actual`, by id). `schema`: the transform's schema, else the expected records' own keys.
   */
  async compareCollection(
    name: string, expected: AsyncIterable<MigrationRecord>, expectedCount: number, actual: Map<string, MigrationRecord>, schema: Schema | null,
    search: { space: DistanceSpace; queries: GateQuery[] } = { space: 'l2', queries: [] },
  ): Promise<void> {
    const seen = new Set<string>();
    const searches = search.queries.map((q) => ({ q, old: new TopK(q.k), neu: new TopK(q.k) }));
    const step = this.sample ? Math.max(1, Math.floor(expectedCount / this.sample)) : 1;
    let i = 0;
    const dist = this.distribution.get(name) ?? new Map<string, [number, number]>();
    this.distribution.set(name, dist);
    const docsExpected = new Map<string, number>();
    for await (const want of expected) {
      seen.add(want.id);
      for (const x of searches) offerRecord(x.old, search.space, x.q.embedding, want, x.q.where);
      const cat = categoryOf(want.metadata?.category);
      const d = dist.get(cat) ?? [0, 0];
      d[0]++;
      dist.set(cat, d);
      if (want.document) docsExpected.set(want.document, (docsExpected.get(want.document) ?? 0) + 1);
      const got = actual.get(want.id);
      if (!got) continue;
      if (i++ % step === 0) this.compareEmbedding(name, want, got);
      if (!schema) this.compareFields(name, want, got);
    }
    for (const n of docsExpected.values()) if (n > 1) this.duplicateDocsExpected += n - 1;
    let missing = 0;
    for (const id of seen) if (!actual.has(id)) missing++;
    const docsActual = new Map<string, number>();
    for (const got of actual.values()) {
      for (const x of searches) offerRecord(x.neu, search.space, x.q.embedding, got, x.q.where);
      const cat = categoryOf(got.metadata?.category);
      const d = dist.get(cat) ?? [0, 0];
      d[1]++;
      dist.set(cat, d);
      this.checkMetadata(name, got, schema);
      if (got.document) docsActual.set(got.document, (docsActual.get(got.document) ?? 0) + 1);
      const owner = this.idOwner.get(got.id);
      if (owner !== undefined) {
        this.duplicateIdsAcross++;
        note(this.duplicateDetails, `id ${got.id} is in ${owner} and in ${name}`);
      } else this.idOwner.set(got.id, name);
    }
    for (const [doc, n] of docsActual) {
      if (n > 1) {
        this.duplicateDocsActual += n - 1;
        if ((docsExpected.get(doc) ?? 0) < n) note(this.duplicateDetails, `${name}: a document appears ${n} times: ${JSON.stringify(doc.slice(0, 60))}`);
      }
    }
    for (const x of searches) this.addQuery(x.q.label, x.old.ids(), x.neu.ids());
    const extra = [...actual.keys()].filter((id) => !seen.has(id)).length;
    this.counts.set(name, { expected: expectedCount, actual: actual.size, missing, extra });
  }

  /** An expected target collection is not on the new database (its records, if any, count as missing too). */
  collectionAbsent(name: string): void {
    if (!this.absentCollections.includes(name)) this.absentCollections.push(name);
  }

  private compareEmbedding(name: string, want: MigrationRecord, got: MigrationRecord): void {
    this.embeddingsCompared++;
    const a = want.embedding ?? [];
    const b = got.embedding ?? [];
    let problem: string | null = null;
    if (a.length !== b.length) problem = `dimension ${b.length}, expected ${a.length}`;
    else {
      for (let k = 0; k < b.length; k++) {
        if (!Number.isFinite(b[k]!)) { problem = `value ${k} is ${b[k]}`; break; }
        if (Math.abs(b[k]! - a[k]!) > 1e-6 * Math.max(1, Math.abs(a[k]!))) { problem = `value ${k} is ${b[k]}, the source has ${a[k]}`; break; }
      }
    }
    if (problem) {
      this.embeddingsBad++;
      note(this.embeddingDetails, `${name}/${want.id}: ${problem}`);
    }
  }

  /** Without a schema: every field of the expected record is on the new one, with the same type. */
  private compareFields(name: string, want: MigrationRecord, got: MigrationRecord): void {
    const m = got.metadata ?? {};
    let missing = false;
    for (const [field, v] of Object.entries(want.metadata ?? {})) {
      if (!(field in m) || m[field] === null) {
        if (v !== null) {
          missing = true;
          this.missingFieldRecords.set(field, (this.missingFieldRecords.get(field) ?? 0) + 1);
        }
      } else if (typeof m[field] !== typeof v) {
        this.wrongTypes++;
        this.wrongTypeFields.set(field, (this.wrongTypeFields.get(field) ?? 0) + 1);
        note(this.metadataDetails, `${name}/${got.id}: ${field} = ${JSON.stringify(m[field])} (the source has a ${typeof v})`);
      }
    }
    if (missing) this.missingFields++;
    if (typeof want.metadata?.if_citation_uri === 'string') this.checkCitation(name, got);
  }

  /** A record required to carry `if_citation_uri`: present and `if://kind/...`. */
  private checkCitation(name: string, got: MigrationRecord): void {
    this.citationsRequired++;
    const uri = got.metadata?.if_citation_uri;
    if (typeof uri !== 'string' || !CITATION_RE.test(uri)) {
      this.citationsBad++;
      note(this.citationDetails, `${name}/${got.id}: if_citation_uri = ${JSON.stringify(uri ?? null)}`);
    }
  }

  private checkMetadata(name: string, got: MigrationRecord, schema: Schema | null): void {
    this.recordsChecked++;
    const m = got.metadata ?? {};
    if (!schema) return;
    let missing = false;
    for (const [field, spec] of Object.entries(schema)) {
      const p = fieldProblem(m[field] as MetadataValue | undefined, spec.type);
      if (p === 'missing') {
        missing = true;
        this.missingFieldRecords.set(field, (this.missingFieldRecords.get(field) ?? 0) + 1);
      } else if (p) {
        this.wrongTypes++;
        this.wrongTypeFields.set(field, (this.wrongTypeFields.get(field) ?? 0) + 1);
        note(this.metadataDetails, `${name}/${got.id}: ${field} = ${JSON.stringify(m[field])} (${p === 'out_of_range' ? 'out of range' : `not ${spec.type}`})`);
      }
    }
    if (missing) this.missingFields++;
    if ('if_citation_uri' in schema) this.checkCitation(name, got);
  }

  /** One query: exact top-k over the old records vs over the new ones. */
  addQuery(label: string, oldIds: string[], newIds: string[]): void {
    this.queries++;
    const want = new Set(oldIds);
    const overlap = newIds.filter((id) => want.has(id)).length;
    const divergence = oldIds.length ? 1 - overlap / oldIds.length : 0;
    this.divergenceSum += divergence;
    if (divergence > 0) note(this.semanticDetails, `${label}: ${overlap}/${oldIds.length} of the old top-${oldIds.length} in the new top-${newIds.length}`);
  }

  results(): CheckResult[] {
    const out: CheckResult[] = [];
    // 1. counts
    let expected = 0;
    let missing = 0;
    let extra = 0;
    const countDetails: string[] = [];
    for (const [name, c] of this.counts) {
      expected += c.expected;
      missing += c.missing;
      extra += c.extra;
      if (c.missing || c.extra) countDetails.push(`${name}: expected ${c.expected}, actual ${c.actual} (${c.missing} missing, ${c.extra} unexpected)`);
    }
    const loss = expected ? (100 * missing) / expected : 0;
    for (const name of this.absentCollections) countDetails.unshift(`${name}: expected on the new database (${this.counts.get(name)?.expected ?? 0} records), absent`);
    out.push({
      id: 1, name: 'count_verification',
      status: loss > 5 || this.absentCollections.length ? 'FAILED' : missing > 0 || extra > 0 ? 'WARNING' : 'PASSED',
      figures: { expected, actual: expected - missing + extra, missing, unexpected: extra, data_loss_percentage: round(loss), missing_collections: this.absentCollections.length },
      details: countDetails,
    });
    // 2. embeddings
    out.push({
      id: 2, name: 'embedding_integrity', status: this.embeddingsBad ? 'FAILED' : 'PASSED',
      figures: { compared: this.embeddingsCompared, mismatched: this.embeddingsBad, tolerance: 1e-6 },
      details: this.embeddingDetails,
    });
    // 3. completeness
    out.push({
      id: 3, name: 'metadata_completeness', status: this.missingFields ? 'FAILED' : 'PASSED',
      figures: { records: this.recordsChecked, records_missing_fields: this.missingFields },
      details: [...this.missingFieldRecords].map(([f, n]) => `${f} missing on ${n} records`),
    });
    // 4. semantic
    const div = this.queries ? (100 * this.divergenceSum) / this.queries : 0;
    out.push({
      id: 4, name: 'semantic_search_equivalence',
      status: div > 20 ? 'FAILED' : div > 5 ? 'WARNING' : 'PASSED',
      figures: { queries: this.queries, semantic_divergence_percentage: round(div) },
      details: this.semanticDetails,
    });
    // 5. distribution
    const distDetails: string[] = [];
    let off = 0;
    for (const [name, cats] of this.distribution) {
      for (const [cat, [e, a]] of cats) {
        if (e !== a) {
          off += Math.abs(e - a);
          note(distDetails, `${name} / category ${cat}: ${a} records, expected ${e}`);
        }
      }
    }
    out.push({
      id: 5, name: 'collection_distribution', status: off ? 'FAILED' : 'PASSED',
      figures: { collections: this.distribution.size, records_off: off }, details: distDetails,
    });
    // 6. duplicates
    const extraDocs = Math.max(0, this.duplicateDocsActual - this.duplicateDocsExpected);
    out.push({
      id: 6, name: 'duplicate_detection', status: this.duplicateIdsAcross || extraDocs ? 'FAILED' : 'PASSED',
      figures: { duplicate_ids_across_collections: this.duplicateIdsAcross, duplicate_documents: extraDocs },
      details: this.duplicateDetails,
    });
    // 7. types
    out.push({
      id: 7, name: 'field_type_validation', status: this.wrongTypes ? 'FAILED' : 'PASSED',
      figures: { records: this.recordsChecked, wrong_types: this.wrongTypes },
      details: [...[...this.wrongTypeFields].map(([f, n]) => `${f}: ${n} records with the wrong type`), ...this.metadataDetails].slice(0, MAX_DETAILS),
    });
    // 8. citations
    out.push({
      id: 8, name: 'citation_references', status: this.citationsBad ? 'FAILED' : 'PASSED',
      figures: { required: this.citationsRequired, invalid: this.citationsBad },
      details: this.citationsRequired ? this.citationDetails : ['no record is required to carry if_citation_uri'],
    });
    return out;
  }
}

function categoryOf(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '(none)';
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
