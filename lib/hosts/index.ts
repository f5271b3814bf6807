import type { TargetSpec } from '../target.ts';
import { LocalHost } from './local.ts';
import type { RemoteHost } from './remote-host.ts';
import { SshHost } from './ssh.ts';

export interface HostOptions {
  sshKey?: string;
  sshOptions?: string[];
  restartCmd?: string;
}

export function createHost(target: TargetSpec, o: HostOptions): RemoteHost {
  switch (target.kind) {
    case 'local':
      return new LocalHost(target.root, o.restartCmd);
    case 'ssh':
      return new SshHost({ user: target.user, host: target.host, port: target.port, keyFile: o.sshKey, sshOptions: o.sshOptions, restartCmd: o.restartCmd });
  }
}
