//! The states producers, stores and the API share, as types. On the wire
//! (Avro `string` fields, JSON, headers, SQL text columns) each is the
//! lowercase word it always was, so no subscriber sees a change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An unknown word for a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a {what} (one of {allowed})")]
pub struct UnknownState {
    pub what: &'static str,
    pub found: String,
    pub allowed: String,
}

/// A state written as one of a fixed set of words.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownState {
                        what: $what,
                        found: s.to_string(),
                        allowed: [$($word),+].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = String::deserialize(d)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

word_enum! {
    /// Where a connection stands with its source.
    ConnectionStatus, "connection status" {
        /// Authorized and synced.
        Linked => "linked",
        /// Added; waiting for a person to grant access at the source.
        PendingAuth => "pending_auth",
        /// The source refused its credentials: a person must link it again.
        Deauthorized => "deauthorized",
        /// Removed by an operator: not synced, credentials erased, records kept.
        Unlinked => "unlinked",
    }
}

word_enum! {
    /// Where one sync of one data type stands. A run goes through `queued`
    /// (asked for, waiting for a worker), `fetching` and `publishing` to one
    /// of the three ends; only ended runs are published on the
    /// `sync_runs` topic.
    SyncRunStatus, "sync run status" {
        Queued => "queued",
        Fetching => "fetching",
        Publishing => "publishing",
        Succeeded => "succeeded",
        Failed => "failed",
        /// Stopped by a wait longer than allowed (a day's call quota used up):
        /// resumes later from its cursor.
        Paused => "paused",
    }
}

impl SyncRunStatus {
    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            SyncRunStatus::Succeeded | SyncRunStatus::Failed | SyncRunStatus::Paused
        )
    }
}

word_enum! {
    /// What started a sync run.
    SyncTrigger, "sync trigger" {
        /// The connection's interval came round.
        Schedule => "schedule",
        /// An operator asked for a sync now (incremental, from the cursor).
        Request => "request",
        /// An operator asked to fetch everything again: the cursor is
        /// forgotten and the run's events carry a new revision, so they
        /// replace what the stores hold even at the same source version.
        Resync => "resync",
        /// An operator asked for one record again, by its source id.
        Refetch => "refetch",
        /// A full pass that publishes a tombstone for every record the
        /// source no longer lists (by schedule, or asked for).
        Reconcile => "reconcile",
        /// The source said the data changed (a verified webhook): a
        /// sync from the cursor, now.
        SourceWebhook => "source_webhook",
    }
}

word_enum! {
    /// Where a dead letter was set aside.
    DeadLetterStage, "dead-letter stage" {
        /// A connector could not map a source record.
        Map => "map",
        /// A projector could not decode a message.
        Decode => "decode",
        /// A projection's store refused a decoded record.
        Store => "store",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_is_its_word_both_ways() {
        for s in ConnectionStatus::ALL {
            assert_eq!(s.as_str().parse::<ConnectionStatus>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in SyncRunStatus::ALL {
            assert_eq!(s.as_str().parse::<SyncRunStatus>(), Ok(*s));
        }
        for s in SyncTrigger::ALL {
            assert_eq!(s.as_str().parse::<SyncTrigger>(), Ok(*s));
        }
        for s in DeadLetterStage::ALL {
            assert_eq!(s.as_str().parse::<DeadLetterStage>(), Ok(*s));
        }
        let err = "lost".parse::<SyncRunStatus>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"lost\" is not a sync run status (one of queued, fetching, publishing, succeeded, failed, paused)"
        );
    }
}
