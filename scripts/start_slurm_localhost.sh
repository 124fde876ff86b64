#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, with job accounting, so that the workflow can be
# run with `--profile profiles/slurm` exactly as on a real cluster (tests/workflow/test_slurm.py).
#
#   munged -> MariaDB (private instance) -> slurmdbd -> slurmctld -> slurmd, one node = this machine
#   (its real CPUs and memory, from `slurmd -C`), partitions omicslm_cpu (default) and omicslm_gpu,
#   account omicslm for the calling user: the placeholders profiles/slurm/config.yaml ships with.
#
# Usage: scripts/start_slurm_localhost.sh          start (a no-op when the node is already up)
#        scripts/start_slurm_localhost.sh --stop   stop the daemons this script started
# Exit status 0 when the node is idle in sinfo (or everything is stopped); otherwise 1, reason on stderr.
#
# Why a private MariaDB: slurmdbd stores accounting only in MySQL/MariaDB, and `sacct` (how the SLURM
# executor plugin polls job states, and how the test proves jobs ran through SLURM) needs slurmdbd.
# Accounting in /etc/slurm must not clobber a real cluster's config, so a slurm.conf this script did
# not write is left alone and the script stops.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

STATE=/var/lib/omicslm-slurm          # databases, spool, state, logs
RUN=/run/omicslm-slurm                # pid files, sockets, the list of daemons this script started
CONF_DIR=/etc/slurm
MARK="# written by omicslm scripts/start_slurm_localhost.sh"
CLUSTER=omicslm
ACCOUNT=omicslm
DB_PORT=${OMICSLM_SLURM_DB_PORT:-3307}  # not 3306, so a system MariaDB/MySQL can keep its port
WAIT_S=${OMICSLM_SLURM_WAIT_S:-60}      # how long to wait for each daemon
USER_NAME=$(id -un)

die() { echo "start_slurm_localhost: $*" >&2; exit 1; }
say() { echo "start_slurm_localhost: $*"; }

# wait_for SECONDS COMMAND...: poll COMMAND every 0.5 s until it succeeds
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
started() { echo "$1 $2" >>"$RUN/started"; }  # NAME PIDFILE

stop_all() {
    [ -f "$RUN/started" ] || { say "nothing to stop (this script started no daemons)."; return 0; }
    local name pidfile pid
    # reverse start order: compute nodes first, the database last
    tac "$RUN/started" | while read -r name pidfile; do
        if alive "$pidfile"; then
            pid=$(cat "$pidfile")
            kill "$pid" 2>/dev/null || true
            wait_for 30 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
            say "stopped $name (pid $pid)."
        fi
    done
    rm -f "$RUN/started"
}

if [ "${1-}" = "--stop" ]; then
    stop_all
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "needs root (slurmd and slurmdbd run as root here); not root."
for cmd in munged munge unmunge slurmctld slurmd slurmdbd sinfo sacctmgr mariadbd mariadb-install-db mariadb; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found; run scripts/install_slurm.sh first."
done
for f in slurm.conf slurmdbd.conf gres.conf; do
    if [ -e "$CONF_DIR/$f" ] && ! grep -qF "$MARK" "$CONF_DIR/$f"; then
        die "$CONF_DIR/$f exists and was not written by this script; not touching a real cluster's config."
    fi
done

node_idle() { sinfo -h -N -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }
if alive "$RUN/slurmctld.pid" && alive "$RUN/slurmd.pid" && alive "$RUN/slurmdbd.pid" && node_idle; then
    say "already running: $(sinfo -h -N -p omicslm_cpu -o '%N %T %c CPUs %m MB')"
    exit 0
fi

mkdir -p "$STATE"/{mariadb,slurmctld,slurmd,log} "$RUN" "$CONF_DIR"
HOST=$(hostname -s)

# --- munge: shared-key authentication between the SLURM daemons and clients
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || { mungekey --create --force && chown munge:munge /etc/munge/munge.key; }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- munged </dev/null >>"$STATE/log/munged.out" 2>&1 || die "munged did not start"
    started munged /run/munge/munged.pid
    wait_for "$WAIT_S" bash -c "munge -n | unmunge" || die "munge does not answer"
fi

# --- MariaDB for slurmdbd: own data directory, loopback TCP only
DB_PASS_FILE="$STATE/db_password"
[ -s "$DB_PASS_FILE" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DB_PASS_FILE")
DB_PASS=$(cat "$DB_PASS_FILE")
DB_SOCK="$RUN/mariadb.sock"
chown mysql:mysql "$STATE/mariadb" "$RUN"
if ! alive "$RUN/mariadb.pid"; then
    if [ ! -d "$STATE/mariadb/mysql" ]; then
        mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mariadb" \
            --auth-root-authentication-method=socket --skip-test-db >>"$STATE/log/mariadb-install.out" 2>&1 \
            || die "mariadb-install-db failed; see $STATE/log/mariadb-install.out"
    fi
    setsid mariadbd --no-defaults --user=mysql --datadir="$STATE/mariadb" --socket="$DB_SOCK" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$RUN/mariadb.pid" \
        --log-error="$STATE/log/mariadb.log" </dev/null >/dev/null 2>&1 &
    wait_for "$WAIT_S" mariadb-admin --socket="$DB_SOCK" ping \
        || die "MariaDB did not come up on port $DB_PORT; see $STATE/log/mariadb.log"
    started mariadb "$RUN/mariadb.pid"
fi
mariadb --socket="$DB_SOCK" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || die "could not create the slurm database user"

# --- configuration (rewritten each start, so a changed machine gets its real CPUs and memory)
NODE=$(slurmd -C | head -n 1)   # NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
# GPUs: the machine's NVIDIA devices; without any, two stand-ins (character devices that every machine
# has) so that jobs asking for --gpus, one or several, are scheduled and tested here; they find no CUDA.
mapfile -t GPU_FILES < <(ls /dev/nvidia[0-9]* 2>/dev/null || true)
[ "${#GPU_FILES[@]}" -gt 0 ] || GPU_FILES=(/dev/null /dev/zero)
printf '%s\n' "$MARK" "${GPU_FILES[@]/#/Name=gpu File=}" >"$CONF_DIR/gres.conf"
(umask 077; cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
PidFile=$RUN/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
EOF
)
# proctrack/linuxproc and task/none: containers rarely delegate cgroups to slurmd
cat >"$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
AccountingStorageTRES=gres/gpu
SchedulerType=sched/backfill
ReturnToService=2
$NODE Gres=gpu:${#GPU_FILES[@]} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=omicslm_cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=omicslm_gpu Nodes=ALL MaxTime=INFINITE State=UP
EOF

# --- slurmdbd, then the cluster / account / user associations the profile's placeholders name
if ! alive "$RUN/slurmdbd.pid"; then
    slurmdbd </dev/null >>"$STATE/log/slurmdbd.out" 2>&1 || die "slurmdbd did not start; see $STATE/log/slurmdbd.log"
    started slurmdbd "$RUN/slurmdbd.pid"
fi
wait_for "$WAIT_S" sacctmgr -n list cluster \
    || die "slurmdbd does not answer; see $STATE/log/slurmdbd.log"
has() { [ -n "$(sacctmgr -n -P list "$@" 2>/dev/null)" ]; }
has cluster "$CLUSTER" format=cluster || sacctmgr -i add cluster "$CLUSTER" >/dev/null
has account "$ACCOUNT" format=account || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" \
    description="omicslm localhost test" organization=omicslm >/dev/null
has association user="$USER_NAME" account="$ACCOUNT" format=user \
    || sacctmgr -i add user "$USER_NAME" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null

# --- controller and the one compute node
if ! alive "$RUN/slurmctld.pid"; then
    slurmctld </dev/null >>"$STATE/log/slurmctld.out" 2>&1 || die "slurmctld did not start; see $STATE/log/slurmctld.log"
    started slurmctld "$RUN/slurmctld.pid"
fi
wait_for "$WAIT_S" scontrol ping || die "slurmctld does not answer; see $STATE/log/slurmctld.log"
if ! alive "$RUN/slurmd.pid"; then
    slurmd </dev/null >>"$STATE/log/slurmd.out" 2>&1 || die "slurmd did not start; see $STATE/log/slurmd.log"
    started slurmd "$RUN/slurmd.pid"
fi
if ! wait_for "$WAIT_S" node_idle; then
    # a node left down/drained by an earlier run comes back once resumed
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    wait_for 10 node_idle \
        || die "node not idle: $(sinfo -h -N -o '%N %T %E'); see $STATE/log/slurmd.log"
fi
say "up: $(sinfo -h -N -p omicslm_cpu -o '%N %T %c CPUs %m MB'), account $ACCOUNT, partitions omicslm_cpu omicslm_gpu"
