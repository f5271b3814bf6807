/**
 * The flags that name a volume on a target, shared by every command that works on one, and the
 * host setup of the commands that only look at or maintain the volume (backups, unlock, backup).
 * Each command registers the group it uses, nothing more: commander refuses any other flag.
 */
import type { Command } from 'commander';
import { collect, parseSshKey, requireFlag, type TargetFlags } from '../lib/cli/support.ts';
import { commandHints, type CommandHints } from '../lib/cli/command-hint.ts';
import { FlyHost } from '../lib/hosts/fly.ts';
import { chooseTarget, withTargetSource } from '../lib/hosts/fly-config.ts';
import { createHost } from '../lib/hosts/index.ts';
import type { RemoteHost } from '../lib/hosts/remote-host.ts';
import { remoteLayout, type RemoteLayout } from '../lib/remote/layout.ts';
import { parseDbDir, parseTarget, parseVolume } from '../lib/locations/target.ts';

/** The --db-dir default: the Chroma dir inside the volume. */
export const DEFAULT_DB_DIR = 'chroma_db';

/** Where the volume is: --target, --volume, fly's --machine and --config, ssh's --ssh-key and --ssh-option. */
export function volumeHostOptions(cmd: Command): Command {
  return cmd
    .option('--target <target>', 'ssh://USER@HOST[:PORT], fly:APP or local:/ABS/PATH (default: fly:APP from fly.toml)')
    .option('--volume <path>', 'remote volume mount (for local: a path inside the target; fly: default from fly.toml [mounts])', '/data')
    .option('--machine <id>', 'fly: the machine to use (default: the app\'s only started machine)')
    .option('--config <file>', 'fly: fly.toml to read app, mount and port from (default: ./fly.toml)')
    .option('--ssh-key <file>', 'private key for ssh://')
    .option('--ssh-option <opt>', 'extra ssh -o option (repeatable)', collect, []);
}

/** The Chroma dir on its volume: volumeHostOptions, --db-dir, and --json for the result. */
export function volumeOptions(cmd: Command): Command {
  return volumeHostOptions(cmd)
    .option('--db-dir <name>', 'Chroma dir inside the volume', DEFAULT_DB_DIR)
    .option('--json', 'print the result as one JSON object');
}

/** volumeOptions plus what runbooks that restart Chroma need: restart command and its time limit, health check, --yes. */
export function targetOptions(cmd: Command): Command {
  return volumeOptions(cmd)
    .option('--restart-cmd <cmd>', 'command run on the remote host to restart Chroma')
    .option('--health-url <url>', 'Chroma server to check after the restart')
    .option('--health-timeout <duration>', 'how long to wait for the server to answer', '60s')
    .option('--restart-timeout <duration>', 'how long each restart may take (the undo\'s too); a --restart-cmd still running then is stopped', '120s')
    .option('--yes', 'do not ask; required without a terminal');
}

/** For commands that only work on the volume (backups, unlock, backup): the host, checked, and the layout; closed after. */
export async function withVolumeHost<T>(
  flags: Pick<TargetFlags, 'target' | 'volume' | 'machine' | 'config' | 'dbDir' | 'sshKey' | 'sshOption'>,
  cmd: Command,
  fn: (host: RemoteHost, layout: RemoteLayout) => Promise<T>,
): Promise<T> {
  const chosen = chooseTarget(flags, cmd);
  const target = parseTarget(requireFlag('--target', chosen.target));
  const host = createHost(target, { sshKey: parseSshKey(flags.sshKey), sshOptions: flags.sshOption, machine: chosen.machine });
  try {
    return await withTargetSource(chosen, async () => {
      if (host instanceof FlyHost) await host.preflight();
      return await fn(host, remoteLayout(host.resolveVolume(parseVolume(chosen.volume)), parseDbDir(flags.dbDir)));
    });
  } finally {
    await host.close();
  }
}

/** The commands refusals suggest, from the command line the user typed (its flags that take no value from `cmd`). */
export function hintsFor(cmd: Command): CommandHints {
  const booleans = cmd.options.filter((o) => !o.required && !o.optional && o.long).map((o) => o.long!);
  return commandHints(process.argv.slice(2), booleans);
}
