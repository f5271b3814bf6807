/**
 * Remote writes that say "volume full" instead of `printf: I/O error` or `sha256sum: write error`.
 *
 * `withSpaceGuard(script, dir, bytes)` wraps a script that writes about `bytes` into the
 * filesystem of `dir`: before it runs, too little free space refuses with `volume-full`
 * (lib/remote/refusals.ts) and nothing is written; when it fails and the filesystem is then full
 * (less free than needed, under 1 MiB, or every inode used), its failure becomes the same refusal.
 * The wrapped script runs in a subshell with its own positional arguments; its status passes
 * through otherwise. `o.measure`: a path on the remote whose size (`du -sk`, links not followed)
 * raises the need when it is larger (a backup needs about the size of the dir it archives).
 */
import { remoteScript, type RemoteScript } from './shell.ts';
import { refusalCodes, refuseSh } from './refusals.ts';

export function withSpaceGuard(script: RemoteScript, dir: string, neededBytes: number, o: { measure?: string } = {}): RemoteScript {
  const needKb = Math.max(1, Math.ceil(neededBytes / 1024));
  const refuse = refuseSh('volume-full', {
    free_mib: '"$((ferry_free_kb / 1024))"',
    need_mib: '"$(((ferry_need_kb + 1023) / 1024))"',
    dir: '"$ferry_dir"',
  });
  const code = [
    'ferry_dir=$1; ferry_need_kb=$2; ferry_measure=$3; shift 3',
    'if [ -n "$ferry_measure" ] && [ -e "$ferry_measure" ]; then',
    '  ferry_measured_kb=$(du -sk "$ferry_measure" 2>/dev/null | { read -r kb _; printf %s "$kb"; })',
    '  case $ferry_measured_kb in ""|*[!0-9]*) ;; *) [ "$ferry_measured_kb" -le "$ferry_need_kb" ] || ferry_need_kb=$ferry_measured_kb ;; esac',
    'fi',
    '# df needs a path that exists: the nearest existing parent of the dir written to',
    'while [ ! -e "$ferry_dir" ] && [ "$ferry_dir" != / ] && [ "$ferry_dir" != . ]; do ferry_dir=$(dirname "$ferry_dir"); done',
    '# the last line of df for the dir (read by the shell: no tail process)',
    'ferry_df() { df "$1" "$ferry_dir" 2>/dev/null | { ferry_last=; while IFS= read -r ferry_l; do ferry_last=$ferry_l; done; printf %s "$ferry_last"; }; }',
    'ferry_full() {',
    '  ferry_when=$1',
    '  set -- $(ferry_df -Pk); ferry_free_kb=${4:-}',
    '  case $ferry_free_kb in ""|*[!0-9]*) return 1 ;; esac',
    '  [ "$ferry_free_kb" -lt "$ferry_need_kb" ] && return 0',
    '  [ "$ferry_when" = after ] || return 1',
    '  [ "$ferry_free_kb" -lt 1024 ] && return 0',
    '  set -- $(ferry_df -Pi); [ "${5:-}" = 100% ]',
    '}',
    `if ferry_full before; then ${refuse}; fi`,
    '(',
    script.code,
    ')',
    'ferry_rc=$?',
    `case $ferry_rc in ${refusalCodes().join('|')}) exit "$ferry_rc" ;; esac`,
    `if [ "$ferry_rc" -ne 0 ] && ferry_full after; then ${refuse}; fi`,
    'exit "$ferry_rc"',
  ].join('\n');
  return remoteScript(script.title, code, [dir, String(needKb), o.measure ?? '', ...script.args]);
}
