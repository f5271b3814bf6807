/**
 * Extraction on the remote while the chunks arrive: a detached worker in the incoming dir that
 * takes the accepted chunks in order (`chunk-000000`, `chunk-000001`, ... as each gets its final
 * name, which happens only once its size and sha256 were checked) and feeds them through a fifo +
 * tee to sha256sum and to `gzip -dc | tar xf -` into `.extract-TOKEN/tree`. The reassemble step
 * (reassembleScript in scripts.ts) writes the chunk count to `.extract-end`, waits for
 * the worker, and moves the tree to NAME.new only when the worker's status says tar and gzip
 * succeeded, every chunk was fed and the stream's sha256 is the archive's; otherwise it extracts
 * the chunks again in one pass from chunk 0 (today's path, which fails on a wrong sha256).
 *
 * Ownership: `.extract.owner` names the current worker's token (made on the remote as it
 * starts: the second and the starting shell's pid). A new upload (a rerun) makes a new owner and
 * removes the other `.extract-*` dirs; a worker that is no longer the owner (or whose incoming
 * dir went: the cleanup step) stops at its next look. A worker idle for
 * `idleSecs` with no next chunk stops too. Everything it writes is inside the incoming dir,
 * which the cleanup step removes. Plain POSIX sh + coreutils + gzip + tar (no python, no curl).
 */
import { ALIVE_SH, STARTED_AS_SH, WAIT_GONE_SH } from './process-alive.ts';
import { remoteScript, type RemoteScript } from './shell.ts';

/** How long a worker waits for the next chunk before it gives up (a run that went away). */
export const EXTRACTOR_IDLE_SECS = 1800;

/** sh: `status_of FILE` sets rc, sum and fed from a worker's status file. */
export const STATUS_OF = `status_of() {
    rc=""; sum=""; fed=""
    while IFS='=' read -r k v; do case $k in rc) rc=$v ;; sum) sum=$v ;; fed) fed=$v ;; esac; done < "$1"
  }`;

/** sh: `chunk_name I` sets c to chunk-00000I (no subshell: the worker polls). */
const CHUNK_NAME = `chunk_name() { c=$1; while [ \${#c} -lt 6 ]; do c=0$c; done; c=chunk-$c; }`;

/** The worker: sh -c WORKER ferry-extract IN TOKEN IDLE_SECS (cwd-independent). */
const WORKER = `
  in=$1; tok=$2; idle=$3
  cd "$in" || exit 1
  d=.extract-$tok
  echo "$$" > "$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid" || { rm -f "$d/pid.tmp"; exit 1; }
  owned() { o=""; [ -f .extract.owner ] && IFS= read -r o < .extract.owner; [ "$o" = "$tok" ]; }
  ${CHUNK_NAME}
  if sleep 0.01 2>/dev/null; then tick=0.02 per=50; else tick=1 per=1; fi
  feed() {
    i=0; waited=0
    while owned; do
      n=""; [ -f .extract-end ] && IFS= read -r n < .extract-end
      if [ "$n" = "$i" ]; then echo "$i" > "$d/fed"; return 0; fi
      chunk_name "$i"
      if [ -f "$c" ]; then
        cat "$c" || return 1
        i=$((i + 1)); waited=0
        continue
      fi
      waited=$((waited + 1))
      [ "$waited" -lt $((idle * per)) ] || { echo "no chunk $c for $idle s: stopped" >&2; return 1; }
      sleep "$tick"
    done
    return 1
  }
  rm -f "$d/fifo" "$d/failed"
  mkfifo "$d/fifo" || exit 1
  sha256sum < "$d/fifo" > "$d/sum" &
  h=$!
  rc=0
  { feed || echo feed >> "$d/failed"; } | { tee "$d/fifo" || echo tee >> "$d/failed"; } |
    { gzip -dc || echo gzip >> "$d/failed"; } | tar xf - -C "$d/tree" || rc=$?
  wait "$h" || rc=1
  [ ! -f "$d/failed" ] || [ "$rc" -ne 0 ] || rc=1
  sum=""; [ -f "$d/sum" ] && IFS= read -r sum < "$d/sum"; sum=\${sum%% *}
  fed=""; [ -f "$d/fed" ] && IFS= read -r fed < "$d/fed"
  rm -f "$d/fifo"
  printf 'rc=%s\\nsum=%s\\nfed=%s\\n' "$rc" "$sum" "$fed" > "$d/status.tmp" && mv "$d/status.tmp" "$d/status" || rm -f "$d/status.tmp"
`;

/**
 * Open the incoming dir for an upload: create it, drop partial chunks, print `SHA256  NAME` of
 * every complete chunk there, then start the extractor (`extractor=started`),
 * or keep one that finished without error (`extractor=finished`: the reassemble step checks its
 * sha256 and count).
 */
export function openIncomingScript(dir: string, idleSecs = EXTRACTOR_IDLE_SECS): RemoteScript {
  return remoteScript('list uploaded chunks, start the extractor', `
    in=$1; idle=$2; worker=$3
    mkdir -p "$in" && cd "$in" || exit 1
    rm -f .*.partial
    for f in chunk-*; do [ -f "$f" ] && sha256sum "$f"; done
    ${STATUS_OF}
    cur=""; [ -f .extract.owner ] && IFS= read -r cur < .extract.owner
    case $cur in ''|*[!0-9a-f]*) cur="" ;; esac
    if [ -n "$cur" ] && [ -f ".extract-$cur/status" ] && [ -d ".extract-$cur/tree" ]; then
      status_of ".extract-$cur/status"
      [ "$rc" != 0 ] || { echo "extractor=finished"; exit 0; }
    fi
    # A new owner (its token: this second and this shell's pid): an earlier worker still running sees it and stops.
    tok="$(date +%s 2>/dev/null)a$$"
    case $tok in a*) tok="0$tok" ;; esac
    printf '%s\\n' "$tok" > .extract.owner.tmp && mv .extract.owner.tmp .extract.owner || { rm -f .extract.owner.tmp; exit 1; }
    rm -f .extract-end
    # An earlier worker sees the new owner within a tick and stops once what it fed is extracted:
    # its dir is removed after it ended (at most 10 s), not while its tar still writes there.
    ${WAIT_GONE_SH}
    ${STARTED_AS_SH}
    for x in .extract-*; do
      [ -d "$x" ] || continue
      case \${x#.extract-} in ''|*[!0-9a-f]*) continue ;; esac
      pid=""; [ -f "$x/pid" ] && IFS= read -r pid < "$x/pid"
      case $pid in ''|*[!0-9]*) pid="" ;; esac
      [ -z "$pid" ] || started_as "$pid" ferry-extract || pid=""
      [ -z "$pid" ] || wait_gone "$pid" 10 || :
      rm -rf "$x" 2>/dev/null || :
    done
    d=.extract-$tok
    mkdir -p "$d/tree" || exit 1
    # Detached: own session, no terminal, output to its log; a dropped connection does not reach it.
    set -- "$in" "$tok" "$idle"
    if command -v setsid >/dev/null 2>&1; then set -- setsid sh -c "$worker" ferry-extract "$@"
    elif command -v perl >/dev/null 2>&1; then set -- perl -MPOSIX -e 'POSIX::setsid(); exec @ARGV or exit 127' sh -c "$worker" ferry-extract "$@"
    else set -- nohup sh -c "$worker" ferry-extract "$@"; fi
    "$@" </dev/null >>"$d/log" 2>&1 &
    echo "extractor=started"
    echo "extractor_token=$tok"
    exit 0
  `, [dir, String(idleSecs), WORKER]);
}

/**
 * Stop the extractor of a run that ended before its reassemble (a failed upload): only the worker
 * whose token is `token` (a later run's worker is left alone), by taking its ownership away; then
 * waits up to `waitSecs` for it to exit (`stopped=yes`, or `stopped=still-running`). The chunks stay
 * for the rerun, which starts a new extraction. Nothing when the incoming dir is gone.
 */
export function stopExtractorScript(dir: string, token: string, waitSecs = 10): RemoteScript {
  return remoteScript('stop this run\'s extractor (the chunks are kept)', `
    in=$1; tok=$2; wait=$3
    case $tok in ''|*[!0-9a-f]*) exit 0 ;; esac
    cd "$in" 2>/dev/null || exit 0
    cur=""; [ -f .extract.owner ] && IFS= read -r cur < .extract.owner
    [ "$cur" = "$tok" ] || { echo "stopped=not-ours"; exit 0; }
    rm -f .extract.owner
    pid=""; [ -f ".extract-$tok/pid" ] && IFS= read -r pid < ".extract-$tok/pid"
    case $pid in ''|*[!0-9]*) echo "stopped=yes"; exit 0 ;; esac
    ${WAIT_GONE_SH}
    if wait_gone "$pid" "$wait"; then echo "stopped=yes"; else echo "stopped=still-running"; fi
  `, [dir, token, String(waitSecs)]);
}

/**
 * sh, the first part of the reassemble script: with $1 the incoming dir, $2 the archive sha256,
 * $3 NAME.new, $4 the chunk count, $5 the most seconds to wait for the worker: when every chunk
 * is there, tells the worker the count, waits for it, and moves its tree to NAME.new only when its
 * status is clean (rc 0, all chunks fed, sha256 equal); then prints `extracted=while-uploading`,
 * `files=` and `list_sha256=` and exits 0. Otherwise it stops the worker, removes its dir and goes
 * on (`shift 5`) with the one-pass extraction that follows it.
 */
export const USE_EXTRACTION_SH = `
  ferry_in=$1; ferry_want=$2; ferry_next=$3; ferry_n=$4; ferry_wait=$5; shift 5
  ferry_used=no
  ${STATUS_OF}
  ${CHUNK_NAME}
  ${ALIVE_SH}
  if cd "$ferry_in" 2>/dev/null; then
    tok=""; [ -f .extract.owner ] && IFS= read -r tok < .extract.owner
    case $tok in ''|*[!0-9a-f]*) tok="" ;; esac
    all=yes; i=0
    while [ "$i" -lt "$ferry_n" ]; do chunk_name "$i"; [ -f "$c" ] || { all=no; break; }; i=$((i + 1)); done
    # The count tells the worker where the archive ends (not written, e.g. a full volume: the one-pass extraction instead).
    if [ -n "$tok" ] && [ -d ".extract-$tok" ] && [ "$all" = yes ] &&
      { printf '%s\\n' "$ferry_n" > .extract-end.tmp && mv .extract-end.tmp .extract-end || { rm -f .extract-end.tmp; false; }; }; then
      d=.extract-$tok
      if sleep 0.01 2>/dev/null; then tick=0.02 per=50; else tick=1 per=1; fi
      t=0
      while [ ! -f "$d/status" ] && [ "$t" -lt $((ferry_wait * per)) ]; do
        pid=""; [ -f "$d/pid" ] && IFS= read -r pid < "$d/pid"
        case $pid in
          ''|*[!0-9]*) [ "$t" -lt $((10 * per)) ] || break ;;
          *) alive "$pid" || break ;;
        esac
        sleep "$tick"; t=$((t + 1))
      done
      if [ -f "$d/status" ]; then
        status_of "$d/status"
        if [ "$rc" = 0 ] && [ "$fed" = "$ferry_n" ] && [ "$sum" = "$ferry_want" ] && [ -d "$d/tree" ]; then
          rm -rf "$ferry_next" && mv "$d/tree" "$ferry_next" && ferry_used=yes
        else
          echo "the extraction while uploading is not used (tar/gzip status $rc, $fed of $ferry_n chunks, sha256 $sum): extracting again" >&2
        fi
      fi
      rm -f .extract.owner .extract-end
      rm -rf "$d" 2>/dev/null || :
    fi
    cd /
  fi
  if [ "$ferry_used" = yes ]; then
    cd "$ferry_next" || exit 1
    echo "extracted=while-uploading"
    echo "files=$(find . -type f | wc -l)"
    list=$(find . -type f | LC_ALL=C sort | sha256sum)
    echo "list_sha256=\${list%% *}"
    exit 0
  fi
`;

/** How long the reassemble step waits for the worker to finish the last chunks. */
export const EXTRACTOR_FINISH_WAIT_SECS = 900;
