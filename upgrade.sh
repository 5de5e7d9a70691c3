#!/usr/bin/env bash
# Upgrade a docker compose install of dd0c/alert in place:
#   ./upgrade.sh
# 1. backs up PostgreSQL (pg_dump, custom format) into backups/, 2. pulls and builds the
# new images, 3. migrates once (migrations only add: the running roles keep working),
# 4. replaces the roles one by one, consumers first, each waited for until healthy.
# Set DD0C_IMAGE in .env to a released image to upgrade to it.
set -euo pipefail
cd "$(dirname "$0")"

die() {
  echo "upgrade.sh: $*" >&2
  exit 1
}

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker compose version >/dev/null 2>&1 || die "the docker compose plugin is missing"
[[ -f docker-compose.yml ]] || die "run me from the dd0c-alert folder (no docker-compose.yml here)"
[[ -f .env ]] || die "no .env here: install first (./install.sh)"

# --- 1. backup -----------------------------------------------------------------------
mkdir -p backups
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
backup="backups/dd0c-${stamp}.dump"
(
  umask 077
  docker compose exec -T postgres pg_dump -U postgres -d dd0c --format=custom >"$backup"
)
[[ -s "$backup" ]] || die "the backup $backup is empty: not upgrading"
echo "Backed up PostgreSQL to $backup (restore: pg_restore --clean -d dd0c)."

# --- 2. new images -------------------------------------------------------------------
docker compose pull --ignore-buildable
docker compose build

# --- 3. migrate once -----------------------------------------------------------------
docker compose run --rm migrate

# --- 4. roles, in order --------------------------------------------------------------
# Queue consumers first (they read what the new schema holds), then the scheduler,
# then what takes traffic, then the TLS front.
for service in correlate notify cron api ingest caddy; do
  echo "Replacing $service..."
  docker compose up -d --no-deps --wait "$service"
done
echo "Upgrade done. Backup kept at $backup."
