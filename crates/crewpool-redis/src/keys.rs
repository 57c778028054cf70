//! The Redis keys of one queue.

/// Every key of one queue: `<prefix>:{<queue>}:<name>`. The braces are a Redis Cluster
/// hash tag, so all keys of a queue live in one slot and every script can touch them.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) seq: String,
    pub(crate) pending: String,
    pub(crate) leased: String,
    pub(crate) active: String,
    pub(crate) leases: String,
    pub(crate) fence: String,
    pub(crate) delayed: String,
    pub(crate) dead: String,
    pub(crate) stats: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, queue: &str) -> Self {
        let key = |name: &str| format!("{prefix}:{{{queue}}}:{name}");
        Keys {
            seq: key("seq"),
            pending: key("pending"),
            leased: key("leased"),
            active: key("active"),
            leases: key("leases"),
            fence: key("fence"),
            delayed: key("delayed"),
            dead: key("dead"),
            stats: key("stats"),
        }
    }

    /// Every key, for tear-down.
    pub(crate) fn all(&self) -> [&str; 9] {
        [
            &self.seq,
            &self.pending,
            &self.leased,
            &self.active,
            &self.leases,
            &self.fence,
            &self.delayed,
            &self.dead,
            &self.stats,
        ]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_share_one_hash_tag() {
        let keys = super::Keys::new("app", "mail");
        assert_eq!(keys.pending, "app:{mail}:pending");
        assert!(keys.all().iter().all(|key| key.starts_with("app:{mail}:")));
    }
}
