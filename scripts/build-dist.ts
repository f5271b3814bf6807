/**
 * `npm run build` (also run by `npm ci` through `prepare`): compiles scripts/, lib/ and runbooks/
 * to plain JavaScript in dist/ so the CLI starts without the TypeScript loader (faster, ~35 MB
 * less memory), copies the non-TypeScript files they use, and writes dist/.built last. bin/
 * uses dist/ only while it is newer than every source file, so an edited source is never shadowed
 * by an old build: it then runs the sources through tsx, as before.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = path.join(root, 'dist');
await fs.rm(dist, { recursive: true, force: true });
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
if (!(await fs.stat(tsc).catch(() => null))) {
  // An install without dev dependencies: the CLI runs from the sources through tsx.
  process.stdout.write('typescript is not installed: no dist/ (the CLI runs its sources through tsx)\n');
  process.exit(0);
}
await execa(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
for (const dir of ['scripts', 'lib', 'runbooks']) {
  for (const e of await fs.readdir(path.join(root, dir), { recursive: true, withFileTypes: true })) {
    if (!e.isFile() || e.name.endsWith('.ts')) continue;
    const rel = path.relative(root, path.join(e.parentPath, e.name));
    await fs.mkdir(path.dirname(path.join(dist, rel)), { recursive: true });
    await fs.copyFile(path.join(root, rel), path.join(dist, rel));
  }
}
await fs.writeFile(path.join(dist, '.built'), `${new Date().toISOString()}\n`);
process.stdout.write('built dist/\n');
