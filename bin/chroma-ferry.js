#!/usr/bin/env node
// Entry point of the `chroma-ferry` bin: the compiled CLI in dist/ when it is newer than every
// source file (`npm run build`, run by `npm ci`), else the TypeScript sources through tsx.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function distIsCurrent() {
  if (process.env.CHROMA_FERRY_FROM_SOURCE === '1') return false;
  let built;
  try {
    built = fs.statSync(path.join(root, 'dist', '.built')).mtimeMs;
  } catch {
    return false;
  }
  for (const dir of ['scripts', 'lib', 'runbooks']) {
    for (const e of fs.readdirSync(path.join(root, dir), { recursive: true, withFileTypes: true })) {
      if (e.isFile() && fs.statSync(path.join(e.parentPath ?? e.path, e.name)).mtimeMs > built) return false;
    }
  }
  return true;
}

if (distIsCurrent()) {
  await import('../dist/scripts/chroma-ferry.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../scripts/chroma-ferry.ts');
}
