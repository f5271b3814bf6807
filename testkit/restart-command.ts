import { fileURLToPath } from 'node:url';
import { shQuote } from '../lib/remote/shell.ts';
import { chromaCliPath } from '../lib/chroma/server.ts';

/** Absolute path of `restart-chroma.sh`, which sits next to this module. */
export function restartChromaScriptPath(): string {
  return fileURLToPath(new URL('./restart-chroma.sh', import.meta.url));
}

/**
 * A shell command line (for `--restart-cmd`) that restarts a Chroma server on this machine:
 * `sh restart-chroma.sh PIDFILE PORT DATADIR LOGFILE NODE CLI`, every word quoted.
 */
export function localChromaRestartCommand(o: { pidFile: string; port: number; dataDir: string; logFile: string }): string {
  return ['sh', restartChromaScriptPath(), o.pidFile, String(o.port), o.dataDir, o.logFile, process.execPath, chromaCliPath()]
    .map(shQuote)
    .join(' ');
}
