#!/usr/bin/env bash
# Make sure the two servers hostledger needs answer: PostgreSQL (DATABASE_URL)
# and RabbitMQ (AMQP_URI).
#
# - Both answer: returns at once (two TCP probes, one login check).
# - A local server (localhost, 127.0.0.1, ::1) is installed but stopped: it is
#   started, and this script waits until it answers.
# - A local server is not installed: on Debian/Ubuntu as root it is installed
#   with apt-get and started; otherwise this script says what to install and
#   exits non-zero.
# - A remote server that does not answer is never touched: exit non-zero.
#
# For local RabbitMQ it also enables the management plugin (the integration
# tests create their own vhosts through it). HOSTLEDGER_RABBITMQ_MANAGEMENT=0
# turns that off.
#
# `preflight.sh browser` only makes sure of the browser the browser tests drive
# (Debian's Chromium, installed the same way when missing); `preflight.sh tools` of
# the tools the tests run (promtool, from Debian's prometheus).
#
# Safe to run any number of times.
set -euo pipefail

DATABASE_URL="${DATABASE_URL:-postgresql://postgres@localhost:5432/}"
AMQP_URI="${AMQP_URI:-pyamqp://guest:guest@localhost:5672/}"
WAIT_SECONDS="${HOSTLEDGER_PREFLIGHT_TIMEOUT:-90}"
RABBITMQ_MANAGEMENT="${HOSTLEDGER_RABBITMQ_MANAGEMENT:-1}"
RABBITMQ_MANAGEMENT_PORT="${HOSTLEDGER_RABBITMQ_MANAGEMENT_PORT:-15672}"

# Server tools live in sbin and in PostgreSQL's versioned bin directories,
# which a non-login shell often lacks.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { printf 'preflight: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

# url_host_port URL DEFAULT_PORT -> prints "host port"
url_host_port() {
    local rest=$1 default_port=$2 hostport host port
    rest=${rest#*://}
    hostport=${rest%%/*}
    hostport=${hostport%%\?*}
    hostport=${hostport##*@}
    if [[ $hostport == \[* ]]; then # [::1]:5432
        host=${hostport%%]*}
        host=${host#[}
        port=${hostport#*]}
        port=${port#:}
    else
        host=${hostport%%:*}
        port=${hostport#"$host"}
        port=${port#:}
    fi
    printf '%s %s\n' "${host:-localhost}" "${port:-$default_port}"
}

is_local() {
    case "$1" in
        localhost | 127.0.0.1 | ::1 | 127.* | localhost.localdomain) return 0 ;;
        *) return 1 ;;
    esac
}

# port_answers HOST PORT: a TCP connection succeeds within 2 seconds.
port_answers() {
    local host=$1 port=$2
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
    else
        bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
    fi
}

# wait_for DESCRIPTION COMMAND...: run COMMAND every half second until it
# succeeds or WAIT_SECONDS pass.
wait_for() {
    local what=$1 deadline=$((SECONDS + WAIT_SECONDS))
    shift
    until "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
    say "$what answers"
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# apt_install PACKAGE...: install on Debian/Ubuntu when running as root.
apt_install() {
    if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
        return 1
    fi
    say "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "$@"; then
        apt-get update
        apt-get install -y --no-install-recommends "$@"
    fi
}

install_hint() {
    cat >&2 <<EOF
preflight: $1 is not installed on this machine. Install it, then run this again:
  Debian/Ubuntu:  sudo apt-get install -y postgresql rabbitmq-server
  Fedora/RHEL:    sudo dnf install -y postgresql-server rabbitmq-server
                  (then: sudo postgresql-setup --initdb && sudo systemctl start postgresql rabbitmq-server)
  macOS:          brew install postgresql@15 rabbitmq && brew services start postgresql@15 && brew services start rabbitmq
  Docker:         docker run -d --name hostledger-postgres -p 127.0.0.1:5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15
                  docker run -d --name hostledger-rabbitmq -p 127.0.0.1:5672:5672 -p 127.0.0.1:15672:15672 rabbitmq:3-management
Or point DATABASE_URL / AMQP_URI at servers that already run.
EOF
    exit 1
}

# --------------------------------------------------------------------- PostgreSQL

read -r PG_HOST PG_PORT < <(url_host_port "$DATABASE_URL" 5432)

pg_answers() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2
    else
        port_answers "$PG_HOST" "$PG_PORT"
    fi
}

pg_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 && command -v pg_lsclusters >/dev/null 2>&1 &&
        [[ -n $(ls -A /etc/postgresql 2>/dev/null) ]]
}

# The Debian cluster that listens on PG_PORT ("version name"), newest first.
pg_cluster() {
    local ver name port
    while read -r ver name port _; do
        if [[ $port == "$PG_PORT" ]]; then
            printf '%s %s\n' "$ver" "$name"
            return 0
        fi
    done < <(pg_lsclusters -h 2>/dev/null | sort -rV)
    return 1
}

pg_cluster_or_die() {
    pg_cluster || die "no local PostgreSQL cluster is set up for port $PG_PORT (pg_lsclusters lists: $(pg_lsclusters -h 2>/dev/null | awk '{printf "%s/%s:%s ", $1, $2, $3}'))"
}

# After preflight installed PostgreSQL itself: let local TCP logins in without a
# password, as the default DATABASE_URL (postgresql://postgres@localhost/) expects.
pg_trust_local() {
    local ver name hba
    read -r ver name < <(pg_cluster) || return 0
    hba="/etc/postgresql/$ver/$name/pg_hba.conf"
    [[ -f $hba ]] || return 0
    say "allowing passwordless local TCP logins in $hba (fresh install)"
    sed -i -E 's/^(host[[:space:]]+all[[:space:]]+all[[:space:]]+(127\.0\.0\.1\/32|::1\/128)[[:space:]]+).*/\1trust/' "$hba"
}

start_postgres() {
    local ver name cluster
    cluster=$(pg_cluster_or_die)
    read -r ver name <<<"$cluster"
    say "starting PostgreSQL cluster $ver/$name"
    if ! pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start; then
        # "already running" (still booting) also lands here: the wait decides.
        is_root || [[ $(id -un) == "$(stat -c %U "/etc/postgresql/$ver/$name" 2>/dev/null)" ]] ||
            die "cannot start PostgreSQL as $(id -un); run: sudo pg_ctlcluster --skip-systemctl-redirect $ver $name start"
    fi
}

ensure_postgres() {
    if pg_answers; then
        return 0
    fi
    if ! is_local "$PG_HOST"; then
        die "PostgreSQL at $PG_HOST:$PG_PORT (DATABASE_URL) does not answer; it is not local, so it is left alone"
    fi
    local fresh=0
    if ! pg_installed; then
        apt_install postgresql || install_hint PostgreSQL
        pg_installed || die "PostgreSQL was installed but no cluster exists (see /etc/postgresql)"
        fresh=1
    fi
    if ((fresh)); then
        pg_trust_local
    fi
    if ((fresh)) && pg_answers; then
        # The package's own scripts started it: make it read the new pg_hba.conf.
        local cluster
        cluster=$(pg_cluster_or_die)
        # shellcheck disable=SC2086
        pg_ctlcluster --skip-systemctl-redirect $cluster reload
    else
        start_postgres
    fi
    wait_for "PostgreSQL on $PG_HOST:$PG_PORT" pg_answers ||
        die "PostgreSQL on $PG_HOST:$PG_PORT did not answer within ${WAIT_SECONDS}s; see /var/log/postgresql/"
}

# A server that answers but refuses our login is reported now, not later in
# the middle of a test run.
# The services connect to the "postgres" database to create their own, so
# that is the one checked here.
check_postgres_login() {
    command -v psql >/dev/null 2>&1 || return 0
    local out url rest authority query=""
    rest=${DATABASE_URL#*://}
    authority=${rest%%/*}
    authority=${authority%%\?*}
    if [[ $DATABASE_URL == *\?* ]]; then
        query="?${DATABASE_URL#*\?}"
    fi
    url="${DATABASE_URL%%://*}://$authority/postgres$query"
    if ! out=$(PGCONNECT_TIMEOUT=5 psql -X -A -t -q -d "$url" -c 'select 1' 2>&1); then
        die "PostgreSQL answers on $PG_HOST:$PG_PORT but DATABASE_URL does not log in: $out"
    fi
}

# ----------------------------------------------------------------------- RabbitMQ

read -r MQ_HOST MQ_PORT < <(url_host_port "$AMQP_URI" 5672)

mq_answers() { port_answers "$MQ_HOST" "$MQ_PORT"; }

mq_installed() { command -v rabbitmq-server >/dev/null 2>&1; }

ensure_rabbitmq() {
    if mq_answers; then
        return 0
    fi
    if ! is_local "$MQ_HOST"; then
        die "RabbitMQ at $MQ_HOST:$MQ_PORT (AMQP_URI) does not answer; it is not local, so it is left alone"
    fi
    if ! mq_installed; then
        apt_install rabbitmq-server || install_hint RabbitMQ
    fi
    say "starting RabbitMQ"
    # Fails harmlessly when a node is already booting; the wait below decides.
    if ! rabbitmq-server -detached; then
        is_root || [[ $(id -un) == rabbitmq ]] ||
            die "cannot start RabbitMQ as $(id -un); run: sudo rabbitmq-server -detached"
    fi
    wait_for "RabbitMQ on $MQ_HOST:$MQ_PORT" mq_answers ||
        die "RabbitMQ on $MQ_HOST:$MQ_PORT did not answer within ${WAIT_SECONDS}s; see /var/log/rabbitmq/"
    if command -v rabbitmqctl >/dev/null 2>&1; then
        rabbitmqctl -q await_startup --timeout "$WAIT_SECONDS" >/dev/null 2>&1 ||
            say "rabbitmqctl await_startup did not confirm; going on since the port answers"
    fi
}

management_answers() { port_answers "$MQ_HOST" "$RABBITMQ_MANAGEMENT_PORT"; }

ensure_rabbitmq_management() {
    [[ $RABBITMQ_MANAGEMENT == 1 ]] || return 0
    is_local "$MQ_HOST" || return 0
    management_answers && return 0
    command -v rabbitmq-plugins >/dev/null 2>&1 || return 0
    say "enabling the RabbitMQ management plugin"
    if ! rabbitmq-plugins -q enable rabbitmq_management >/dev/null; then
        say "could not enable rabbitmq_management (not root?); tests that create vhosts will fail"
        return 0
    fi
    wait_for "RabbitMQ management on $MQ_HOST:$RABBITMQ_MANAGEMENT_PORT" management_answers ||
        say "RabbitMQ management did not answer on port $RABBITMQ_MANAGEMENT_PORT"
}

# --------------------------------------------------------------------------- fonts

# Invoice PDFs are set in DejaVu Sans (Latin and Cyrillic); HOSTLEDGER_PDF_FONT
# names another TTF file.
PDF_FONT="${HOSTLEDGER_PDF_FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}"

ensure_pdf_font() {
    [[ -f $PDF_FONT ]] && return 0
    apt_install fonts-dejavu-core && [[ -f $PDF_FONT ]] && return 0
    die "the invoice font $PDF_FONT is missing: install Debian's fonts-dejavu-core (sudo apt-get install -y fonts-dejavu-core) or set HOSTLEDGER_PDF_FONT to a TTF file"
}

# ------------------------------------------------------------------------- dovecot

# The mail tests poll a real IMAP server: Debian's Dovecot, which the tests start
# themselves with a private configuration (the system's Dovecot is not used).
DOVECOT="${HOSTLEDGER_DOVECOT:-/usr/sbin/dovecot}"

ensure_dovecot() {
    [[ -x $DOVECOT ]] && return 0
    apt_install dovecot-imapd && [[ -x $DOVECOT ]] && return 0
    die "Dovecot ($DOVECOT), needed by the IMAP tests, is missing: install Debian's dovecot-imapd (sudo apt-get install -y dovecot-imapd) or set HOSTLEDGER_DOVECOT to its binary"
}

# ------------------------------------------------------------------------ chromium

# The browser tests (tests/e2e/test_web_*.py) drive Debian's Chromium through
# Playwright, which cannot download a browser of its own here. Only `make test` and
# `make e2e` ask for it (`deploy/preflight.sh browser`); `make run` does not need it.
CHROMIUM="${HOSTLEDGER_CHROMIUM:-/usr/bin/chromium}"

ensure_chromium() {
    [[ -x $CHROMIUM ]] && return 0
    apt_install chromium && [[ -x $CHROMIUM ]] && return 0
    die "Chromium ($CHROMIUM), needed by the browser tests, is missing: install Debian's chromium (sudo apt-get install -y chromium) or set HOSTLEDGER_CHROMIUM to its binary"
}

# ------------------------------------------------------------------------ promtool

# The tests check the alert rules and the scrape configs (deploy/prometheus/) with
# promtool, from Debian's prometheus package (`preflight.sh tools`; `make test` asks
# for it). Only the tool is wanted: the server the package also installs is not used,
# and on a machine without systemd the package does not start it.
PROMTOOL="${HOSTLEDGER_PROMTOOL:-/usr/bin/promtool}"

ensure_promtool() {
    [[ -x $PROMTOOL ]] && return 0
    apt_install prometheus && [[ -x $PROMTOOL ]] && return 0
    die "promtool ($PROMTOOL), needed by the monitoring tests, is missing: install Debian's prometheus (sudo apt-get install -y prometheus) or set HOSTLEDGER_PROMTOOL to its binary"
}

# --------------------------------------------------------------------------- main

main() {
    ensure_postgres
    check_postgres_login
    ensure_rabbitmq
    ensure_rabbitmq_management
    ensure_pdf_font
    ensure_dovecot
    say "PostgreSQL $PG_HOST:$PG_PORT and RabbitMQ $MQ_HOST:$MQ_PORT answer"
}

# Sourcing the file (as the tests do) defines the functions without running.
# `preflight.sh browser`: only the browser the browser tests drive.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    if [[ ${1:-} == browser ]]; then
        ensure_chromium
    elif [[ ${1:-} == tools ]]; then
        ensure_promtool
    else
        main
    fi
fi
