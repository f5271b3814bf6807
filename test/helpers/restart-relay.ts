/**
 * A `--restart-cmd` for a far side that is a Debian root (test/helpers/debian-root.ts): the Chroma
 * server runs on this machine (the root has no node), so the command run inside the root asks a
 * relay on this machine to run the real restart, through two fifos inside the root, and exits with
 * its status. The relay is a `sh` loop, one restart at a time.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { shQuote } from '../../lib/remote/shell.ts';
import type { DebianRoot } from './debian-root.ts';

export interface RestartRelay {
  /** The command to give `--restart-cmd` (it runs inside the root). */
  insideCmd: string;
  /** How many restarts it has run. */
  count(): Promise<number>;
  stop(): Promise<void>;
}

const LOOP = `
req=$1 ack=$2 cmd=$3 count=$4
while :; do
  read -r _ < "$req" || true
  sh -c "$cmd" </dev/null
  rc=$?
  echo x >> "$count"
  echo "$rc" > "$ack"
done
`;

export async function startRestartRelay(root: DebianRoot, hostCmd: string): Promise<RestartRelay> {
  const base = path.join(root.path, 'run');
  const dir = await fs.mkdtemp(path.join(base, 'ferry-relay-'));
  const inside = `/run/${path.basename(dir)}`;
  const req = path.join(dir, 'req');
  const ack = path.join(dir, 'ack');
  const count = path.join(dir, 'count');
  await execa('mkfifo', [req, ack]);
  await fs.writeFile(count, '');
  const loop: ResultPromise = execa('sh', ['-c', LOOP, 'relay', req, ack, hostCmd, count], { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
  const insideCmd = `echo restart > ${shQuote(`${inside}/req`)} && read -r rc < ${shQuote(`${inside}/ack`)} && exit "$rc"`;
  return {
    insideCmd,
    async count() {
      return (await fs.readFile(count, 'utf8')).split('\n').filter(Boolean).length;
    },
    async stop() {
      loop.kill('SIGTERM');
      await loop;
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
