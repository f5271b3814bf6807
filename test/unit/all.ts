/**
 * `npm run test:unit`: the test/unit/*.test.ts files in two processes (shard-0.ts, shard-1.ts,
 * run side by side by `--test-concurrency=2`), each importing every other file: one start of the
 * TypeScript loader per process instead of one per file. `npm test` still runs each file alone.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export async function importShard(shard: number, of: number): Promise<void> {
  const dir = fileURLToPath(new URL('.', import.meta.url));
  const files = fs.readdirSync(dir).filter((n) => n.endsWith('.test.ts')).sort();
  for (const [i, f] of files.entries()) if (i % of === shard) await import(new URL(f, import.meta.url).href);
}
