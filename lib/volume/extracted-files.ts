/**
 * The extracted tree checked on the remote against the source snapshot's file list: its number of
 * regular files and the sha256 of their sorted list (`./path` a line, bytewise order), computed as
 * the reassemble script prints them (lib/remote/scripts.ts, lib/remote/extractor.ts). Run before
 * NAME.new gets its data id, in the same remote command (runbooks/deploy/steps/reassemble.ts).
 */
import { remoteScript, type RemoteScript } from '../remote/shell.ts';

/** Exit status of a tree that differs (clear of the other scripts' own codes and of the refusals). */
export const FILE_LIST_DIFFERS_EXIT = 16;

/** Exits FILE_LIST_DIFFERS_EXIT, with one line on stderr, unless `dir` holds `fileCount` regular files listed as `listSha256`. */
export function checkExtractedFilesScript(dir: string, fileCount: number, listSha256: string): RemoteScript {
  if (!Number.isSafeInteger(fileCount) || fileCount < 0) throw new Error(`not a file count: ${fileCount}`);
  if (!/^[0-9a-f]{64}$/.test(listSha256)) throw new Error(`not a sha256: ${listSha256}`);
  return remoteScript('check the extracted file list', `
    cd "$1" || exit 1
    files=$(find . -type f | wc -l) || exit 1
    list=$(find . -type f | LC_ALL=C sort | sha256sum) || exit 1
    if [ "$files" -ne "$2" ] || [ "\${list%% *}" != "$3" ]; then
      echo "extracted file list on the remote differs from the source snapshot ($((files)) files, expected $2)" >&2
      exit ${FILE_LIST_DIFFERS_EXIT}
    fi
  `, [dir, String(fileCount), listSha256]);
}
