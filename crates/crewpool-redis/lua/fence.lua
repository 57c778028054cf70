-- fence.lua: the lease counter's helper, prepended to the scripts that take leases
-- (fetch, abandon; see `scripts.rs`).

-- The next lease number (a fencing token): one more than the last, and never below
-- Redis's clock in microseconds. A replica promoted by a failover may lack the last
-- increments of the counter (replication is asynchronous); its clock has moved on by
-- the failover's length (seconds), so the numbers it issues are above every number
-- the old master issued, as long as the two clocks differ by less than that. The
-- numbers stay below 2^53 (exact in Lua's doubles) until the year 2255.
local function next_lease(fence)
  local t = redis.call('TIME')
  local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local lease = math.max((tonumber(redis.call('GET', fence)) or 0) + 1, clock)
  lease = string.format('%d', lease)
  redis.call('SET', fence, lease)
  return lease
end

