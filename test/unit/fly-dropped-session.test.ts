/**
 * How `fly:` classifies a `fly ssh console` that ends without the script's status marker: flyctl
 * exits 1 for a dropped connection, a machine it cannot reach and a killed session alike (see the
 * flyctl contract: it never passes the remote status through), so the script's end is unknown: a
 * transport error, which `withReconnect` tries again. A script that reported its status is never
 * one. A canned `fly` (FlyHostOptions.bin), no servers.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FlyHost } from '../../lib/hosts/fly.ts';
import { RemoteCommandError } from '../../lib/common/errors.ts';
import { remoteScript } from '../../lib/remote/shell.ts';
import { isTransportError, withReconnect } from '../../lib/volume/deploy-swap.ts';
import { tempVolume, type TempVolume } from './local-volume.ts';

describe('fly: a session that ends before the script reports its status', () => {
  let v: TempVolume;
  let answers: string;
  let host: FlyHost;
  const script = remoteScript('look at the volume', 'echo looked', []);

  before(async () => {
    v = await tempVolume();
    answers = path.join(v.root, 'answers');
    await fs.mkdir(answers);
    // `ssh console` plays the next canned answer (stdout, stderr, exit code), in order.
    const fly = path.join(v.root, 'fly');
    await fs.writeFile(fly, `#!/bin/sh
case "$1 $2" in
  "machines list") echo '[{"id":"m1","state":"started"}]'; exit 0 ;;
  "ssh console")
    n=0; [ -f "$A/n" ] && read -r n < "$A/n"; n=$((n + 1)); echo "$n" > "$A/n"
    cat "$A/$n.out"; cat "$A/$n.err" >&2; exit "$(cat "$A/$n.rc")" ;;
esac
exit 2
`, { mode: 0o755 });
    process.env.A = answers;
    host = new FlyHost({ app: 'ferry-unit', machine: 'm1', bin: fly });
  });
  after(async () => {
    delete process.env.A;
    await v.dispose();
  });

  const answer = async (n: number, out: string, err: string, rc: number) => {
    await fs.writeFile(path.join(answers, `${n}.out`), out);
    await fs.writeFile(path.join(answers, `${n}.err`), err);
    await fs.writeFile(path.join(answers, `${n}.rc`), String(rc));
  };
  const reset = () => fs.rm(path.join(answers, 'n'), { force: true });

  it('a dropped connection (flyctl exit 1, no marker) is a transport error; withReconnect runs the script again', async () => {
    await reset();
    await answer(1, 'look', 'Error: ssh shell: wait: remote command exited without exit status or exit signal\n', 1);
    await answer(2, 'looked\n__ferry_rc=0\n', '', 0);
    const lines: string[] = [];
    const r = await withReconnect(() => host.run(script), { retries: 2, onReconnect: (l) => lines.push(l) });
    assert.equal(r.stdout, 'looked\n');
    assert.equal(lines.length, 1, 'one reconnect');
    assert.match(lines[0]!, /fly ssh console ended before the script reported its status; flyctl exit 1/);
  });

  it('flyctl unable to reach the machine, or the session killed: transport errors too', async () => {
    for (const [err, rc] of [['Error: error connecting to SSH server: connection reset by peer\n', 1], ['Error: ssh shell: Process exited with status 137\n', 1], ['', 0]] as const) {
      await reset();
      await answer(1, '', err, rc);
      const e = await host.run(script).then(() => undefined, (x: unknown) => x);
      assert.ok(e instanceof RemoteCommandError, String(e));
      assert.ok(isTransportError(e), `${err.trim() || 'exit 0 without a marker'}: ${e.message}`);
    }
  });

  it('a script that reported a failing status is the command\'s failure, never a transport error', async () => {
    await reset();
    await answer(1, 'partial\n__ferry_rc=3\n', 'Error: ssh shell: Process exited with status 3\n', 1);
    const e = await host.run(script).then(() => undefined, (x: unknown) => x);
    assert.ok(e instanceof RemoteCommandError);
    assert.equal(e.exitCode, 3);
    assert.ok(!isTransportError(e));
  });
});
