//! Start-up calls to the broker that must succeed before a partition is read:
//! topic creation, partition counts and committed offsets.
//!
//! A broker that has just started answers some of them with retriable errors
//! for a while (`NotCoordinator`, `CoordinatorLoadInProgress`, a leader not
//! yet elected). librdkafka does not always retry these on its own: when the
//! committed-offset fetch that it makes for `Offset::Stored` fails, the
//! partition is never read. So `run` resolves every start position itself,
//! retrying with doubling backoff until `kafka.startup_timeout_ms`, and then
//! assigns concrete offsets. Past the deadline it stops with a message that
//! says what to check: no worker ever waits on a partition it will never read.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The first wait after a retriable failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Whether a broker error code is worth another try at start-up.
pub fn retriable_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::NotCoordinator
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::UnknownTopicOrPartition
            | C::RequestTimedOut
            | C::OperationTimedOut
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::NetworkException
            | C::UnknownMemberId
            | C::RebalanceInProgress
            | C::NotEnoughReplicas
    )
}

/// Whether an error from a start-up call is worth another try.
pub fn retriable(error: &KafkaError) -> bool {
    let code = match error {
        // rdkafka gives no code for admin errors, but they carry one.
        KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    };
    code.is_some_and(retriable_code)
}

/// Calls `attempt` until it succeeds, fails for good, or `timeout` has passed
/// since the first try. Each retry is logged with what is retried and when
/// the call gives up; the final error names `what` and says what to check.
pub fn with_retries<T>(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T, KafkaError>,
) -> Result<T, String> {
    let start = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match attempt() {
            Ok(value) => return Ok(value),
            Err(error) if retriable(&error) && start.elapsed() + backoff < timeout => {
                tracing::warn!(
                    %error,
                    what,
                    attempt = tries,
                    retry_in_ms = backoff.as_millis() as u64,
                    gives_up_in_ms = timeout.saturating_sub(start.elapsed()).as_millis() as u64,
                    "Kafka start-up call failed with a retriable error; retrying"
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(error) => {
                let why = if retriable(&error) {
                    format!(
                        "still failing after {tries} tries in {:.1} s (kafka.startup_timeout_ms)",
                        start.elapsed().as_secs_f64()
                    )
                } else {
                    "not retriable".to_string()
                };
                return Err(format!(
                    "cannot {what}: {error} ({why}); check that the broker is up and ready \
                     (`deploy/local/status.sh` on the local stack; `kafka-consumer-groups \
                     --describe` for the group's coordinator), then start again, or raise \
                     kafka.startup_timeout_ms for a slow broker"
                ));
            }
        }
    }
}

/// The committed offset of every partition in `parts` for the consumer's
/// group: `Some(next offset)`, or `None` where the group has committed
/// nothing. Fetched with retries (see the module docs).
pub fn committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    parts: &[(String, i32)],
    timeout: Duration,
) -> Result<BTreeMap<(String, i32), Option<i64>>, String> {
    let mut list = TopicPartitionList::new();
    for (topic, partition) in parts {
        list.add_partition(topic, *partition);
    }
    let per_call = Duration::from_secs(10).min(timeout);
    with_retries(
        "fetch the committed offsets of the consumer group",
        timeout,
        || {
            let got = consumer.committed_offsets(list.clone(), per_call)?;
            let mut out = BTreeMap::new();
            for elem in got.elements() {
                // A partition-level error (the coordinator moved between
                // partitions) fails the whole attempt, to be retried.
                elem.error()?;
                let next = match elem.offset() {
                    Offset::Offset(n) => Some(n),
                    _ => None,
                };
                out.insert((elem.topic().to_string(), elem.partition()), next);
            }
            Ok(out)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_errors_are_retried_and_others_are_not() {
        let not_coordinator = KafkaError::OffsetFetch(RDKafkaErrorCode::NotCoordinator);
        assert!(retriable(&not_coordinator));
        let loading = KafkaError::OffsetFetch(RDKafkaErrorCode::CoordinatorLoadInProgress);
        assert!(retriable(&loading));
        let denied = KafkaError::OffsetFetch(RDKafkaErrorCode::GroupAuthorizationFailed);
        assert!(!retriable(&denied));
        // A topic creation that timed out waiting for a broker that is down.
        let admin = KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut);
        assert!(retriable(&admin));
    }

    #[test]
    fn a_call_is_retried_until_it_succeeds() {
        let mut left = 3;
        let got = with_retries("test", Duration::from_secs(10), || {
            if left > 0 {
                left -= 1;
                Err(KafkaError::OffsetFetch(RDKafkaErrorCode::NotCoordinator))
            } else {
                Ok(7)
            }
        });
        assert_eq!(got, Ok(7));
        assert_eq!(left, 0);
    }

    #[test]
    fn a_call_gives_up_at_the_deadline_saying_what_to_check() {
        let mut tries = 0;
        let got: Result<(), String> = with_retries("fetch x", Duration::from_millis(400), || {
            tries += 1;
            Err(KafkaError::OffsetFetch(RDKafkaErrorCode::NotCoordinator))
        });
        let message = got.expect_err("gives up");
        assert!(tries >= 2, "retried: {tries}");
        assert!(message.contains("cannot fetch x"), "{message}");
        assert!(message.contains("kafka.startup_timeout_ms"), "{message}");
    }

    #[test]
    fn a_permanent_error_is_not_retried() {
        let mut tries = 0;
        let got: Result<(), String> = with_retries("fetch y", Duration::from_secs(10), || {
            tries += 1;
            Err(KafkaError::OffsetFetch(
                RDKafkaErrorCode::GroupAuthorizationFailed,
            ))
        });
        assert_eq!(tries, 1);
        assert!(got.expect_err("fails").contains("not retriable"));
    }
}
