/**
 * The checks of the validation gate: seed 004's eight, and a ninth (record_equality) that every
 * document and metadata value is the expected one. Fed record by record by the hash join of the
 * expected records (the old database through the migration's transform) with the new database's
 * (record-join.ts). Each ends PASSED, WARNING or FAILED with figures; every difference is also
 * tallied by kind with its first ids (differences.ts).
 */
import { fieldProblem, type requiredFields } from '../migrate/seed-schema.ts';
import type { DistanceSpace, MetadataValue } from '../migrate/types.ts';
import { Differences } from './differences.ts';
import { offerRecord, TopK } from './exact-search.ts';
import { contentDifferences, embeddingDifference, EMBEDDING_TOLERANCE, type ComparedRecord, type Difference } from './record-diff.ts';

/** A record as the checks see it (expected, or read from the new database). */
export type GateRecord = ComparedRecord;

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
  'collection_distribution', 'duplicate_detection', 'field_type_validation', 'citation_references', 'record_equality',
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
  record_equality: 'Record Content Changed',
};

export const CITATION_RE = /^if:\/\/[A-Za-z0-9._-]+\/\S+$/;
const MAX_DETAILS = 20;

function note(list: string[], line: string): void {
  if (list.length < MAX_DETAILS) list.push(line);
}

/** A target collection of the gate: its tag in the record buckets, space, queries and schema. */
export interface GateTarget {
  name: string;
  tag: number;
  space: DistanceSpace;
  queries: GateQuery[];
  /** Expected records as staged (before de-duplication by id): paces --sample. */
  staged: number;
  schema: Schema | null;
}

interface TargetState {
  t: GateTarget;
  expected: number;
  actual: number;
  missing: number;
  extra: number;
  compared: number;
  searches: { q: GateQuery; old: TopK; neu: TopK }[];
  dist: Map<string, [number, number]>;
  step: number;
}

/**
 * The checks, fed record by record by the hash join (record-join.ts): each expected record once,
 * each record of the new database once, and each pair with the same id in the same collection.
 * It holds figures, top-k lists and a few details per check, never the records.
 */
export class GateChecker {
  /** Expected collections the new database does not have at all (an empty one included). */
  readonly absentCollections: string[] = [];
  private readonly targets = new Map<number, TargetState>();
  // every difference by kind, with its first ids
  readonly differences = new Differences();
  contentCompared = 0;
  contentChanged = 0;
  readonly contentDetails: string[] = [];
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
  // 6. duplicates
  duplicateIdsAcross = 0;
  readonly duplicateDetails: string[] = [];
  duplicateDocsExpected = 0;
  duplicateDocsActual = 0;
  // 4. semantic
  queries = 0;
  divergenceSum = 0;
  readonly semanticDetails: string[] = [];

  constructor(private readonly sample: number | undefined) {}

  addTarget(t: GateTarget): void {
    this.targets.set(t.tag, {
      t, expected: 0, actual: 0, missing: 0, extra: 0, compared: 0, dist: new Map(),
      searches: t.queries.map((q) => ({ q, old: new TopK(q.k), neu: new TopK(q.k) })),
      step: this.sample ? Math.max(1, Math.floor(t.staged / this.sample)) : 1,
    });
  }

  /** An expected target collection is not on the new database (its records, if any, count as missing too). */
  collectionAbsent(name: string): void {
    if (!this.absentCollections.includes(name)) this.absentCollections.push(name);
  }

  private target(tag: number): TargetState {
    const s = this.targets.get(tag);
    if (!s) throw new Error(`gate: record of unknown collection tag ${tag}`);
    return s;
  }

  /** An expected record (once per collection and id). */
  expectedRecord(tag: number, want: GateRecord): void {
    const s = this.target(tag);
    s.expected++;
    for (const x of s.searches) offerRecord(x.old, s.t.space, x.q.embedding, want, x.q.where);
    bump(s.dist, categoryOf(want.metadata?.category), 0);
  }

  /** A record of the new database; `otherTag`: the collection already holding its id, if any. */
  actualRecord(tag: number, got: GateRecord, otherTag: number | undefined): void {
    const s = this.target(tag);
    s.actual++;
    for (const x of s.searches) offerRecord(x.neu, s.t.space, x.q.embedding, got, x.q.where);
    bump(s.dist, categoryOf(got.metadata?.category), 1);
    this.checkMetadata(s.t.name, got, s.t.schema);
    if (otherTag !== undefined) {
      this.duplicateIdsAcross++;
      note(this.duplicateDetails, `id ${got.id} is in ${this.target(otherTag).t.name} and in ${s.t.name}`);
    }
  }

  missing(tag: number, want: GateRecord): void {
    const s = this.target(tag);
    s.missing++;
    this.differences.add('missing', s.t.name, want.id);
  }

  extra(tag: number, got: GateRecord): void {
    const s = this.target(tag);
    s.extra++;
    this.differences.add('extra', s.t.name, got.id);
  }

  /** The expected record and the new database's record with its id, in the same collection. */
  matched(tag: number, want: GateRecord, got: GateRecord): void {
    const s = this.target(tag);
    const name = s.t.name;
    if (s.compared++ % s.step === 0) {
      this.embeddingsCompared++;
      const problem = embeddingDifference(want.embedding, got.embedding);
      if (problem) {
        this.embeddingsBad++;
        this.differences.add('embedding_changed', name, got.id);
        note(this.embeddingDetails, `${name}/${want.id}: ${problem}`);
      }
    }
    this.contentCompared++;
    const diffs = contentDifferences(want, got);
    if (diffs.length) {
      this.contentChanged++;
      for (const kind of new Set(diffs.map((d) => d.kind))) this.differences.add(kind, name, got.id);
      note(this.contentDetails, `${name}/${got.id}: ${diffs.map((d) => d.what).join('; ')}`);
    }
    if (!s.t.schema) this.compareFields(name, want, got, diffs);
  }

  /** Duplicate documents of a collection: `expected` and `actual` copies of one document, `ids` some of the new database's. */
  documentCopies(tag: number, expected: number, actual: number, ids: string[]): void {
    if (expected > 1) this.duplicateDocsExpected += expected - 1;
    if (actual > 1) {
      this.duplicateDocsActual += actual - 1;
      if (expected < actual) note(this.duplicateDetails, `${this.target(tag).t.name}: a document appears ${actual} times (ids ${ids.join(', ')}${actual > ids.length ? ', ...' : ''})`);
    }
  }

  /** Without a schema: every field of the expected record is on the new one, with the same type. */
  private compareFields(name: string, want: GateRecord, got: GateRecord, diffs: Difference[]): void {
    let missing = false;
    for (const d of diffs) {
      if (d.kind === 'metadata_key_removed') {
        missing = true;
        this.missingFieldRecords.set(d.key!, (this.missingFieldRecords.get(d.key!) ?? 0) + 1);
      } else if (d.kind === 'metadata_type_changed') {
        this.wrongTypes++;
        this.wrongTypeFields.set(d.key!, (this.wrongTypeFields.get(d.key!) ?? 0) + 1);
        note(this.metadataDetails, `${name}/${want.id}: ${d.what}`);
      }
    }
    if (missing) this.missingFields++;
    if (typeof want.metadata?.if_citation_uri === 'string') this.checkCitation(name, got);
  }

  /** A record required to carry `if_citation_uri`: present and `if://kind/...`. */
  private checkCitation(name: string, got: GateRecord): void {
    this.citationsRequired++;
    const uri = got.metadata?.if_citation_uri;
    if (typeof uri !== 'string' || !CITATION_RE.test(uri)) {
      this.citationsBad++;
      note(this.citationDetails, `${name}/${got.id}: if_citation_uri = ${JSON.stringify(uri ?? null)}`);
    }
  }

  private checkMetadata(name: string, got: GateRecord, schema: Schema | null): void {
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

  /** Per target collection: expected records (one per id), records of the new database, missing, extra. */
  get counts(): Map<string, { expected: number; actual: number; missing: number; extra: number }> {
    return new Map([...this.targets.values()].map((s) => [s.t.name, { expected: s.expected, actual: s.actual, missing: s.missing, extra: s.extra }]));
  }

  /** The semantic check's queries, answered once every record has been offered (then results()). */
  private finishQueries(): void {
    for (const s of this.targets.values()) for (const x of s.searches.splice(0)) this.addQuery(x.q.label, x.old.ids(), x.neu.ids());
  }

  results(): CheckResult[] {
    this.finishQueries();
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
      figures: { compared: this.embeddingsCompared, mismatched: this.embeddingsBad, tolerance: EMBEDDING_TOLERANCE },
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
    for (const { t: { name }, dist } of this.targets.values()) {
      for (const [cat, [e, a]] of dist) {
        if (e !== a) {
          off += Math.abs(e - a);
          note(distDetails, `${name} / category ${cat}: ${a} records, expected ${e}`);
        }
      }
    }
    out.push({
      id: 5, name: 'collection_distribution', status: off ? 'FAILED' : 'PASSED',
      figures: { collections: this.targets.size, records_off: off }, details: distDetails,
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
    // 9. every document and metadata value as expected
    const d = this.differences;
    out.push({
      id: 9, name: 'record_equality', status: this.contentChanged ? 'FAILED' : 'PASSED',
      figures: {
        compared: this.contentCompared, records_changed: this.contentChanged, document_changed: d.count('document_changed'),
        metadata_value_changed: d.count('metadata_value_changed'), metadata_type_changed: d.count('metadata_type_changed'),
        metadata_key_removed: d.count('metadata_key_removed'), metadata_key_added: d.count('metadata_key_added'),
      },
      details: this.contentDetails,
    });
    return out;
  }
}

function bump(dist: Map<string, [number, number]>, cat: string, side: 0 | 1): void {
  const d = dist.get(cat) ?? [0, 0];
  d[side]++;
  dist.set(cat, d);
}

function categoryOf(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '(none)';
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
