-- fence.lua: the lease counter's helper, prepended after `ids.lua` (whose `next_number`
-- it uses) to the scripts that take leases (fetch, abandon; see `scripts.rs`).

-- The next lease number (a fencing token), written to the counter `fence`: never below
-- Redis's clock in microseconds, so that a failover does not issue one again (see
-- `next_number`).
local function next_lease(fence)
  local lease = string.format('%d', next_number(fence))
  redis.call('SET', fence, lease)
  return lease
end
