// Worker side of readInSqliteWorker (lib/chroma/sqlite-manifest.ts): calls one reader of a persist
// dir (workerData: module URL, exported function, dir) and posts back its result, or the error and
// whether it is a user error. node-sqlite3-wasm's WebAssembly memory lives and dies with this
// thread. Plain JavaScript so that it starts the same way from the sources (it then registers tsx
// itself for a .ts module) and from the compiled dist/.
import { parentPort, workerData } from 'node:worker_threads';

const { module, exported, dir } = workerData;
if (new URL(module).pathname.endsWith('.ts')) (await import('tsx/esm/api')).register();
const reader = await import(module);
try {
  parentPort.postMessage({ result: reader[exported](dir) });
} catch (e) {
  parentPort.postMessage({ error: e instanceof Error ? e.message : String(e), user: e?.constructor?.name === 'UserError' });
}
