# Shared by ops/run and ops/test: provisions what classbell needs on a
# Debian/Ubuntu machine. Source it; it defines functions and sets no traps.
#
# Unless CLASSBELL_DATABASE_URL / CLASSBELL_REDIS_URL say otherwise, classbell
# gets a PostgreSQL cluster and a Redis of its own, kept under $STATE_DIR and
# listening on 127.0.0.1 ports that do not clash with system services.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${CLASSBELL_CACHE_DIR:-$HOME/.cache/classbell}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE_DIR/target}
# Stamped into the binary (classbell_build_info) by the builds these scripts run.
export CLASSBELL_GIT_COMMIT=${CLASSBELL_GIT_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
LOCAL_PG_PORT=${CLASSBELL_LOCAL_PG_PORT:-55432}
LOCAL_REDIS_PORT=${CLASSBELL_LOCAL_REDIS_PORT:-56379}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE... — installs the Debian packages that are missing.
APT_UPDATED=
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  log "installing ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null || die "cargo is not installed (Rust 1.95 or newer is needed: https://rustup.rs)"
  apt_install gcc libc6-dev
}

# Where project-local services keep their data. PostgreSQL refuses to run as
# root, so when we are root the data must be reachable by the postgres user.
state_dir() {
  local dir=${CLASSBELL_STATE_DIR:-$ROOT/.run}
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    dir=/var/tmp/classbell-$(printf '%s' "$ROOT" | sha1sum | cut -c1-12)
    mkdir -p "$dir"
  fi
  printf '%s' "$dir"
}

# The newest installed PostgreSQL server's bin folder (empty when only the client is there).
pg_bindir() {
  local initdb
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  [ -n "$initdb" ] && dirname "$initdb"
  return 0
}

# Runs a PostgreSQL server tool as the user that owns the cluster.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ensure_postgres — sets PG_ADMIN_URL (a superuser URL without a database name).
ensure_postgres() {
  if [ -n "${CLASSBELL_DATABASE_URL:-}" ]; then
    PG_ADMIN_URL=${CLASSBELL_DATABASE_URL%/*}
    return 0
  fi
  PG_ADMIN_URL="postgres://postgres@127.0.0.1:$LOCAL_PG_PORT"
  [ -n "$(pg_bindir)" ] || apt_install postgresql
  apt_install postgresql-client
  local bin; bin=$(pg_bindir)
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$LOCAL_PG_PORT"; then
    psql "$PG_ADMIN_URL/postgres" -qtAc "SELECT 1" >/dev/null 2>&1 && return 0
    # Started from a checkout since deleted: it accepts connections but its
    # data directory is gone. Ours starts in its place.
    local stale; stale=$(pgrep -f -- "-p $LOCAL_PG_PORT -c listen_addresses=127.0.0.1" | head -n 1 || true)
    [ -n "$stale" ] || die "a PostgreSQL on port $LOCAL_PG_PORT answers no queries; stop it"
    log "stopping a PostgreSQL on port $LOCAL_PG_PORT whose data directory is gone"
    kill -INT "$stale"
    local _
    for _ in $(seq 100); do
      "$bin/pg_isready" -q -h 127.0.0.1 -p "$LOCAL_PG_PORT" || break
      sleep 0.1
    done
  fi
  local dir; dir=$(state_dir)/postgres
  if [ ! -f "$dir/PG_VERSION" ]; then
    log "creating a project-local PostgreSQL cluster in $dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
    as_pg "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --no-instructions >/dev/null
  fi
  log "starting PostgreSQL on 127.0.0.1:$LOCAL_PG_PORT"
  as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $LOCAL_PG_PORT -c listen_addresses=127.0.0.1 -k $dir -c max_connections=300" start >/dev/null \
    || { tail -n 20 "$dir/server.log" >&2; die "PostgreSQL did not start"; }
}

# ensure_database NAME — creates the database on the provisioned server if missing.
ensure_database() {
  local name=$1
  psql "$PG_ADMIN_URL/postgres" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 \
    || psql "$PG_ADMIN_URL/postgres" -qc "CREATE DATABASE \"$name\"" >/dev/null
}

# ensure_redis — sets REDIS_URL.
ensure_redis() {
  if [ -n "${CLASSBELL_REDIS_URL:-}" ]; then
    REDIS_URL=$CLASSBELL_REDIS_URL
    return 0
  fi
  REDIS_URL="redis://127.0.0.1:$LOCAL_REDIS_PORT"
  command -v redis-server >/dev/null || apt_install redis-server
  command -v redis-cli >/dev/null || apt_install redis-tools
  if redis-cli -p "$LOCAL_REDIS_PORT" ping >/dev/null 2>&1; then
    return 0
  fi
  local dir; dir=$(state_dir)/redis
  mkdir -p "$dir"
  log "starting Redis on 127.0.0.1:$LOCAL_REDIS_PORT"
  redis-server --port "$LOCAL_REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$dir" \
    --save "" --appendonly no --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >/dev/null
  local _
  for _ in $(seq 50); do
    redis-cli -p "$LOCAL_REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "Redis did not start"
}

# ensure_venv — a Python virtualenv for the test servers from PyPI; sets VENV.
ensure_venv() {
  VENV=$CACHE_DIR/venv
  if [ ! -x "$VENV/bin/python" ]; then
    command -v python3 >/dev/null || apt_install python3
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
  fi
  "$VENV/bin/python" -c "import aiosmtpd" 2>/dev/null \
    || "$VENV/bin/pip" install -q "aiosmtpd==1.4.6"
}

free_port() {
  "${VENV:-}/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ensure_garage — the Garage S3 server (built once from crates.io, ~20 min on
# two cores, then cached); sets GARAGE.
ensure_garage() {
  GARAGE=$CACHE_DIR/tools/bin/garage
  [ -x "$GARAGE" ] && return 0
  log "building the Garage S3 test server once (cached in $CACHE_DIR/tools)"
  env -u CARGO_TARGET_DIR cargo install garage --version 2.5.0 --locked --root "$CACHE_DIR/tools" --quiet
}

# start_garage DIR — a single-node Garage in DIR; sets S3_ENDPOINT, S3_ACCESS_KEY,
# S3_SECRET_KEY and GARAGE_PID.
start_garage() {
  local dir=$1 s3_port rpc_port
  s3_port=$(free_port)
  rpc_port=$(free_port)
  mkdir -p "$dir/meta" "$dir/data"
  cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
TOML
  S3_ENDPOINT="http://127.0.0.1:$s3_port"
  S3_ACCESS_KEY=GKclassbelltest
  S3_SECRET_KEY=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  GARAGE_DEFAULT_ACCESS_KEY=$S3_ACCESS_KEY GARAGE_DEFAULT_SECRET_KEY=$S3_SECRET_KEY RUST_LOG=warn \
    "$GARAGE" -c "$dir/garage.toml" server --single-node --default-access-key >"$dir/garage.log" 2>&1 &
  GARAGE_PID=$!
  local _
  for _ in $(seq 100); do
    curl -s -o /dev/null "$S3_ENDPOINT" && return 0
    sleep 0.1
  done
  tail -n 20 "$dir/garage.log" >&2
  die "Garage did not start"
}

# ensure_browser — Debian's Chromium, a font with Chinese characters (the
# zh-CN pages and their screenshots), and, from the npm registry,
# playwright-core to drive it and axe-core to check each page's accessibility
# (tests/e2e/package-lock.json).
ensure_browser() {
  [ -x /usr/bin/chromium ] || apt_install chromium
  apt_install fonts-wqy-microhei
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d "$ROOT/tests/e2e/node_modules/playwright-core" ] || [ ! -d "$ROOT/tests/e2e/node_modules/axe-core" ]; then
    log "installing playwright-core and axe-core (npm)"
    (cd "$ROOT/tests/e2e" && npm ci --no-audit --no-fund --silent)
  fi
}
