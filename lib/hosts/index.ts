import { UserError } from '../common/errors.ts';
import type { TargetSpec } from '../locations/target.ts';
import { FlyHost } from './fly.ts';
import { LocalHost } from './local.ts';
import type { RemoteHost } from './remote-host.ts';
import { SshHost } from './ssh.ts';

export interface HostOptions {
  sshKey?: string;
  sshOptions?: string[];
  restartCmd?: string;
  /** fly: `--machine ID`. */
  machine?: string;
  /** fly: fly.toml `[http_service] internal_port` (for `fly proxy`). */
  flyInternalPort?: number;
}

export function createHost(target: TargetSpec, o: HostOptions): RemoteHost {
  switch (target.kind) {
    case 'local':
      return new LocalHost(target.root, o.restartCmd);
    case 'ssh':
      return new SshHost({ user: target.user, host: target.host, port: target.port, keyFile: o.sshKey, sshOptions: o.sshOptions, restartCmd: o.restartCmd });
    case 'fly':
      if (o.restartCmd !== undefined) {
        throw new UserError('--restart-cmd does not apply to fly: targets: the restart is always `fly machine restart` of the machine; drop --restart-cmd');
      }
      if (o.sshKey !== undefined || o.sshOptions?.length) throw new UserError('--ssh-key and --ssh-option do not apply to fly: targets (flyctl connects)');
      return new FlyHost({ app: target.app, machine: o.machine, internalPort: o.flyInternalPort });
  }
}
