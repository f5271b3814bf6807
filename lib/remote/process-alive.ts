/**
 * sh: `alive PID` — whether the process runs. A zombie (exited, not yet reaped) does not, though
 * `kill -0` succeeds on it: where PID 1 reaps late or never (a container whose PID 1 is the server
 * itself, or this test machine's, ~1.7 s late), a wait on `kill -0` would last until its timeout.
 * Where /proc cannot tell (not mounted, not readable), `kill -0` decides.
 */
export const ALIVE_SH = `alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    read -r st < "/proc/$1/stat" || return 0
    st=\${st##*) }; [ "\${st%% *}" != Z ]
  }`;

/**
 * sh: `wait_gone PID SECS` (with `alive`) — waits until the process no longer runs, at most SECS
 * seconds, polling every 10 ms (every second where sleep takes no fraction; the first look at
 * once, the second after 5 ms: the short jobs waited for end in tens of ms); status 0 when it is
 * gone, 1 when it still runs.
 */
export const WAIT_GONE_SH = `${ALIVE_SH}
  wait_gone() {
    alive "$1" || return 0
    if sleep 0.005 2>/dev/null; then wg_tick=0.01 wg_left=$(($2 * 100)); else wg_tick=1 wg_left=$2; fi
    while alive "$1" && [ "$wg_left" -gt 0 ]; do sleep "$wg_tick"; wg_left=$((wg_left - 1)); done
    ! alive "$1"
  }`;

/**
 * sh: `started_as PID MARK` — whether PID may be the process we started with MARK in its command
 * line: status 1 when /proc shows PID's command line without MARK (the pid was reused by another
 * process: never waited for, never signalled), 0 when it holds MARK or /proc cannot tell.
 */
export const STARTED_AS_SH = `started_as() {
    [ -r "/proc/$1/cmdline" ] || return 0
    case $(tr '\\000' ' ' < "/proc/$1/cmdline" 2>/dev/null) in *"$2"*) return 0 ;; esac
    return 1
  }`;
