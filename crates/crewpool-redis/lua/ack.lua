-- ack.lua: forget finished jobs, each only if its delivery still owns it.
--
-- KEYS[1] leased      HASH  '<lease>:<n>' -> job record
-- KEYS[2] active      ZSET  lease -> deadline
-- KEYS[3] leases      HASH  '<lease>' -> jobs still leased under it; '<lease>:n' -> size
-- KEYS[4] stats       HASH  totals: 'succeeded', 'failed', 'expired', 'missed_deadline'
-- KEYS[5] unique      HASH  uniqueness key -> job id
-- KEYS[6] unique_ttl  ZSET  uniqueness key -> when it lapses (ms)
-- ARGV[1] u, then u triples (field '<lease>:<n>', job id, uniqueness key) for the jobs
--         that hold a uniqueness key; then groups, one per lease: lease, k, then its k
--         fields '<lease>:<n>'
--
-- Returns one code per group: 1 the lease is live (its fields are deleted; a field
-- already gone was settled by this process's earlier, unanswered call); 0 the lease
-- is gone (its jobs were taken back after it expired, or all of them were settled
-- before this call).
--
-- A lease's fields exist only while it is in `active`, so checking the lease is
-- checking every field of it. The lease is forgotten with its last job. A uniqueness
-- key is released with its job's acknowledgement, if it still names that job.
local u = tonumber(ARGV[1])
for r = 0, u - 1 do
  local field, id, key = ARGV[2 + 3 * r], ARGV[3 + 3 * r], ARGV[4 + 3 * r]
  if redis.call('ZSCORE', KEYS[2], string.match(field, '^(%d+):'))
      and redis.call('HEXISTS', KEYS[1], field) == 1
      and redis.call('HGET', KEYS[5], key) == id then
    redis.call('HDEL', KEYS[5], key)
    redis.call('ZREM', KEYS[6], key)
  end
end
local codes = {}
local i = 2 + 3 * u
while i <= #ARGV do
  local lease, k = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('ZSCORE', KEYS[2], lease) then
    local n = redis.call('HDEL', KEYS[1], unpack(ARGV, i + 2, i + 1 + k))
    if n > 0 then
      let_go(lease, n)
      redis.call('HINCRBY', KEYS[4], 'succeeded', n)
    end
    codes[#codes + 1] = 1
  else
    codes[#codes + 1] = 0
  end
  i = i + 2 + k
end
return codes
