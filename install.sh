#!/usr/bin/env bash
# homewatt installer: one command turns a Raspberry Pi (Raspberry Pi OS / Debian 64-bit,
# bookworm or trixie) into a homewatt station. From a checkout:
#   sudo ./install.sh [--demo] [options]
# or without one (it clones the pinned release and re-runs itself from there):
#   curl -fsSL <raw URL of install.sh> | sudo bash -s -- [options]
# It installs Ansible in its pinned venv, creates ansible/inventories/local/ once (never
# overwriting yours) and runs ansible/site.yml against this machine. Safe to re-run: it
# upgrades in place and keeps secrets, data and outboxes. `--help` lists the options.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# The repository a piped run clones, and the release it checks out.
HOMEWATT_REPO_URL=${HOMEWATT_REPO_URL:-}
HOMEWATT_REF=${HOMEWATT_REF:-main}
HOMEWATT_SRC=${HOMEWATT_SRC:-/opt/homewatt/src}
ANSIBLE_VENV=${HOMEWATT_ANSIBLE_VENV:-/opt/homewatt/ansible-venv}
# For the tests: another os-release file and another file system to measure.
OS_RELEASE=${HOMEWATT_OS_RELEASE:-/etc/os-release}
FREE_SPACE_PATH=${HOMEWATT_FREE_SPACE_PATH:-/var/lib}
MIN_FREE_MB=1024
# Where secrets go (contracts/secrets.json's credentials directory); for the tests: another one,
# and stopping once the inventory and the credentials are written (nothing installed).
CREDENTIALS_DIR=${HOMEWATT_CREDENTIALS_DIR:-/etc/homewatt/credentials}
ONLY_INVENTORY=${HOMEWATT_ONLY_INVENTORY:-false}

usage() {
  cat <<'EOF'
Usage: sudo ./install.sh [options]

Installs homewatt on this machine (Raspberry Pi OS / Debian 64-bit, bookworm or trixie):
InfluxDB 2 and Grafana in Docker, the collector, hourly backups. Safe to re-run.

What to install:
  --demo                      a simulated meter: no hardware needed
  --site NAME                 the site name (lowercase letters and digits, single hyphens;
                              default: home)
  --meter-port PATH           the RS485 adapter, e.g. /dev/serial/by-id/usb-FTDI_...
  --meter-model MODEL         orno-we514, orno-we515, orno-we516, sdm120 or sdm630
  --meter-id N                the meter's Modbus device id (1-247; default 1)
  --azure-account-url URL     backups to Azure: the storage account's blob URL
  --azure-container NAME      its container (default homewatt-<site>)
  --azure-sas-file FILE       a file holding the container SAS (never pass it as an argument)
  --no-azure                  keep backups on this machine only
  --shelly-plug NAME=ADDRESS  add a Shelly plug, switch or meter (repeatable; its generation
                              is found on its own): NAME is its device tag (lowercase letters,
                              digits, '-'), ADDRESS its IP address or host name
  --shelly-password-file NAME=FILE
                              a file holding plug NAME's password (repeatable; never pass a
                              password as an argument); a plug without one has no password
  --emporia-username EMAIL    add an Emporia Vue account (the Emporia app's login)
  --emporia-password-file FILE
                              a file holding its password
  --grafana-lan               show Grafana to the home network (the default)
  --no-grafana-lan            Grafana on this machine only (127.0.0.1:3000)
  --answers FILE              read the answers from FILE (KEY=VALUE lines: SITE, DEMO,
                              METER_PORT, METER_MODEL, METER_ID, AZURE_ACCOUNT_URL,
                              AZURE_CONTAINER, AZURE_SAS_FILE, GRAFANA_LAN, SHELLY_PLUGS and
                              SHELLY_PASSWORD_FILES (space-separated NAME=ADDRESS and
                              NAME=FILE), EMPORIA_USERNAME, EMPORIA_PASSWORD_FILE)
  --non-interactive           ask nothing: defaults and the answers given, else fail

Other actions:
  --reset-grafana-password    generate a new Grafana admin password
  --uninstall                 stop and remove units and containers; keep data and secrets
  --purge                     with --uninstall: delete data, secrets and configs too
  -h, --help                  this help

Passwords (Shelly, Emporia) are copied root-only (0600) to /etc/homewatt/credentials/;
the inventory names them (password_credential) and never holds them. Asked interactively,
a password is read without echo. A re-run keeps a password already there.

Environment: HOMEWATT_REPO_URL and HOMEWATT_REF (the repository and release a piped run
clones), HOMEWATT_ANSIBLE_VENV (default /opt/homewatt/ansible-venv), HOMEWATT_EXTRA_VARS
(more variables for the play, as JSON: e.g. an offline Pi's image archives).
EOF
}

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
# Numbered steps, counted on across the re-run from the fetched release.
step_no=${HOMEWATT_STEP_NO:-0}
step() { step_no=$((step_no + 1)); printf '\n[%d] %s\n' "$step_no" "$*"; }

# --- options ---------------------------------------------------------------------------------
SITE="" DEMO="" METER_PORT="" METER_MODEL="" METER_ID="" AZURE_ACCOUNT_URL="" AZURE_CONTAINER=""
AZURE_SAS_FILE="" AZURE="" GRAFANA_LAN="" ANSWERS="" NON_INTERACTIVE=false ACTION=install
SHELLY_PLUGS="" SHELLY_PASSWORD_FILES="" EMPORIA_USERNAME="" EMPORIA_PASSWORD_FILE=""
PURGE=false RESET_GRAFANA=false
ARGS=("$@")

need_value() { if [ "$#" -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see --help)"; fi; }
while [ "$#" -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --demo) DEMO=yes ;;
    --site) need_value "$@"; SITE=$2; shift ;;
    --meter-port) need_value "$@"; METER_PORT=$2; shift ;;
    --meter-model) need_value "$@"; METER_MODEL=$2; shift ;;
    --meter-id) need_value "$@"; METER_ID=$2; shift ;;
    --azure-account-url) need_value "$@"; AZURE_ACCOUNT_URL=$2; AZURE=yes; shift ;;
    --azure-container) need_value "$@"; AZURE_CONTAINER=$2; shift ;;
    --azure-sas-file) need_value "$@"; AZURE_SAS_FILE=$2; shift ;;
    --no-azure) AZURE=no ;;
    --shelly-plug) need_value "$@"; SHELLY_PLUGS="${SHELLY_PLUGS:+$SHELLY_PLUGS }$2"; shift ;;
    --shelly-password-file) need_value "$@"; SHELLY_PASSWORD_FILES="${SHELLY_PASSWORD_FILES:+$SHELLY_PASSWORD_FILES }$2"; shift ;;
    --emporia-username) need_value "$@"; EMPORIA_USERNAME=$2; shift ;;
    --emporia-password-file) need_value "$@"; EMPORIA_PASSWORD_FILE=$2; shift ;;
    --grafana-lan) GRAFANA_LAN=yes ;;
    --no-grafana-lan) GRAFANA_LAN=no ;;
    --answers) need_value "$@"; ANSWERS=$2; shift ;;
    --non-interactive) NON_INTERACTIVE=true ;;
    --reset-grafana-password) RESET_GRAFANA=true ;;
    --uninstall) ACTION=uninstall ;;
    --purge) PURGE=true ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ "$PURGE" = false ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall"

# Answers from a file: KEY=VALUE lines; a flag given on the command line wins.
if [ -n "$ANSWERS" ]; then
  [ -r "$ANSWERS" ] || die "--answers $ANSWERS: no such readable file"
  lineno=0
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    case $line in '' | '#'*) continue ;; esac
    key=${line%%=*} value=${line#*=}
    [ "$key" != "$line" ] || die "$ANSWERS:$lineno: expected KEY=VALUE, got '$line'"
    case $key in
      SITE | DEMO | METER_PORT | METER_MODEL | METER_ID | AZURE_ACCOUNT_URL | AZURE_CONTAINER | AZURE_SAS_FILE | GRAFANA_LAN \
        | SHELLY_PLUGS | SHELLY_PASSWORD_FILES | EMPORIA_USERNAME | EMPORIA_PASSWORD_FILE)
        [ -n "${!key}" ] || printf -v "$key" '%s' "$value" ;;
      *) die "$ANSWERS:$lineno: unknown key $key (see --help)" ;;
    esac
  done <"$ANSWERS"
  [ -z "$AZURE_ACCOUNT_URL" ] || [ -n "$AZURE" ] || AZURE=yes
fi

# --- checks before anything changes ------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run me as root: sudo $0 ${ARGS[*]}"

[ -r "$OS_RELEASE" ] || die "cannot read $OS_RELEASE: homewatt supports Raspberry Pi OS / Debian 64-bit, bookworm or trixie"
os_value() { sed -n "s/^$1=[\"']\{0,1\}\([^\"']*\)[\"']\{0,1\}\$/\1/p" "$OS_RELEASE" | head -n 1; }
os_id=$(os_value ID)
os_codename=$(os_value VERSION_CODENAME)
case "$os_id/$os_codename" in
  debian/bookworm | debian/trixie | raspbian/bookworm | raspbian/trixie) ;;
  *) die "unsupported OS ${os_id:-unknown} ${os_codename:-}: homewatt supports Raspberry Pi OS / Debian 64-bit, bookworm or trixie" ;;
esac
arch=$(uname -m)
case $arch in
  x86_64 | aarch64) ;;
  armv6l | armv7l) die "InfluxDB 2 needs a 64-bit OS: install Raspberry Pi OS (64-bit), or point the collector's sinks at an existing InfluxDB" ;;
  *) die "unsupported architecture $arch: homewatt supports arm64 and amd64" ;;
esac

free_mb=$(df -Pm "$FREE_SPACE_PATH" | awk 'NR == 2 {print $4}')
[ "${free_mb:-0}" -ge "$MIN_FREE_MB" ] || die "only ${free_mb:-0} MB free on $FREE_SPACE_PATH: homewatt needs at least $MIN_FREE_MB MB"

# Port 3000 (Grafana) and 8086 (InfluxDB) must be free, or ours (a re-run).
port_owner() {
  ss -Htlnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:(("\([^"]*\)".*/\1/p' | head -n 1
}
if [ "$ACTION" = install ]; then
  for port in 3000 8086; do
    owner=$(port_owner "$port")
    if [ -n "$owner" ] && ! docker ps --format '{{.Names}} {{.Ports}}' 2>/dev/null | grep -q "^homewatt-.*:$port->"; then
      die "port $port is taken by $owner: stop it, or uninstall it, then run me again"
    fi
  done
fi

# --- from a pipe: fetch the pinned release and run from there ----------------------------------
here=""
if [ -n "${BASH_SOURCE[0]:-}" ] && [ -f "${BASH_SOURCE[0]}" ]; then
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fi
if [ -z "$here" ] || [ ! -f "$here/ansible/site.yml" ]; then
  [ -n "$HOMEWATT_REPO_URL" ] || die "not run from a homewatt checkout: set HOMEWATT_REPO_URL to the repository to clone"
  step "Fetching homewatt $HOMEWATT_REF from $HOMEWATT_REPO_URL into $HOMEWATT_SRC"
  command -v git >/dev/null || { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq git >/dev/null; } \
    || die "cannot install git: no network to the package mirrors?"
  if [ -d "$HOMEWATT_SRC/.git" ]; then
    git -C "$HOMEWATT_SRC" fetch --quiet --depth 1 origin "$HOMEWATT_REF" \
      && git -C "$HOMEWATT_SRC" -c advice.detachedHead=false checkout --quiet --force FETCH_HEAD
  else
    git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$HOMEWATT_REF" "$HOMEWATT_REPO_URL" "$HOMEWATT_SRC"
  fi
  HOMEWATT_STEP_NO=$step_no exec bash "$HOMEWATT_SRC/install.sh" "${ARGS[@]}"
fi
cd "$here"

# --- uninstall ---------------------------------------------------------------------------------
if [ "$ACTION" = uninstall ]; then
  step "Stopping and removing the homewatt units"
  mapfile -t units < <(systemctl list-units --all --plain --no-legend 'homewatt-collector@*' 'homewatt-cost@*' 'homewatt-backup.*' | awk '{print $1}')
  [ "${#units[@]}" -eq 0 ] || systemctl disable --now "${units[@]}" >/dev/null 2>&1 || true
  rm -rf /etc/systemd/system/homewatt-collector@* /etc/systemd/system/homewatt-cost@* /etc/systemd/system/homewatt-backup.*
  systemctl daemon-reload
  rm -f /usr/local/bin/homewatt-collector /usr/local/bin/homewatt-backup
  step "Removing the InfluxDB and Grafana containers"
  if command -v docker >/dev/null; then
    docker rm -f homewatt-influxdb homewatt-grafana >/dev/null 2>&1 || true
  fi
  if [ "$PURGE" = true ]; then
    step "Deleting data, secrets and configs (--purge)"
    rm -rf /etc/homewatt /var/lib/homewatt /var/lib/private/homewatt-collector /var/lib/private/homewatt-backup \
      /var/lib/homewatt-collector /var/lib/homewatt-backup /opt/homewatt/venv /opt/homewatt/wheels /opt/homewatt/wheelhouse \
      /opt/homewatt/constraints.txt /opt/homewatt/collector-restart-pending \
      /var/log/homewatt
    printf '\nhomewatt is removed, its data and secrets too.\n'
  else
    printf '\nhomewatt is removed. Kept: data (/var/lib/homewatt, the outboxes), secrets and configs\n'
    printf '(/etc/homewatt). Remove them too with: sudo %s --uninstall --purge\n' "$0"
  fi
  exit 0
fi

# --- the answers -------------------------------------------------------------------------------
ask() { # ask VAR "question" default
  local var=$1 question=$2 default=$3 reply
  if [ -n "${!var}" ]; then return; fi
  # No terminal to ask on (a pipe, cron, `docker exec` without -t: /dev/tty exists but cannot
  # be opened): the default, as with --non-interactive.
  if [ "$NON_INTERACTIVE" = true ] || ! { : </dev/tty; } 2>/dev/null; then
    printf -v "$var" '%s' "$default"
    return
  fi
  read -r -p "$question [$default]: " reply </dev/tty || reply=""
  printf -v "$var" '%s' "${reply:-$default}"
}

step "What to install"
ask SITE "Site name (lowercase letters and digits, single hyphens)" home
if ! [[ $SITE =~ ^[a-z0-9]+(-[a-z0-9]+)*$ ]] || [ "${#SITE}" -gt 40 ]; then die "site '$SITE' must be 1-40 lowercase letters and digits in groups joined by single hyphens (home, cabin-2)"; fi
if [ -z "$DEMO" ] && [ -z "$METER_PORT" ]; then
  if [ "$NON_INTERACTIVE" = true ]; then
    die "--non-interactive needs --demo or --meter-port, --meter-model (and --meter-id)"
  fi
  ports=$(ls /dev/serial/by-id/ 2>/dev/null || true)
  if [ -n "$ports" ]; then
    printf 'RS485 adapters found:\n%s\n' "$ports"
    ask METER_PORT "Adapter (its /dev/serial/by-id/ path), or 'demo' for a simulated meter" "/dev/serial/by-id/$(printf '%s\n' "$ports" | head -n 1)"
  else
    printf 'No RS485 adapter found under /dev/serial/by-id/.\n'
    ask METER_PORT "Adapter path, or 'demo' for a simulated meter" demo
  fi
  [ "$METER_PORT" != demo ] || { DEMO=yes METER_PORT=""; }
fi
case $DEMO in yes | true | 1) DEMO=yes ;; *) DEMO="" ;; esac
if [ -z "$DEMO" ]; then
  [ -e "$METER_PORT" ] || die "the meter's adapter $METER_PORT does not exist (ls /dev/serial/by-id/ lists them)"
  ask METER_MODEL "Meter model (orno-we514, orno-we515, orno-we516, sdm120, sdm630)" orno-we515
  ask METER_ID "The meter's Modbus device id" 1
  if ! [[ $METER_ID =~ ^[0-9]+$ ]] || [ "$METER_ID" -lt 1 ] || [ "$METER_ID" -gt 247 ]; then
    die "--meter-id '$METER_ID' must be a Modbus device id, 1-247"
  fi
fi
if [ -z "$AZURE" ]; then
  if [ "$NON_INTERACTIVE" = true ]; then AZURE=no; else
    ask AZURE "Back up to Azure Blob Storage (yes/no)" no
  fi
fi
case $AZURE in yes | true | 1) AZURE=yes ;; *) AZURE=no ;; esac
if [ "$AZURE" = yes ]; then
  ask AZURE_ACCOUNT_URL "Storage account blob URL (terraform output -json backup_azure_config)" ""
  ask AZURE_CONTAINER "Container" "homewatt-$SITE"
  ask AZURE_SAS_FILE "A file holding the container SAS (terraform output -json backup_sas_tokens)" ""
  [ -n "$AZURE_ACCOUNT_URL" ] || die "Azure backups need --azure-account-url"
  if [ -n "$AZURE_SAS_FILE" ]; then
    [ -r "$AZURE_SAS_FILE" ] || die "--azure-sas-file $AZURE_SAS_FILE: no such readable file"
  elif [ ! -s /etc/homewatt/credentials/azure-sas ]; then
    die "Azure backups need --azure-sas-file (a file holding the SAS; never pass the SAS itself)"
  fi
fi
ask GRAFANA_LAN "Show Grafana to the home network (yes/no)" yes
case $GRAFANA_LAN in yes | true | 1) GRAFANA_LAN=yes ;; *) GRAFANA_LAN=no ;; esac

# Plugs and cloud accounts: each its own collector instance (plugs, emporia).
ask SHELLY_PLUGS "Shelly plugs to add, as NAME=ADDRESS separated by spaces (e.g. kettle=192.168.1.50), or none" none
[ "$SHELLY_PLUGS" != none ] || SHELLY_PLUGS=""
declare -A shelly_host=() shelly_password_file=()
shelly_names=()
for plug in $SHELLY_PLUGS; do
  name=${plug%%=*} host=${plug#*=}
  if [ "$name" = "$plug" ] || ! [[ $name =~ ^[a-z0-9][a-z0-9-]*$ ]] || ! [[ $host =~ ^[A-Za-z0-9.:-]+$ ]]; then
    die "--shelly-plug '$plug' must be NAME=ADDRESS: NAME lowercase letters, digits and '-', ADDRESS an IP address or host name"
  fi
  [ -z "${shelly_host[$name]:-}" ] || die "--shelly-plug: two plugs are named $name"
  shelly_host[$name]=$host
  shelly_names+=("$name")
done
for given in $SHELLY_PASSWORD_FILES; do
  name=${given%%=*} file=${given#*=}
  if [ "$name" = "$given" ] || [ -z "${shelly_host[$name]:-}" ]; then die "--shelly-password-file '$given' must be NAME=FILE for a plug given with --shelly-plug"; fi
  if ! [ -r "$file" ] || ! [ -s "$file" ]; then die "--shelly-password-file $name=$file: no such readable, non-empty file"; fi
  shelly_password_file[$name]=$file
done
# A password typed here goes straight into its credential file, never echoed or logged.
declare -A shelly_password=()
ask_password() { # ask_password "question": the reply on stdout, read without echo
  local reply=""
  read -r -s -p "$1: " reply </dev/tty || reply=""
  printf '\n' >/dev/tty
  printf '%s' "$reply"
}
interactive=false
if [ "$NON_INTERACTIVE" = false ] && { : </dev/tty; } 2>/dev/null; then interactive=true; fi
for name in "${shelly_names[@]}"; do
  if [ -z "${shelly_password_file[$name]:-}" ] && [ ! -s "$CREDENTIALS_DIR/shelly-$name" ] && [ "$interactive" = true ]; then
    shelly_password[$name]=$(ask_password "Password of Shelly $name (empty: it has none)")
  fi
done
ask EMPORIA_USERNAME "Emporia Vue account to add (the app's e-mail login), or none" none
[ "$EMPORIA_USERNAME" != none ] || EMPORIA_USERNAME=""
if [ -n "$EMPORIA_USERNAME" ]; then
  [[ $EMPORIA_USERNAME =~ ^[^[:space:]\"]+$ ]] || die "--emporia-username '$EMPORIA_USERNAME' must be the app's login, without spaces or quotes"
  emporia_password=""
  if [ -n "$EMPORIA_PASSWORD_FILE" ]; then
    if ! [ -r "$EMPORIA_PASSWORD_FILE" ] || ! [ -s "$EMPORIA_PASSWORD_FILE" ]; then
      die "--emporia-password-file $EMPORIA_PASSWORD_FILE: no such readable, non-empty file"
    fi
  elif [ ! -s "$CREDENTIALS_DIR/emporia-password" ]; then
    [ "$interactive" = true ] || die "the Emporia account needs --emporia-password-file (a file holding its password; never pass the password itself)"
    emporia_password=$(ask_password "Password of the Emporia account $EMPORIA_USERNAME")
    [ -n "$emporia_password" ] || die "the Emporia account needs its password"
  fi
fi

# --- the inventory -----------------------------------------------------------------------------
step "The inventory ansible/inventories/local"
inventory=ansible/inventories/local
if [ ! -d "$inventory" ]; then
  mkdir -p "$inventory/host_vars"
  cp -r ansible/inventories/example/group_vars "$inventory/"
  cat >"$inventory/hosts.yml" <<'EOF'
---
# This machine (install.sh made this file once; it never overwrites it).
all:
  children:
    homewatt:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: /usr/bin/python3
EOF
  printf 'created %s from the example\n' "$inventory"
else
  printf 'kept %s (yours)\n' "$inventory"
fi
# install.sh's own answers: this file only, rewritten each run (no secret is in it).
mkdir -p "$inventory/host_vars/localhost"
{
  printf -- '---\n# Written by install.sh from its answers on every run; put your own settings in other files.\n'
  printf 'collector_site: %s\n' "$SITE"
  if [ -n "$DEMO" ]; then
    printf 'collector_instances:\n  - name: demo\n    source: {kind: demo, device: demo-meter}\n'
  else
    printf 'collector_instances:\n  - name: main\n    source:\n      kind: modbus\n      port: "%s"\n' "$METER_PORT"
    printf '      meters:\n        - {name: main, model: "%s", device_id: %s}\n' "$METER_MODEL" "$METER_ID"
  fi
  if [ "${#shelly_names[@]}" -gt 0 ]; then
    printf '  - name: plugs\n    source:\n      kind: shelly\n      devices:\n'
    for name in "${shelly_names[@]}"; do
      printf '        - {name: %s, host: "%s", interval_s: 5' "$name" "${shelly_host[$name]}"
      if [ -n "${shelly_password_file[$name]:-}" ] || [ -s "$CREDENTIALS_DIR/shelly-$name" ] || [ -n "${shelly_password[$name]:-}" ]; then
        printf ', password_credential: shelly-%s' "$name"
      fi
      printf '}\n'
    done
  fi
  if [ -n "$EMPORIA_USERNAME" ]; then
    printf '  - name: emporia\n    source:\n      kind: emporia\n      accounts:\n'
    printf '        - {name: %s, username: "%s", password_credential: emporia-password}\n' "$SITE" "$EMPORIA_USERNAME"
  fi
  printf 'grafana_listen_address: %s\n' "$([ "$GRAFANA_LAN" = yes ] && echo 0.0.0.0 || echo 127.0.0.1)"
  # Each daily backup keeps this file too (a Pi rebuilt from its backup gets its answers back).
  printf 'backup_config_files_install_answers: "%s"\n' "$here/$inventory/host_vars/localhost/install.yml"
  if [ "$AZURE" = yes ]; then
    printf 'backup_azure_enabled: true\nbackup_azure_account_url: "%s"\nbackup_azure_container: "%s"\n' \
      "$AZURE_ACCOUNT_URL" "$AZURE_CONTAINER"
  else
    printf 'backup_azure_enabled: false\n'
  fi
} >"$inventory/host_vars/localhost/install.yml"

# The pollers' passwords, root-only, each in the credential file its instance loads.
write_secret() { # write_secret NAME < secret (its first line)
  install -d -m 0700 "$CREDENTIALS_DIR"
  (umask 077 && head -n 1 >"$CREDENTIALS_DIR/$1.tmp" && mv -f "$CREDENTIALS_DIR/$1.tmp" "$CREDENTIALS_DIR/$1")
}
for name in "${shelly_names[@]}"; do
  if [ -n "${shelly_password_file[$name]:-}" ]; then
    write_secret "shelly-$name" <"${shelly_password_file[$name]}"
  elif [ -n "${shelly_password[$name]:-}" ]; then
    printf '%s\n' "${shelly_password[$name]}" | write_secret "shelly-$name"
  fi
done
if [ -n "$EMPORIA_USERNAME" ]; then
  if [ -n "$EMPORIA_PASSWORD_FILE" ]; then
    write_secret emporia-password <"$EMPORIA_PASSWORD_FILE"
  elif [ -n "$emporia_password" ]; then
    printf '%s\n' "$emporia_password" | write_secret emporia-password
  fi
fi

if [ "$AZURE" = yes ] && [ -n "$AZURE_SAS_FILE" ]; then
  install -d -m 0700 /etc/homewatt /etc/homewatt/credentials
  chmod 0755 /etc/homewatt
  (umask 077 && head -n 1 "$AZURE_SAS_FILE" >/etc/homewatt/credentials/azure-sas)
fi

if [ "$ONLY_INVENTORY" = true ]; then
  printf 'inventory and credentials written (HOMEWATT_ONLY_INVENTORY): nothing installed\n'
  exit 0
fi

# --- prerequisites and Ansible -----------------------------------------------------------------
step "Installing the prerequisites (apt)"
apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null || die "apt-get update failed: no network to the package mirrors?"
apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-venv git iproute2 ca-certificates >/dev/null \
  || die "apt-get install failed: no network to the package mirrors?"

step "Installing Ansible, pinned, into $ANSIBLE_VENV"
[ -x "$ANSIBLE_VENV/bin/python" ] || python3 -m venv "$ANSIBLE_VENV"
# Only Ansible itself, at the versions tools/ansible/requirements.txt pins (the tests' set);
# pip takes no extras in a constraints file (molecule-plugins[docker]), so they are cut off.
# --no-compile: the ansible package is some 50,000 files, which pip would all byte-compile
# (under load here the step took over 30 min); Python compiles what Ansible imports on use.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
sed -E 's/\[[^]]*\]//' tools/ansible/requirements.txt >"$constraints"
"$ANSIBLE_VENV/bin/pip" install --quiet --disable-pip-version-check --no-compile -c "$constraints" ansible ansible-core \
  || die "pip could not install Ansible (pip's lines above say why; no network to PyPI?)"

# --- the play ----------------------------------------------------------------------------------
step "Running ansible/site.yml on this machine (a few minutes the first time)"
extra=()
[ "$RESET_GRAFANA" = false ] || extra+=(-e '{"homewatt_rotate_secrets": ["grafana-admin-password"]}')
# The play's output is also kept, root-only, for a look later (no secret is in it: no_log).
log_dir=/var/log/homewatt
install -d -m 0700 "$log_dir"
export ANSIBLE_LOG_PATH=$log_dir/install.log
(umask 077 && : >>"$ANSIBLE_LOG_PATH")
(cd ansible && "$ANSIBLE_VENV/bin/ansible-playbook" -i inventories/local site.yml "${extra[@]}" ${HOMEWATT_EXTRA_VARS:+-e "$HOMEWATT_EXTRA_VARS"}) \
  || die "the play failed: its last task above says why (all of it: $ANSIBLE_LOG_PATH); fix it and run me again (safe to re-run)"

# --- where to look -----------------------------------------------------------------------------
step "Done"
lan=""
if [ "$GRAFANA_LAN" = yes ]; then
  lan=$(hostname -I 2>/dev/null | awk '{print $1}')
fi
printf 'Grafana:    http://127.0.0.1:3000%s (user admin)\n' "${lan:+  and from your network: http://$lan:3000}"
printf 'Password:   sudo cat /etc/homewatt/credentials/grafana-admin-password\n'
instance=$([ -n "$DEMO" ] && echo demo || echo main)
printf 'Collector:  systemctl status homewatt-collector@%s\n' "$instance"
printf '            journalctl -u homewatt-collector@%s -f\n' "$instance"
printf 'Backups:    systemctl list-timers homewatt-backup.timer\n'
