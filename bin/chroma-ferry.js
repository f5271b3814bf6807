#!/usr/bin/env node
// Entry point of the `chroma-ferry` bin: the compiled CLI in dist/ when it is newer than every
// source file (`npm run build`, run by `npm ci`), else the TypeScript sources through tsx; run in
// the directory the user ran npm from when started by one of this package's npm scripts.
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

/**
 * `npm run deploy:chromadb -- --source ./db` runs the script in the package root, whatever directory
 * the user typed it in; npm passes that directory as INIT_CWD. Working from there gives every
 * relative path the meaning the user expects, flags and defaults alike (--source, --work-dir,
 * --config and ./fly.toml, --checkpoint-dir, --log-dir, --output, persist-dir URLs, a --transform
 * module, ...), with no path option missed. Only when npm started this very bin for a script of this
 * package (npm_package_json is ours, the script runs bin/chroma-ferry.js) and we are in the package
 * root: a child started later with an inherited INIT_CWD (`npm test` running the CLI) is left alone.
 */
function npmUserDir() {
  const { INIT_CWD, npm_package_json: pkg, npm_lifecycle_script: script } = process.env;
  if (!INIT_CWD || pkg !== path.join(root, 'package.json') || !/^node bin\/chroma-ferry\.js(\s|$)/.test(script ?? '')) return undefined;
  try {
    return fs.realpathSync(process.cwd()) === fs.realpathSync(root) ? INIT_CWD : undefined;
  } catch {
    return undefined;
  }
}

// The loader first (it reads the package's tsconfig from the working directory), then the move.
let cli = '../dist/scripts/chroma-ferry.js';
if (!distIsCurrent()) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = '../scripts/chroma-ferry.ts';
}

const userDir = npmUserDir();
if (userDir) {
  try {
    process.chdir(userDir);
  } catch (e) {
    process.stderr.write(`chroma-ferry: cannot work in ${userDir}, the directory npm was run from (${e.code ?? e.message}); run npm from an existing directory\n`);
    process.exit(2);
  }
}

await import(cli);
