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
