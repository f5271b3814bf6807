/**
 * Data identities: every data dir the tool moves carries `.ferry-data-id`, one line naming the
 * data it holds (`archive:<sha256>@<run>`, `live-before:<run>`, ...). A rename moves the id with
 * the data, so reconciliation can tell what is where from the volume alone. Chroma ignores the
 * extra file in its persist dir (test/data-id-chroma.test.ts serves such a dir).
 * The last data that passed verify is recorded in `VOLUME/.ferry/verified-NAME`.
 */
import path from 'node:path';
import type { RemoteLayout } from '../remote/layout.ts';
import { refuseSh } from '../remote/refusals.ts';
import { withSpaceGuard } from '../remote/space-guard.ts';
import { remoteScript, type RemoteScript } from '../remote/shell.ts';

/** The id file inside a data dir. */
export const DATA_ID_FILE = '.ferry-data-id';

/** An id: a lowercase kind, a colon, then letters, digits and `._@-` (never a path, never shell syntax). */
const DATA_ID_RE = /^[a-z][a-z-]{0,30}:[A-Za-z0-9._@-]{1,200}$/;
/** A run id: what every runbook makes (12 hex digits), or any short token of letters, digits, `_-`. */
const RUN_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function isDataId(s: string | undefined): s is string {
  return typeof s === 'string' && DATA_ID_RE.test(s);
}

export function isRunId(s: string | undefined): s is string {
  return typeof s === 'string' && RUN_ID_RE.test(s);
}

function checked(id: string): string {
  if (!isDataId(id)) throw new Error(`not a data id: ${JSON.stringify(id)}`);
  return id;
}

/**
 * The data a deploy extracted from its archive (unique per run, so a re-deploy of the same archive
 * differs; `attempt`, e.g. the extraction's UTC stamp, tells apart two extractions of one run: a
 * finished run's steps run again by `--only`/`--from`).
 */
export function archiveDataId(archiveSha256: string, runId: string, attempt?: string): string {
  if (!/^[0-9a-f]{64}$/.test(archiveSha256)) throw new Error(`not a sha256: ${archiveSha256}`);
  return checked(`archive:${archiveSha256}@${runId}${attempt ? `.${attempt}` : ''}`);
}

/** Data found live (without an id) when run `runId` started. */
export function liveBeforeId(runId: string): string {
  return checked(`live-before:${runId}`);
}

/** Data found in NAME.old (without an id) when run `runId` started. */
export function oldBeforeId(runId: string): string {
  return checked(`old-before:${runId}`);
}

/** An id read from the remote, or undefined when the text is no valid id (never trusted as more). */
export function parseDataId(text: string | undefined): string | undefined {
  const t = (text ?? '').trim();
  return isDataId(t) ? t : undefined;
}

/** VOLUME/.ferry/verified-NAME: the id of the last data that passed verify. */
export function verifiedFile(l: RemoteLayout): string {
  return path.posix.join(l.ferry, `verified-${l.name}`);
}

/**
 * Write `id` into `dir/.ferry-data-id` (temp + rename inside the dir). Refuses with `not-a-dir`
 * unless `dir` is a real directory (a symlink is refused: its target is not ours to stamp).
 */
export function writeDataIdScript(dir: string, id: string): RemoteScript {
  return withSpaceGuard(remoteScript('write the data id', `
    set -eu
    if [ -L "$1" ]; then ${refuseSh('not-a-dir', { path: '"$1"', kind: 'symlink' })}; fi
    if [ ! -d "$1" ]; then ${refuseSh('not-a-dir', { path: '"$1"', kind: '"$([ -e "$1" ] && echo file || echo missing path)"' })}; fi
    tmp="$1/$2.tmp"
    trap 'rm -f "$tmp"' EXIT
    printf '%s\\n' "$3" > "$tmp"
    mv -f "$tmp" "$1/$2"
  `, [dir, DATA_ID_FILE, checked(id)]), dir, 8192);
}

/**
 * Record `id` as the last verified data; refuses with `volume-changed` unless the live dir holds
 * that id (verify passed for what is live, nothing else).
 */
export function recordVerifiedScript(l: RemoteLayout, id: string): RemoteScript {
  return withSpaceGuard(remoteScript('record the verified data', `
    set -eu
    live=$(head -n 1 "$1/$2" 2>/dev/null) || live=""
    [ "$live" = "$4" ] || ${refuseSh('volume-changed', { what: '"live dir holds ${live:-no id}, verified was $4"' })}
    mkdir -p "$(dirname "$3")"
    tmp="$3.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    printf '%s\\n' "$4" > "$tmp"
    mv -f "$tmp" "$3"
  `, [l.live, DATA_ID_FILE, verifiedFile(l), checked(id)]), l.ferry, 8192);
}

/**
 * Remove the data dir `dir` only when it still holds `id` (what reconciliation said may go): gone
 * already is fine; anything else there refuses (`not-a-dir`, `volume-changed`). An emptied parent
 * named by `alsoEmptyParent` (a run's trash dir) is removed too.
 */
export function removeDataDirScript(dir: string, id: string, alsoEmptyParent = false): RemoteScript {
  return remoteScript('remove a data dir', `
    set -u
    [ -e "$1" ] || [ -L "$1" ] || exit 0
    if [ -L "$1" ] || [ ! -d "$1" ]; then ${refuseSh('not-a-dir', { path: '"$1"', kind: '"not a directory"' })}; fi
    cur=""; [ -f "$1/$2" ] && read -r cur < "$1/$2"
    [ "$cur" = "$3" ] || ${refuseSh('volume-changed', { what: '"$1 holds ${cur:-no id}, expected $3"' })}
    rm -rf "$1" || exit 1
    if [ "$4" = yes ]; then rmdir "\${1%/*}" 2>/dev/null; fi
    exit 0
  `, [dir, DATA_ID_FILE, checked(id), alsoEmptyParent ? 'yes' : 'no']);
}
