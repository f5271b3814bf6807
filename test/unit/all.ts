/**
 * `npm run test:unit`: every test/unit/*.test.ts in ONE process, so the layer costs one start of
 * the TypeScript loader instead of one per file (`npm test` still runs each file on its own).
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.test.ts')).sort()) await import(new URL(f, import.meta.url).href);
