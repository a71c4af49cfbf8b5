#!/usr/bin/env bash
# Run every hostledger process on this machine, in the foreground.
#
#   deploy/run.sh                        one instance of each process
#   SCALE=billing=3,orders=2 deploy/run.sh
#
# Steps: check/start PostgreSQL and RabbitMQ (deploy/preflight.sh), create the
# services' databases, create the first staff administrator, then run the
# processes of deploy/Procfile with deploy/runner.py, which starts again any
# process that exits (with growing pauses, as compose and Kubernetes do).
# Ctrl-C stops them all.
#
# gateway and mailgateway listen on fixed ports (HOSTLEDGER_HTTP_PORT,
# HOSTLEDGER_SMTP_PORT), so only one instance of each can run on one machine:
# SCALE refuses more. The other services scale freely.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${VENV:-$ROOT/.venv}"
SCALE="${SCALE:-}"
PROCFILE="deploy/Procfile"
SINGLE_INSTANCE="gateway mailgateway"

die() {
    printf 'run: %s\n' "$*" >&2
    exit 1
}

[[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import honcho' 2>/dev/null ||
    die "no virtualenv with hostledger installed at $VENV; 'make run' creates it"

export PATH="$VENV/bin:$PATH"
export PYTHONUNBUFFERED=1
# logs: plain text for a person at a terminal, one JSON object a line otherwise (as
# deployed); HOSTLEDGER_LOG_FORMAT=json|text chooses
if [[ -z ${HOSTLEDGER_LOG_FORMAT:-} ]]; then
    if [[ -t 1 ]]; then
        export HOSTLEDGER_LOG_FORMAT=text
    else
        export HOSTLEDGER_LOG_FORMAT=json
    fi
fi

# SCALE: name=count[,name=count...], names from the Procfile.
check_scale() {
    local processes item name count items
    processes=" $(sed -n 's/^\([A-Za-z0-9_-]*\):.*/\1/p' "$PROCFILE" | tr '\n' ' ')"
    IFS=',' read -r -a items <<<"$1"
    for item in "${items[@]}"; do
        [[ $item =~ ^([A-Za-z0-9_-]+)=([0-9]+)$ ]] ||
            die "SCALE item '$item' is not name=count (example: SCALE=billing=3,orders=2)"
        name=${BASH_REMATCH[1]}
        count=${BASH_REMATCH[2]}
        [[ $processes == *" $name "* ]] ||
            die "SCALE names '$name', which is not a process; the processes are:$processes"
        if [[ " $SINGLE_INSTANCE " == *" $name "* ]] && ((count > 1)); then
            die "$name listens on a fixed port, so it cannot run more than once on one machine (SCALE asked $name=$count); scale it with compose or Kubernetes behind a load balancer"
        fi
    done
}

if [[ -n $SCALE ]]; then
    check_scale "$SCALE"
fi

deploy/preflight.sh
hostledger databases
hostledger first-admin

host="${HOSTLEDGER_HTTP_HOST:-127.0.0.1}"
if [[ $host == 0.0.0.0 || $host == "::" ]]; then
    host=127.0.0.1 # listening everywhere: show the local address
fi
port="${HOSTLEDGER_HTTP_PORT:-8000}"
url="http://$host:$port"
echo "hostledger is starting: $url/ (API: $url/api/v1/, health: $url/health)"
if [[ -n $SCALE ]]; then
    echo "scale: $SCALE"
fi

# exec: the runner replaces this shell, receives Ctrl-C itself and stops every
# process it started, callers before the services they call (the gateway first,
# customers last: services/infra/processes.py STOP_ORDER), so no process waits for an
# answer from one already gone (SIGTERM to each process group, SIGKILL after 25 s a
# tier), and nothing is left behind; a process that exits on its own is started again
# meanwhile.
if [[ -n $SCALE ]]; then
    exec python -m deploy.runner -f "$PROCFILE" -d "$ROOT" -c "$SCALE"
fi
exec python -m deploy.runner -f "$PROCFILE" -d "$ROOT"
