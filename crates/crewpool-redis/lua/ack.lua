-- ack.lua: forget finished jobs, each only if its delivery still owns it.
--
-- KEYS[1] leased  HASH  '<lease>:<n>' -> job record
-- KEYS[2] active  ZSET  lease -> deadline
-- KEYS[3] leases  HASH  '<lease>' -> jobs still leased under it; '<lease>:n' -> size
-- KEYS[4] stats   HASH  totals: 'succeeded', 'failed', 'expired'
-- ARGV    groups, one per lease: lease, k, then its k fields '<lease>:<n>'
--
-- Returns one code per group: 1 the lease is live (its fields are deleted; a field
-- already gone was settled by this process's earlier, unanswered call); 0 the lease
-- is gone (its jobs were taken back after it expired, or all of them were settled
-- before this call).
--
-- A lease's fields exist only while it is in `active`, so checking the lease is
-- checking every field of it. The lease is forgotten with its last job.
local codes = {}
local i = 1
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
