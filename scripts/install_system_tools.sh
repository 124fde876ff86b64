#!/usr/bin/env bash
# Ensure the system tools the imputation baselines need: bcftools, tabix/bgzip, Beagle 5.4,
# minimac4 and a Java runtime (for Beagle). Debian/Ubuntu only; elsewhere use conda.
#
# Usage: scripts/install_system_tools.sh
# Exit status: 0 when every tool is available (already or after installing), 1 otherwise.
set -euo pipefail

# command needed -> Debian package providing it
declare -A PACKAGE_OF=(
    [bcftools]=bcftools
    [bgzip]=tabix
    [tabix]=tabix
    [beagle]=beagle
    [minimac4]=minimac4
    [java]=default-jre-headless
)
COMMANDS=(bcftools bgzip tabix beagle minimac4 java)

missing_commands() {
    local cmd
    for cmd in "${COMMANDS[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || echo "$cmd"
    done
}

mapfile -t missing < <(missing_commands)
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_system_tools: all tools present (${COMMANDS[*]}); nothing to do."
    exit 0
fi

# the packages to install, each once, in a stable order
packages=()
for cmd in "${missing[@]}"; do
    pkg=${PACKAGE_OF[$cmd]}
    [[ " ${packages[*]-} " == *" $pkg "* ]] || packages+=("$pkg")
done

give_up() {
    echo "install_system_tools: missing: ${missing[*]}" >&2
    echo "  $1" >&2
    echo "  Install them with your system package manager (Debian/Ubuntu packages: ${packages[*]})," >&2
    echo "  or run the workflow with '--sdm conda', which uses envs/*.yaml" >&2
    echo "  (bioconda beagle, minimac4, bcftools)." >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || give_up "No apt-get here, so this script cannot install them."

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    give_up "Not running as root and sudo needs a password, so this script cannot install them."
fi

echo "install_system_tools: missing ${missing[*]}; installing Debian packages: ${packages[*]}"
"${as_root[@]}" apt-get update -qq || give_up "apt-get update failed (see its message above)."
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
    || give_up "apt-get install failed (see its message above)."

mapfile -t still_missing < <(missing_commands)
if [ "${#still_missing[@]}" -ne 0 ]; then
    missing=("${still_missing[@]}")
    give_up "apt-get finished but these commands are still not on PATH."
fi
echo "install_system_tools: done; all tools present (${COMMANDS[*]})."
