-- abandon.lua: give jobs whose deliveries were dropped unsettled a lease of their own
-- that nobody extends, so they come back when it runs out (as an expired lease: a
-- failed attempt), while the rest of their lease is still held and extended.
--
-- KEYS[1] leased  HASH    '<lease>:<n>' -> job record
-- KEYS[2] active  ZSET    lease -> deadline
-- KEYS[3] leases  HASH    '<lease>' -> jobs still leased under it; '<lease>:n' -> size;
--                         '<lease>:t' -> when it was taken (ms)
-- KEYS[4] fence   STRING  the lease counter
-- ARGV    fields '<lease>:<n>'
--
-- The new lease keeps the old one's deadline and fetch time. Returns how many jobs were moved (a
-- field already gone was settled or taken back meanwhile).
local now = now_ms()
local moved = 0
for i = 1, #ARGV do
  local record = redis.call('HGET', KEYS[1], ARGV[i])
  if record then
    local lease = string.match(ARGV[i], '^(%d+):')
    local deadline = tonumber(redis.call('ZSCORE', KEYS[2], lease)) or now
    local taken = redis.call('HGET', KEYS[3], lease .. ':t') or now
    redis.call('HDEL', KEYS[1], ARGV[i])
    let_go(lease, 1)
    local own = next_lease(KEYS[4])
    redis.call('HSET', KEYS[1], own .. ':1', record)
    redis.call('ZADD', KEYS[2], deadline, own)
    redis.call('HSET', KEYS[3], own, 1, own .. ':n', 1, own .. ':t', taken)
    moved = moved + 1
  end
end
return moved
