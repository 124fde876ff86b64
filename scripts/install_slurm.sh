#!/usr/bin/env bash
# Install what a single-node SLURM cluster on localhost needs (tests/workflow/test_slurm.py starts it
# with scripts/start_slurm_localhost.sh): slurmctld + slurmd (slurm-wlm), munge, and for `sacct`
# job accounting slurmdbd with a MariaDB server. Debian/Ubuntu only.
#
# Usage: scripts/install_slurm.sh
# Always exits 0: without root or apt it says why and leaves the SLURM test to skip itself.
set -uo pipefail

# command needed -> Debian package providing it
declare -A PACKAGE_OF=(
    [slurmctld]=slurm-wlm
    [slurmd]=slurm-wlm
    [sbatch]=slurm-wlm
    [munged]=munge
    [slurmdbd]=slurmdbd
    [mariadbd]=mariadb-server
)
COMMANDS=(slurmctld slurmd sbatch munged slurmdbd mariadbd)
export PATH="$PATH:/usr/sbin:/sbin"

missing_commands() {
    local cmd
    for cmd in "${COMMANDS[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || echo "$cmd"
    done
}

mapfile -t missing < <(missing_commands)
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_slurm: all present (${COMMANDS[*]}); nothing to do."
    exit 0
fi

packages=()
for cmd in "${missing[@]}"; do
    pkg=${PACKAGE_OF[$cmd]}
    [[ " ${packages[*]-} " == *" $pkg "* ]] || packages+=("$pkg")
done

skip() {
    echo "install_slurm: not installing ${packages[*]} ($1); the SLURM workflow test will be skipped."
    exit 0
}

command -v apt-get >/dev/null 2>&1 || skip "no apt-get here"
[ "$(id -u)" -eq 0 ] || skip "not root; the localhost cluster needs root to run its daemons anyway"

echo "install_slurm: missing ${missing[*]}; installing Debian packages: ${packages[*]}"
# policy-rc.d-style containers refuse to start services; we start the daemons ourselves
apt-get update -qq || skip "apt-get update failed"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
    || skip "apt-get install failed"

mapfile -t still_missing < <(missing_commands)
[ "${#still_missing[@]}" -eq 0 ] || skip "still missing after apt-get: ${still_missing[*]}"
echo "install_slurm: done (${COMMANDS[*]})."
