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
-- One transaction, so that hosts opening the file together see it whole.
BEGIN IMMEDIATE;
-- Each quota's requests, counted in fixed buckets: a thousandth of the
-- quota's window wide (`admit`), each with its count and when its latest
-- request left. A bucket counts until that latest request has left the
-- window: never more in a window than the quota allows, and at most one
-- bucket's width (0.1 % of the window) longer than each request needs.
-- A quota holds at most a thousand buckets, whatever the traffic.
CREATE TABLE IF NOT EXISTS buckets (
  quota TEXT NOT NULL,   -- its name: `ip 2000/10m`, `group insee (token …)`
  start INTEGER NOT NULL,
  count INTEGER NOT NULL,
  last INTEGER NOT NULL,
  PRIMARY KEY (quota, start)
) WITHOUT ROWID;
-- Each quota's count, the sum of its buckets, kept by the triggers below:
-- a decision reads one row, not the window.
CREATE TABLE IF NOT EXISTS totals (
  quota TEXT PRIMARY KEY,
  count INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS bucket_added AFTER INSERT ON buckets BEGIN
  INSERT INTO totals (quota, count) VALUES (new.quota, new.count)
    ON CONFLICT (quota) DO UPDATE SET count = count + excluded.count;
END;
CREATE TRIGGER IF NOT EXISTS bucket_grown AFTER UPDATE OF count ON buckets BEGIN
  UPDATE totals SET count = count + new.count - old.count WHERE quota = new.quota;
END;
CREATE TRIGGER IF NOT EXISTS bucket_gone AFTER DELETE ON buckets BEGIN
  UPDATE totals SET count = count - old.count WHERE quota = old.quota;
END;
-- The departures that hosts before the buckets kept one per row: each
-- becomes a bucket of its own instant. The old table stays, empty, and
-- refuses a row: a host of before, still running on this file, fails
-- closed (nothing leaves) rather than counts apart.
CREATE TABLE IF NOT EXISTS admitted (quota TEXT NOT NULL, at INTEGER NOT NULL);
INSERT INTO buckets (quota, start, count, last)
  SELECT quota, at, count(*), at FROM admitted WHERE true GROUP BY quota, at
  ON CONFLICT (quota, start) DO UPDATE SET count = count + excluded.count, last = max(last, excluded.last);
DELETE FROM admitted;
CREATE TRIGGER IF NOT EXISTS admitted_by_an_older_host BEFORE INSERT ON admitted BEGIN
  SELECT RAISE(ABORT, 'this quota state counts in buckets now: upgrade this host to share it');
END;
-- The members of each shared pool (a per-IP quota that a gateway's
-- applications share, fairly: host/runtime/src/quota/fair.rs), each with
-- its weight and until when it wants more than it gets. Each member's
-- requests are counted in `buckets` under its own name.
CREATE TABLE IF NOT EXISTS members (
  pool TEXT NOT NULL,
  member TEXT NOT NULL,
  weight REAL NOT NULL,
  hungry_until INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (pool, member)
) WITHOUT ROWID;
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
COMMIT;

-- name: anchor
SELECT wall, mono FROM clock WHERE boot = ?;

-- name: latest
SELECT coalesce(max(last), 0) FROM buckets;

-- name: forget_anchors
DELETE FROM clock;

-- name: set_anchor
INSERT INTO clock (boot, wall, mono) VALUES (?, ?, ?);

-- name: expire
-- The buckets of quota ? whose latest request left before ? (buckets do
-- not overlap: those start before it too, which the key finds).
WITH given (name, cutoff) AS (VALUES (?, ?))
DELETE FROM buckets WHERE quota = (SELECT name FROM given)
  AND start < (SELECT cutoff FROM given) AND last < (SELECT cutoff FROM given);

-- name: count
-- The requests of quota ? in the window, and when the oldest bucket's
-- latest left.
WITH given (name) AS (VALUES (?))
SELECT coalesce((SELECT count FROM totals WHERE quota = (SELECT name FROM given)), 0),
  (SELECT last FROM buckets WHERE quota = (SELECT name FROM given) ORDER BY start LIMIT 1);

-- name: hint
SELECT remaining, reset FROM server WHERE quota = ?;

-- name: admit
-- One request of quota ? leaving at ?, in the bucket of its instant for a
-- window ? ms long (a thousandth of it wide, at least 1 ms).
WITH given (name, at, width) AS (VALUES (?, CAST(? AS INTEGER), max(CAST(? AS INTEGER) / 1000, 1)))
INSERT INTO buckets (quota, start, count, last)
  SELECT name, at - at % width, 1, at FROM given WHERE true
  ON CONFLICT (quota, start) DO UPDATE SET count = count + 1, last = max(last, excluded.last);

-- name: spend
UPDATE server SET remaining = max(remaining - 1, 0) WHERE quota = ? AND reset > ?;

-- name: set_hint
INSERT INTO server (quota, remaining, reset) VALUES (?, ?, ?)
  ON CONFLICT (quota) DO UPDATE SET remaining = excluded.remaining, reset = excluded.reset;


-- name: usage
SELECT coalesce(sum(count), 0), min(last) FROM buckets WHERE quota = ? AND last >= ?;

-- name: member
-- A member of pool ? named ?, of weight ?.
INSERT INTO members (pool, member, weight) VALUES (?, ?, ?)
  ON CONFLICT (pool, member) DO UPDATE SET weight = excluded.weight;

-- name: expire_pool
-- The buckets of every member of pool ? whose latest request left before ?.
WITH given (pool, cutoff) AS (VALUES (?, ?))
DELETE FROM buckets WHERE quota IN (SELECT member FROM members WHERE pool = (SELECT pool FROM given))
  AND start < (SELECT cutoff FROM given) AND last < (SELECT cutoff FROM given);

-- name: candidates
-- The members of pool ? that want part of it at ?: hungry, holding
-- requests, or the member ? asking; with their requests in the window and
-- when the latest of their oldest bucket left (after `expire_pool`).
SELECT m.member, m.weight, m.hungry_until, coalesce(t.count, 0),
    (SELECT last FROM buckets b WHERE b.quota = m.member ORDER BY start LIMIT 1)
  FROM members m LEFT JOIN totals t ON t.quota = m.member
  WHERE m.pool = ? AND (m.hungry_until > ? OR t.count > 0 OR m.member = ?);

-- name: hungry
-- Until ?, the member of pool ? named ? wants more than it gets.
UPDATE members SET hungry_until = ? WHERE pool = ? AND member = ?;
