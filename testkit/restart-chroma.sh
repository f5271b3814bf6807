#!/bin/sh
# Restart a Chroma server started by this script (demo and tests: a deploy --restart-cmd).
#
# usage: restart-chroma.sh PIDFILE PORT DATADIR LOGFILE NODE CLI
#
# Stops the server whose pid is in PIDFILE (TERM, up to 15 s, then KILL), starts
# `NODE CLI run --path DATADIR --host 127.0.0.1 --port PORT` fully detached with its output
# appended to LOGFILE, writes the new pid to PIDFILE and exits 0 at once (it does not wait for
# the server to answer: the caller polls its heartbeat).
set -u

if [ "$#" -ne 6 ]; then
  echo "usage: restart-chroma.sh PIDFILE PORT DATADIR LOGFILE NODE CLI" >&2
  exit 2
fi
pidfile=$1
port=$2
datadir=$3
logfile=$4
node=$5
cli=$6

case $port in
  '' | *[!0-9]*) echo "restart-chroma.sh: bad port: $port" >&2; exit 2 ;;
esac

# Running: signalable and not a zombie. A server that exited stays a zombie until PID 1 reaps it,
# which some container inits do late (on the test machine ~1.7 s after the exit).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  st=${st##*) }
  case $st in Z*) return 1 ;; esac
  return 0
}
nap() { sleep 0.1 2>/dev/null || sleep 1; }

old=
if [ -f "$pidfile" ]; then
  old=$(cat -- "$pidfile" 2>/dev/null || true)
  case $old in '' | *[!0-9]*) old= ;; esac
fi

if [ -n "$old" ] && alive "$old"; then
  # Do not kill a recycled pid: when /proc tells, the process must be running our CLI.
  if [ -r "/proc/$old/cmdline" ]; then
    cmd=$(tr '\000' ' ' < "/proc/$old/cmdline" 2>/dev/null || true)
    case $cmd in
      '' | *"$cli"*) ;;
      *) echo "restart-chroma.sh: pid $old from $pidfile is not a Chroma server; not stopping it" >&2; old= ;;
    esac
  fi
fi

if [ -n "$old" ] && alive "$old"; then
  kill -TERM "$old" 2>/dev/null || true
  i=0
  while alive "$old" && [ "$i" -lt 150 ]; do nap; i=$((i + 1)); done
  if alive "$old"; then
    echo "restart-chroma.sh: pid $old ignored SIGTERM for 15 s; sending SIGKILL" >&2
    kill -KILL "$old" 2>/dev/null || true
    i=0
    while alive "$old" && [ "$i" -lt 50 ]; do nap; i=$((i + 1)); done
  fi
fi

if command -v setsid >/dev/null 2>&1; then
  setsid nohup "$node" "$cli" run --path "$datadir" --host 127.0.0.1 --port "$port" </dev/null >>"$logfile" 2>&1 &
else
  nohup "$node" "$cli" run --path "$datadir" --host 127.0.0.1 --port "$port" </dev/null >>"$logfile" 2>&1 &
fi
new=$!

printf '%s\n' "$new" > "$pidfile.tmp.$$" && mv -f -- "$pidfile.tmp.$$" "$pidfile"
exit 0
