//! The Redis keys of one queue.

use crate::wire::LEVELS;

/// Every key of one queue: `<prefix>:{<queue>}:<name>`. The braces are a Redis Cluster
/// hash tag, so all keys of a queue live in one slot and every script can touch them.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) seq: String,
    /// Level 0's list; `levels_pending[0]` too.
    pub(crate) pending: String,
    /// The lists of priority levels 0 (`pending`) to 9 (`pending:9`).
    pub(crate) levels_pending: [String; LEVELS],
    pub(crate) leased: String,
    pub(crate) active: String,
    pub(crate) leases: String,
    pub(crate) fence: String,
    pub(crate) delayed: String,
    pub(crate) scheduled: String,
    pub(crate) dead: String,
    pub(crate) stats: String,
    pub(crate) levels: String,
    pub(crate) priority: String,
    pub(crate) unique: String,
    pub(crate) unique_ttl: String,
    pub(crate) schedules: String,
    pub(crate) ticks: String,
    pub(crate) schedver: String,
    pub(crate) fired: String,
    /// Pause flag and rate limit (see `lua/control.lua`).
    pub(crate) control: String,
    /// The wake marker a resume leaves for paused fetchers.
    pub(crate) resumed: String,
    /// The rate limit's sliding window.
    pub(crate) rate: String,
    /// `<prefix>:{<queue>}:`, for the keys named after a job or a producer.
    base: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, queue: &str) -> Self {
        let key = |name: &str| format!("{prefix}:{{{queue}}}:{name}");
        let levels_pending = std::array::from_fn(|level| {
            if level == 0 {
                key("pending")
            } else {
                key(&format!("pending:{level}"))
            }
        });
        Keys {
            seq: key("seq"),
            pending: key("pending"),
            levels_pending,
            leased: key("leased"),
            active: key("active"),
            leases: key("leases"),
            fence: key("fence"),
            delayed: key("delayed"),
            scheduled: key("scheduled"),
            dead: key("dead"),
            stats: key("stats"),
            levels: key("levels"),
            priority: key("priority"),
            unique: key("unique"),
            unique_ttl: key("unique:ttl"),
            schedules: key("schedules"),
            ticks: key("schedules:ticks"),
            schedver: key("schedules:version"),
            fired: key("schedules:fired"),
            control: key("control"),
            resumed: key("resumed"),
            rate: key("rate"),
            base: key(""),
        }
    }

    /// The list of priority level `level` (0 to 9).
    pub(crate) fn pending_of(&self, level: u8) -> &str {
        &self.levels_pending[usize::from(level).min(LEVELS - 1)]
    }

    /// The outcome of job `id`, stored for its producer (`lua/reply.lua`).
    pub(crate) fn result_of(&self, id: u64) -> String {
        format!("{}result:{id}", self.base)
    }

    /// A producer's reply channel (`lua/reply.lua`).
    pub(crate) fn replies_of(&self, channel: &str) -> String {
        format!("{}replies:{channel}", self.base)
    }

    /// Every key, for tear-down.
    pub(crate) fn all(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.levels_pending.iter().map(String::as_str).collect();
        all.extend([
            self.seq.as_str(),
            &self.leased,
            &self.active,
            &self.leases,
            &self.fence,
            &self.delayed,
            &self.scheduled,
            &self.dead,
            &self.stats,
            &self.levels,
            &self.priority,
            &self.unique,
            &self.unique_ttl,
            &self.schedules,
            &self.ticks,
            &self.schedver,
            &self.fired,
            &self.control,
            &self.resumed,
            &self.rate,
        ]);
        all
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_share_one_hash_tag() {
        let keys = super::Keys::new("app", "mail");
        assert_eq!(keys.pending, "app:{mail}:pending");
        assert_eq!(keys.pending_of(0), "app:{mail}:pending");
        assert_eq!(keys.pending_of(3), "app:{mail}:pending:3");
        assert!(keys.all().iter().all(|key| key.starts_with("app:{mail}:")));
        assert_eq!(keys.all().len(), 30);
        assert_eq!(keys.result_of(7), "app:{mail}:result:7");
        assert_eq!(keys.replies_of("ab"), "app:{mail}:replies:ab");
    }
}
