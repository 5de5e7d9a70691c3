#!/usr/bin/env bash
# Install dd0c/alert with docker compose on this machine:
#   ./install.sh [--domain alerts.example.com --acme-email ops@example.com]
#                [--tenant NAME] [--owner-email ADDRESS]
# Checks the prerequisites, writes .env with fresh secrets (an existing .env is kept
# as it is), starts the stack, waits until it is ready, creates the first tenant and
# its owner (once), and prints the URL. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

domain="${DD0C_SITE_ADDRESS:-localhost}"
acme_email="${DD0C_TLS_EMAIL:-}"
tenant="${DD0C_FIRST_TENANT:-default}"
owner_email="${DD0C_OWNER_EMAIL:-admin@example.com}"
timeout="${DD0C_INSTALL_TIMEOUT:-300}"
state=".dd0c-install"

die() {
  echo "install.sh: $*" >&2
  exit 1
}

while (($#)); do
  case "$1" in
    --domain) domain="${2:?--domain needs a value}"; shift 2 ;;
    --acme-email) acme_email="${2:?--acme-email needs a value}"; shift 2 ;;
    --tenant) tenant="${2:?--tenant needs a value}"; shift 2 ;;
    --owner-email) owner_email="${2:?--owner-email needs a value}"; shift 2 ;;
    -h | --help) sed -n '2,7p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# --- prerequisites -------------------------------------------------------------------
command -v docker >/dev/null 2>&1 || die "docker is not installed (https://docs.docker.com/engine/install/)"
docker compose version >/dev/null 2>&1 || die "the docker compose plugin is missing (apt-get install docker-compose-plugin)"
command -v openssl >/dev/null 2>&1 || die "openssl is not installed (apt-get install openssl)"
[[ -f docker-compose.yml ]] || die "run me from the dd0c-alert folder (no docker-compose.yml here)"

# --- secrets -------------------------------------------------------------------------
hex() { openssl rand -hex "$1"; }
# A Fernet key: 32 random bytes, URL-safe base64.
fernet() { openssl rand -base64 32 | tr '+/' '-_'; }

if [[ -e .env ]]; then
  echo "Keeping the existing .env (its secrets are not changed)."
else
  tls="internal"
  [[ -n "$acme_email" ]] && tls="$acme_email"
  (
    umask 077
    cat >.env <<EOF
# Written by install.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Keep a copy of DD0C_SECRET_KEY
# apart from your backups: without it stored integration secrets cannot be read.
POSTGRES_PASSWORD=$(hex 24)
OWNER_DB_PASSWORD=$(hex 24)
APP_DB_PASSWORD=$(hex 24)
DD0C_SECRET_KEY=$(fernet)
DD0C_JWT_SECRET=$(hex 32)
S3_ACCESS_KEY=dd0c$(hex 8)
S3_SECRET_KEY=$(hex 24)
DD0C_SITE_ADDRESS=$domain
DD0C_TLS=$tls
DD0C_PUBLIC_URL=https://$domain
EOF
  )
  chmod 600 .env
  echo "Wrote .env with new secrets (mode 600)."
fi

# --- start and wait ------------------------------------------------------------------
docker compose up -d --build

echo "Waiting for the services to be healthy (up to ${timeout}s)..."
deadline=$((SECONDS + timeout))
while :; do
  health="$(docker compose ps --format '{{.Service}} {{.Health}}' 2>/dev/null || true)"
  waiting="$(awk '$1 ~ /^(ingest|correlate|notify|api|cron|caddy)$/ && $2 != "healthy"' <<<"$health")"
  if [[ -n "$health" && -z "$waiting" ]] && grep -q '^api healthy' <<<"$health"; then
    break
  fi
  ((SECONDS < deadline)) || die "not healthy after ${timeout}s:"$'\n'"${waiting:-$health}"$'\n'"see: docker compose logs"
  sleep 3
done
echo "All services are healthy."

# --- first tenant and owner (once) ---------------------------------------------------
if [[ -s "$state" ]]; then
  echo "The first tenant and owner were created before ($state); not again."
else
  created="$(docker compose run --rm -T api tenant create "$tenant" --json)"
  tenant_id="$(sed -n 's/.*"tenant_id": *"\([^"]*\)".*/\1/p' <<<"$created")"
  api_key="$(sed -n 's/.*"api_key": *"\([^"]*\)".*/\1/p' <<<"$created")"
  [[ -n "$tenant_id" ]] || die "could not create the tenant: $created"
  password="$(openssl rand -base64 18)"
  # The password goes through standard input, never the command line (ps, logs).
  printf '%s\n' "$password" |
    docker compose run --rm -T api user create --tenant "$tenant_id" --email "$owner_email" \
      --role owner --password-stdin >/dev/null
  (
    umask 077
    printf 'tenant_id=%s\nowner_email=%s\n' "$tenant_id" "$owner_email" >"$state"
  )
  cat <<EOF

First tenant "$tenant": $tenant_id
API key (shown once, store it now): $api_key
Owner: $owner_email
Password (shown once, change it after signing in): $password
EOF
fi

site="$(sed -n 's/^DD0C_SITE_ADDRESS=//p' .env | tail -n 1)"
cat <<EOF

dd0c/alert is running: https://${site:-$domain}/
API docs: https://${site:-$domain}/docs
With the default local CA, trust Caddy's root certificate:
  docker compose cp caddy:/data/caddy/pki/authorities/local/root.crt dd0c-root.crt
EOF
