// Worker side of readSqliteManifestInWorker (lib/chroma/sqlite-manifest.ts): reads the manifest
// and posts it back, or the error and whether it is a user error. node-sqlite3-wasm's WebAssembly
// memory lives and dies with this thread. Plain JavaScript so that it starts the same way from the
// sources (it then registers tsx itself) and from the compiled dist/.
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

const source = new URL('./sqlite-manifest.ts', import.meta.url);
let reader;
if (fs.existsSync(source)) {
  (await import('tsx/esm/api')).register();
  reader = await import(source.href);
} else {
  reader = await import('./sqlite-manifest.js');
}
try {
  parentPort.postMessage({ manifest: reader.readSqliteManifest(workerData.dir) });
} catch (e) {
  parentPort.postMessage({ error: e instanceof Error ? e.message : String(e), user: e?.constructor?.name === 'UserError' });
}
