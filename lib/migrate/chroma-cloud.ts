/**
 * The limits a Chroma server sets on one request, applied to a migration endpoint: records per
 * write and per read, and writes in flight per collection.
 *
 * - Every server: writes and reads of at most the max batch size it reports
 *   (`GET /api/v2/pre-flight-checks`, `max_batch_size`), at most 10 writes in flight per collection.
 * - Chroma Cloud (`https://api.trychroma.com`): its published quotas on top, 300 records per
 *   write and 300 results per read (docs `cloud/quotas-limits`).
 *
 * Busy answers (429, 503) are retried with jittered backoff under the client (lib/chroma/client.ts).
 */
import pLimit from 'p-limit';
import type { Endpoint } from './endpoints.ts';
import type { CollectionInfo, MigrationRecord } from './types.ts';

export interface ServerLimits {
  recordsPerWrite: number;
  recordsPerRead: number;
  concurrentWritesPerCollection: number;
}

/** Chroma Cloud's published limits. */
export const CLOUD_LIMITS: ServerLimits = { recordsPerWrite: 300, recordsPerRead: 300, concurrentWritesPerCollection: 10 };

/** Writes in flight per collection on any Chroma server (Cloud's figure: more gain nothing on one collection). */
export const MAX_CONCURRENT_WRITES = 10;

/** A server that reports no max batch size gets Cloud's write limit (the smallest published one). */
const UNREPORTED_BATCH = CLOUD_LIMITS.recordsPerWrite;

/** Chroma Cloud's API host (`api.trychroma.com`, or another host of trychroma.com). */
export function isChromaCloud(url: string): boolean {
  const host = new URL(url).hostname.toLowerCase();
  return host === 'trychroma.com' || host.endsWith('.trychroma.com');
}

/** The limits for a server at `url` that reports `reportedMaxBatch` (<= 0: none reported). */
export function limitsFor(url: string, reportedMaxBatch: number): ServerLimits {
  const reported = reportedMaxBatch > 0 ? reportedMaxBatch : UNREPORTED_BATCH;
  const cloud = isChromaCloud(url);
  return {
    recordsPerWrite: cloud ? Math.min(reported, CLOUD_LIMITS.recordsPerWrite) : reported,
    recordsPerRead: cloud ? Math.min(reported, CLOUD_LIMITS.recordsPerRead) : reported,
    concurrentWritesPerCollection: MAX_CONCURRENT_WRITES,
  };
}

function chunks<T>(list: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/**
 * `inner` with `limits` applied: larger writes and reads are split, writes queue per collection.
 * Every other member is `inner`'s own (a Proxy, so a member added to the endpoint later is kept).
 */
export function withServerLimits(inner: Endpoint, limits: ServerLimits): Endpoint {
  const queues = new Map<string, ReturnType<typeof pLimit>>();
  const queue = (collection: string) => {
    let q = queues.get(collection);
    if (!q) queues.set(collection, (q = pLimit(limits.concurrentWritesPerCollection)));
    return q;
  };
  const overrides: Partial<Endpoint> = {
    read: (info: CollectionInfo, pageSize: number, signal?: AbortSignal) => inner.read(info, Math.min(pageSize, limits.recordsPerRead), signal),
    maxBatchSize: async () => limits.recordsPerWrite,
    async upsert(collection: string, records: MigrationRecord[], signal?: AbortSignal) {
      const q = queue(collection);
      await Promise.all(chunks(records, limits.recordsPerWrite).map((part) => q(() => {
        signal?.throwIfAborted();
        return inner.upsert(collection, part, signal);
      })));
    },
    async get(collection: string, ids: string[]) {
      const out: MigrationRecord[] = [];
      for (const part of chunks(ids, limits.recordsPerRead)) out.push(...(await inner.get(collection, part)));
      return out;
    },
  };
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof Endpoint];
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
