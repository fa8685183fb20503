#!/bin/bash
# Entrypoint of the homewatt InfluxDB 2 stand-in image (NOT InfluxDB). It follows
# influxdata-docker's influxdb/2.7/entrypoint.sh: arguments other than influxd's run as given;
# the data and config directories are created and given to the influxdb user (uid 1000);
# a first start with DOCKER_INFLUXDB_INIT_MODE sets the instance up (here `influxd
# standin-init`, where the real script boots a temporary influxd and runs `influx setup`);
# the server then runs as influxdb, stepped down with gosu.
set -eo pipefail

# Read the secrets from files as root, like the real script (they may be root-only files).
if [ -n "${DOCKER_INFLUXDB_INIT_PASSWORD_FILE}" ]; then [ -e "${DOCKER_INFLUXDB_INIT_PASSWORD_FILE}" ] && DOCKER_INFLUXDB_INIT_PASSWORD=$(cat "${DOCKER_INFLUXDB_INIT_PASSWORD_FILE}") || echo "DOCKER_INFLUXDB_INIT_PASSWORD_FILE defined, but file not existing, skipping."; fi
if [ -n "${DOCKER_INFLUXDB_INIT_USERNAME_FILE}" ]; then [ -e "${DOCKER_INFLUXDB_INIT_USERNAME_FILE}" ] && DOCKER_INFLUXDB_INIT_USERNAME=$(cat "${DOCKER_INFLUXDB_INIT_USERNAME_FILE}") || echo "DOCKER_INFLUXDB_INIT_USERNAME_FILE defined, but file not existing, skipping."; fi
if [ -n "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE}" ]; then [ -e "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE}" ] && DOCKER_INFLUXDB_INIT_ADMIN_TOKEN=$(cat "${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE}") || echo "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE defined, but file not existing, skipping."; fi

# The real script's log format: ts=... lvl=... msg="..." system=docker key: value...
log() {
  local level=$1 msg=$2 attrs="system=docker"
  shift 2
  while [ "$#" -gt 1 ]; do
    attrs="${attrs} $1: $2"
    shift 2
  done
  echo "ts=$(date --utc +'%FT%T.%NZ') lvl=${level} msg=\"${msg}\" ${attrs}" >&2
}

# The same precedence as the real script's influxd::config::get for the two paths it needs:
# a command line flag, then the environment, then the image's default config.
flag_value() {
  local key=$1
  shift
  while [ "$#" -gt 0 ]; do
    case $1 in
      --"${key}"=*) echo "${1#--"${key}"=}"; return ;;
      --"${key}") echo "$2"; return ;;
      *) shift ;;
    esac
  done
  return 1
}

main() {
  local run_influxd=false
  if [[ $# = 0 || "$1" = run || "${1:0:1}" = '-' ]]; then
    run_influxd=true
  elif [[ "$1" = influxd && ($# = 1 || "$2" = run || "${2:0:1}" = '-') ]]; then
    run_influxd=true
    shift 1
  fi
  if ! ${run_influxd}; then
    exec "$@"
  fi
  if [ "$1" = run ]; then
    shift 1
  fi

  local bolt_path engine_path
  bolt_path=$(flag_value bolt-path "$@") || bolt_path=${INFLUXD_BOLT_PATH:-/var/lib/influxdb2/influxd.bolt}
  engine_path=$(flag_value engine-path "$@") || engine_path=${INFLUXD_ENGINE_PATH:-/var/lib/influxdb2/engine}
  local bolt_dir
  bolt_dir=$(dirname "${bolt_path}")

  # create_directories: the data directories 0700, the config volume 0775, owned by influxdb
  mkdir -p "${bolt_dir}" "${engine_path}"
  chmod 700 "${bolt_dir}" "${engine_path}" || :
  mkdir -p /etc/influxdb2 || :
  chmod 775 /etc/influxdb2 || :

  # the real script's check is "${BOLT_PATH}" exists; the stand-in's state file takes its place
  if [ -f "${bolt_dir}/standin.sqlite" ]; then
    log info "found existing stand-in state, skipping setup wrapper" state_path "${bolt_dir}/standin.sqlite"
  elif [ -z "${DOCKER_INFLUXDB_INIT_MODE}" ]; then
    log warn "state not found, but DOCKER_INFLUXDB_INIT_MODE not specified, skipping setup wrapper" state_path "${bolt_dir}/standin.sqlite"
  else
    DOCKER_INFLUXDB_INIT_USERNAME="${DOCKER_INFLUXDB_INIT_USERNAME}" \
      DOCKER_INFLUXDB_INIT_PASSWORD="${DOCKER_INFLUXDB_INIT_PASSWORD}" \
      DOCKER_INFLUXDB_INIT_ADMIN_TOKEN="${DOCKER_INFLUXDB_INIT_ADMIN_TOKEN}" \
      influxd standin-init "$@"
  fi

  if [ "$(id -u)" = 0 ]; then
    find "${bolt_dir}" \! -user influxdb -exec chown influxdb '{}' +
    find "${engine_path}" \! -user influxdb -exec chown influxdb '{}' +
    find /etc/influxdb2 \! -user influxdb -exec chown influxdb '{}' +
    exec gosu influxdb "${BASH_SOURCE[0]}" "$@"
  fi
  exec influxd "$@"
}

main "$@"
