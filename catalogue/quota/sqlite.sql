-- The quotas of every host of one machine (the command, a batch, the
-- gateway, the Node and Python packages) in one SQLite file of the state
-- directory, `quotas.sqlite3`. Every host runs these statements and no
-- other, one decision per `BEGIN IMMEDIATE` transaction (the file's write
-- lock, held by one process at a time and released by the OS if it dies).
-- The file is in WAL mode with `synchronous = FULL`: a decision that
-- admitted a request is on disk before the request leaves.
--
-- A statement starts at a line `-- name: NAME` and ends at the next one;
-- its parameters are `?`, bound in order. Times are milliseconds on the
-- store's clock (see `anchor`).

-- name: schema
CREATE TABLE IF NOT EXISTS admitted (
  quota TEXT NOT NULL,   -- its name: `ip 2000/10m`, `group insee (token …)`
  at INTEGER NOT NULL    -- when a request it admitted left
);
CREATE INDEX IF NOT EXISTS admitted_by_quota ON admitted (quota, at);
-- What the server said of a quota: `remaining` requests until `reset`.
CREATE TABLE IF NOT EXISTS server (
  quota TEXT PRIMARY KEY,
  remaining INTEGER NOT NULL,
  reset INTEGER NOT NULL
);
-- The store's clock: since this boot, `wall` at the instant the monotonic
-- clock read `mono`. Now is `wall + (monotonic now - mono)`: a jump of the
-- wall clock moves no window. A new boot anchors again, never before the
-- latest admitted request.
CREATE TABLE IF NOT EXISTS clock (
  boot TEXT PRIMARY KEY,
  wall INTEGER NOT NULL,
  mono INTEGER NOT NULL
);

-- name: anchor
SELECT wall, mono FROM clock WHERE boot = ?;

-- name: latest
SELECT coalesce(max(at), 0) FROM admitted;

-- name: forget_anchors
DELETE FROM clock;

-- name: set_anchor
INSERT INTO clock (boot, wall, mono) VALUES (?, ?, ?);

-- name: expire
DELETE FROM admitted WHERE quota = ? AND at < ?;

-- name: count
SELECT count(*), min(at) FROM admitted WHERE quota = ?;

-- name: hint
SELECT remaining, reset FROM server WHERE quota = ?;

-- name: admit
INSERT INTO admitted (quota, at) VALUES (?, ?);

-- name: spend
UPDATE server SET remaining = max(remaining - 1, 0) WHERE quota = ? AND reset > ?;

-- name: set_hint
INSERT INTO server (quota, remaining, reset) VALUES (?, ?, ?)
  ON CONFLICT (quota) DO UPDATE SET remaining = excluded.remaining, reset = excluded.reset;


-- name: usage
SELECT count(*), min(at) FROM admitted WHERE quota = ? AND at >= ?;
