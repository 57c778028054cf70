-- lease.lua: helpers prepended to the settlement scripts (ack, abandon, bury, release,
-- retry; see `scripts.rs`), whose KEYS[1..3] are always:
--
-- KEYS[1] leased  HASH  '<lease>:<n>' -> job record
-- KEYS[2] active  ZSET  lease -> deadline
-- KEYS[3] leases  HASH  '<lease>' -> jobs still leased under it; '<lease>:n' -> size;
--                       '<lease>:t' -> when it was taken (ms)

-- Redis's clock, in ms since the epoch.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Counts `n` jobs of `lease` as no longer leased; forgets the lease with its last job.
local function let_go(lease, n)
  if redis.call('HINCRBY', KEYS[3], lease, -n) <= 0 then
    redis.call('ZREM', KEYS[2], lease)
    redis.call('HDEL', KEYS[3], lease, lease .. ':n', lease .. ':t')
  end
end

-- Takes the job record of `field` ('<lease>:<n>') out of its lease; nil when the field
-- is gone (the lease was lost, or the job already settled).
local function take(field)
  local record = redis.call('HGET', KEYS[1], field)
  if record then
    redis.call('HDEL', KEYS[1], field)
    let_go(string.match(field, '^(%d+):'), 1)
  end
  return record
end

