/**
 * Exact top-k search over records in hand (the gate's semantic check): deterministic, so two
 * databases holding the same vectors give the same answer, whatever their HNSW graphs look like.
 * Distances as Chroma defines them for its spaces; ties broken by id.
 */
import type { DistanceSpace, RecordMetadata } from '../migrate/types.ts';

export function distance(space: DistanceSpace, a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  let l2 = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i] ?? 0;
    dot += x * y;
    if (space === 'cosine') {
      na += x * x;
      nb += y * y;
    } else if (space === 'l2') {
      l2 += (x - y) * (x - y);
    }
  }
  if (space === 'l2') return l2;
  if (space === 'ip') return 1 - dot;
  return 1 - dot / (Math.sqrt(na) * Math.sqrt(nb) || 1);
}

/** Keeps the k best (smallest distance, then id) of what it is offered. */
export class TopK {
  private readonly items: { id: string; d: number }[] = [];
  constructor(readonly k: number) {}

  offer(id: string, d: number): void {
    const items = this.items;
    if (items.length === this.k) {
      const worst = items[items.length - 1]!;
      if (d > worst.d || (d === worst.d && id >= worst.id)) return;
      items.pop();
    }
    let i = items.length;
    while (i > 0 && (items[i - 1]!.d > d || (items[i - 1]!.d === d && items[i - 1]!.id > id))) i--;
    items.splice(i, 0, { id, d });
  }

  ids(): string[] {
    return this.items.map((x) => x.id);
  }
}

type Where = Record<string, unknown>;

/** Chroma's `where` for metadata: field equality, $eq $ne $gt $gte $lt $lte $in $nin, $and, $or. */
export function matchesWhere(m: RecordMetadata | null, where: Where | undefined): boolean {
  if (!where || Object.keys(where).length === 0) return true;
  for (const [key, cond] of Object.entries(where)) {
    if (key === '$and') {
      if (!(cond as Where[]).every((w) => matchesWhere(m, w))) return false;
    } else if (key === '$or') {
      if (!(cond as Where[]).some((w) => matchesWhere(m, w))) return false;
    } else if (!matchesField(m?.[key], cond)) return false;
  }
  return true;
}

function matchesField(v: unknown, cond: unknown): boolean {
  if (cond === null || typeof cond !== 'object' || Array.isArray(cond)) return v === cond;
  for (const [op, arg] of Object.entries(cond as Record<string, unknown>)) {
    const ok = (() => {
      switch (op) {
        case '$eq': return v === arg;
        case '$ne': return v !== arg;
        case '$gt': return typeof v === 'number' && v > (arg as number);
        case '$gte': return typeof v === 'number' && v >= (arg as number);
        case '$lt': return typeof v === 'number' && v < (arg as number);
        case '$lte': return typeof v === 'number' && v <= (arg as number);
        case '$in': return (arg as unknown[]).includes(v);
        case '$nin': return !(arg as unknown[]).includes(v);
        default: throw new Error(`where operator ${op} is not supported by the gate's search; use $eq $ne $gt $gte $lt $lte $in $nin $and $or`);
      }
    })();
    if (!ok) return false;
  }
  return true;
}

/** One query's top-k over a stream of records. */
export function offerRecord(top: TopK, space: DistanceSpace, query: number[], r: { id: string; embedding: ArrayLike<number> | null; metadata: RecordMetadata | null }, where?: Where): void {
  if (!r.embedding || r.embedding.length !== query.length || !matchesWhere(r.metadata, where)) return;
  top.offer(r.id, distance(space, query, r.embedding));
}
