/**
 * The far side of the tests on a real Debian root: the root of `profile` with /proc mounted and a
 * throw-away sshd that chroots its sessions into it, set up in the calling describe's `before` and
 * torn down in its `after`. Where the machine cannot build or enter a root, `ready(t)` skips the
 * test loudly (never under CI=true: debianRoot throws there).
 */
import { after, before, type TestContext } from 'node:test';
import { debianRoot, type DebianProfile, type DebianRoot } from './debian-root.ts';
import { startSshd, type TestSshd } from './sshd.ts';

export interface FarSide {
  readonly root: DebianRoot | null;
  readonly sshd: TestSshd | null;
  /** False (and the test skipped, saying why) when there is no root or no sshd. */
  ready(t: TestContext): boolean;
}

export function chrootedFarSide(profile: DebianProfile): FarSide {
  let root: DebianRoot | null = null;
  let sshd: TestSshd | null = null;
  let unmountProc: (() => Promise<void>) | undefined;
  before(async () => {
    root = await debianRoot(profile);
    if (!root) return;
    unmountProc = await root.mountProc();
    sshd = await startSshd({ chrootDirectory: root.path });
  });
  after(async () => {
    await sshd?.stop();
    await unmountProc?.();
  });
  return {
    get root() { return root; },
    get sshd() { return sshd; },
    ready(t: TestContext): boolean {
      if (!root || !sshd) t.skip('no Debian root or no sshd on this machine (see the warning above)');
      return !!(root && sshd);
    },
  };
}
